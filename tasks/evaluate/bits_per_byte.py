"""Bits per byte of a causal language model: total NLL in bits / UTF-8 bytes of the text.

    BPB = Σ_segments Σ_i −log2 p(t_i | bos, t_<i)  /  Σ_segments |segment|_bytes

Per byte, not per token, so models with different tokenizers compare on the same text (the
measure of Gao et al., The Pile, 2020, and of the vocabulary-extension literature). Every model
scores exactly the same byte segments: each document is cut at whitespace into segments of at
most ``max_bytes`` UTF-8 bytes (a byte-level BPE never needs more tokens than bytes, so a segment
fits the context when ``max_bytes < context``), independently of any tokenizer. The first token of
a segment is conditioned on the document-boundary token (``<|endoftext|>`` when the vocabulary
has it, else the model's BOS), so every byte of the text is scored.

Windows are sorted by length and batched up to ``batch_tokens`` tokens (fp32 on CPU); the same
function scores the extension stage's models and ``tokenfoundry evaluate --model``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenfoundry.schemas.errors import BadInputError

_PIECE = re.compile(r"\s+\S*|\S+")  # a whitespace run + the word after it (or a leading word)


def segments(docs: Iterable[str], max_bytes: int = 1024) -> list[str]:
    """Cut documents into segments of ≤ max_bytes bytes, each cut placed before whitespace.

    The segments of a document concatenate back to the document (no byte is lost or doubled);
    a piece without whitespace longer than max_bytes is cut at character boundaries.
    """
    out: list[str] = []
    for doc in docs:
        cur: list[str] = []
        size = 0
        for m in _PIECE.finditer(doc):
            piece = m.group()
            n = len(piece.encode("utf-8"))
            if n > max_bytes:  # one huge word: character-boundary cuts
                pieces, psize = [""], 0
                for ch in piece:
                    cb = len(ch.encode("utf-8"))
                    if psize + cb > max_bytes:
                        pieces.append("")
                        psize = 0
                    pieces[-1] += ch
                    psize += cb
            else:
                pieces = [piece]
            for piece in pieces:
                n = len(piece.encode("utf-8"))
                if cur and size + n > max_bytes:
                    out.append("".join(cur))
                    cur, size = [], 0
                cur.append(piece)
                size += n
        if cur:
            out.append("".join(cur))
    return out


@dataclass
class ModelScore:
    """What one model scored on the segments (``bits_per_byte`` is the headline)."""

    model: str
    bits_per_byte: float
    nll_bits: float
    tokens: int
    bytes: int
    bytes_per_token: float
    segments: int
    seconds: float
    bits_per_byte_vs_first: float | None = None
    """This model's BPB / the first model's (1.0 for the first)."""

    def as_dict(self) -> dict:
        return asdict(self)


def boundary_token_id(tokenizer, config) -> int:
    """``<|endoftext|>`` if the vocabulary has it, else BOS, else EOS (the document boundary)."""
    tid = tokenizer.token_to_id("<|endoftext|>")
    if tid is not None:
        return tid
    for name in ("bos_token_id", "eos_token_id"):
        v = getattr(config, name, None)
        if isinstance(v, list):
            v = v[0] if v else None
        if v is not None:
            return int(v)
    raise BadInputError("model has neither <|endoftext|> nor a bos/eos token id in its config; "
                        "set bos_token_id in config.json")


def load_causal_lm(model_dir: str | Path):
    """A causal LM (fp32, eval mode) and its tokenizers.Tokenizer, offline from a directory."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    d = Path(model_dir)
    if not (d / "config.json").is_file():
        raise BadInputError(f"--model {d}: no config.json; give a causal-LM directory "
                            "(config.json, *.safetensors, tokenizer.json)")
    if not (d / "tokenizer.json").is_file():
        raise BadInputError(f"--model {d}: no tokenizer.json next to the model")
    model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32,
                                                 local_files_only=True)
    model.eval()
    return model, Tokenizer.from_file(str(d / "tokenizer.json"))


def score(model, tokenizer, segs: list[str], *, name: str = "model", batch_tokens: int = 2048,
          progress: Callable[[str, int, int | None], None] | None = None) -> ModelScore:
    """Total NLL (bits) of the segments under the model, each prefixed by the boundary token."""
    import torch

    t0 = time.perf_counter()
    bos = boundary_token_id(tokenizer, model.config)
    encs = tokenizer.encode_batch(segs, add_special_tokens=False)
    seqs = [[bos] + e.ids for e in encs]
    ctx = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    longest = max((len(s) for s in seqs), default=0)
    if ctx and longest > ctx:
        raise BadInputError(f"model {name}: a segment needs {longest} tokens > context {ctx}; "
                            "lower max_bytes")
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    total_nll = 0.0
    n_tokens = sum(len(s) - 1 for s in seqs)
    done = 0
    i = 0
    with torch.inference_mode():
        while i < len(order):
            width = len(seqs[order[i]])
            j = i
            # batch up to batch_tokens tokens (the longest sequence sets the padded width)
            while j < len(order) and (j - i + 1) * len(seqs[order[j]]) <= max(batch_tokens, width):
                j += 1
            batch = [seqs[k] for k in order[i:j]]
            width = max(len(s) for s in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, s in enumerate(batch):
                ids[r, :len(s)] = torch.tensor(s)
                mask[r, :len(s)] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = ids[:, 1:].clone()
            target[mask[:, 1:] == 0] = -100
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                ignore_index=-100, reduction="sum")
            total_nll += float(nll)
            done += int((target != -100).sum())
            if progress:
                progress(f"bits/byte {name}", done, n_tokens)
            i = j
    n_bytes = sum(len(s.encode("utf-8")) for s in segs)
    if n_bytes == 0:
        raise BadInputError("bits per byte: the text is empty")
    bits = total_nll / math.log(2)
    return ModelScore(model=name, bits_per_byte=bits / n_bytes, nll_bits=bits, tokens=n_tokens,
                      bytes=n_bytes, bytes_per_token=n_bytes / max(n_tokens, 1),
                      segments=len(segs), seconds=time.perf_counter() - t0)


def bits_per_byte(models: dict[str, str | Path], docs: list[str], *, max_bytes: int = 1024,
                  batch_tokens: int = 2048,
                  progress: Callable[[str, int, int | None], None] | None = None
                  ) -> dict[str, ModelScore]:
    """Score every model (name -> directory) on the same segments; Δ is against the first."""
    segs = segments(docs, max_bytes)
    if not segs:
        raise BadInputError("bits per byte: no text to score")
    scores: dict[str, ModelScore] = {}
    for name, d in models.items():
        model, tok = load_causal_lm(d)
        scores[name] = score(model, tok, segs, name=name, batch_tokens=batch_tokens,
                             progress=progress)
        del model
    first = next(iter(scores.values())).bits_per_byte
    for s in scores.values():
        s.bits_per_byte_vs_first = s.bits_per_byte / first
    return scores


def resolve_model(source: str, registry: str | None = None) -> tuple[str, Path]:
    """``[LABEL=]smollm2 | DIR | NAME@VERSION`` -> (label, local model directory)."""
    label, _, rest = source.partition("=") if "=" in source else ("", "", source)
    spec = rest or source
    p = Path(spec)
    if p.is_dir():
        return label or p.name, p
    if spec.lower().startswith("smollm2"):
        from tokenfoundry.tasks.extend.base import resolve_base

        return label or "smollm2", resolve_base(spec).path
    if "@" in spec:
        from tokenfoundry.storage import registry as reg

        return label or spec, Path(reg.pull(spec, None, registry))
    raise BadInputError(f"--model {source}: not a directory, not 'smollm2' and not a registry "
                        "ref NAME@VERSION; give a causal-LM directory")


def write_bpb_report(scores: dict[str, ModelScore], out_dir: str | Path) -> list[str]:
    """bits_per_byte.parquet, plots/bits_per_byte.png and a section of report.md in out_dir."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [s.as_dict() for s in scores.values()]
    pq.write_table(pa.Table.from_pylist(rows), out / "bits_per_byte.parquet")
    written = [str(out / "bits_per_byte.parquet")]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        (out / "plots").mkdir(exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(rows)))
        ax.barh([r["model"] for r in rows][::-1], [r["bits_per_byte"] for r in rows][::-1])
        ax.set_xlabel("bits per byte (lower is better)")
        fig.tight_layout()
        fig.savefig(out / "plots" / "bits_per_byte.png", dpi=100)
        plt.close(fig)
        written.append(str(out / "plots" / "bits_per_byte.png"))
    except ImportError:  # matplotlib is a dependency; a broken install still gets the table
        pass
    first = rows[0]
    lines = ["", "## Bits per byte (language models)", "",
             f"{first['bytes']} UTF-8 bytes in {first['segments']} segments, the same for every "
             "model; first token conditioned on the document-boundary token.", "",
             "| model | bits/byte | vs first | tokens | bytes/token | seconds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['bits_per_byte']:.4f} | "
                     f"{r['bits_per_byte_vs_first']:.4f} | {r['tokens']} | "
                     f"{r['bytes_per_token']:.3f} | {r['seconds']:.1f} |")
    if len(written) > 1:
        lines += ["", "![bits per byte](plots/bits_per_byte.png)"]
    with open(out / "report.md", "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return written
