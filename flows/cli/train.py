"""``tokenfoundry train``: a corpus snapshot (or Parquet/text files) -> a tokenizer directory.

Calls the train core directly (no Prefect API start-up); ``--flow`` runs the same work as the
Prefect flow ``flows.train.train_flow``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from tokenfoundry.flows.cli.app import (
    FlowOpt,
    JsonOpt,
    WorkspaceOpt,
    app,
    cli_errors,
    emit_json,
    err,
    out,
)

_EXAMPLE = """
Examples:

  tokenfoundry train --corpus legal --model bpe --vocab-size 8192 --out tok/legal-bpe

  tokenfoundry train --corpus ui --model unigram --backend spm --vocab-size 16000 \\
      --mix-by lang --mix-alpha 0.3 --byte-fallback --out tok/ui-spm --json

  tokenfoundry train --corpus web --model superbpe --vocab-size 32768 \\
      --superbpe-transition 26000 --max-bytes 500MB --out tok/web-superbpe

  tokenfoundry train --spec examples/legal.yaml --out tok/legal   # a TrainSpec or pipeline YAML
"""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str, what: str = "--max-bytes") -> int:
    """``500MB``, ``2GiB``, ``1000000`` -> bytes; BadInputError otherwise."""
    from tokenfoundry.schemas.errors import BadInputError

    m = _SIZE.match(text)
    unit = (m.group(2) or "").lower() if m else None
    if not m or unit not in _UNITS:
        raise BadInputError(f"{what}: {text!r} is not a size; write e.g. 500MB, 2GiB or 1000000")
    return int(float(m.group(1)) * _UNITS[unit])


@app.command("train", help=(
    "Train a tokenizer (HF tokenizers: byte-level BPE, BPE with byte fallback, Unigram, "
    "WordPiece, char-level BPE, SuperBPE; sentencepiece: BPE, Unigram) on a corpus snapshot, "
    "streamed from Parquet. Documents held out by the split rule are never trained on. Writes "
    "tokenizer.json (or tokenizer.model), an AutoTokenizer-loadable directory and "
    "train_report.json to --out.\n\n" + _EXAMPLE))
@cli_errors
def train_command(
    out_dir: Annotated[str, typer.Option("--out", "-o", help="Output directory.")],
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", "-c", help="Corpus name or Parquet/text path (repeatable).")] = None,
    model: Annotated[str | None, typer.Option(
        help="bpe, unigram, wordpiece, char-bpe or superbpe [default: bpe].")] = None,
    vocab_size: Annotated[int | None, typer.Option(
        "--vocab-size", "-v", help="Vocabulary size, special tokens included.")] = None,
    backend: Annotated[str | None, typer.Option(help="hf or spm [default: hf].")] = None,
    pretokenizer: Annotated[str | None, typer.Option(
        help="Preset: gpt2, cl100k (gpt-4), o200k, llama3, whitespace, digits-1, digits-3 "
        "[default: cl100k; whitespace for unigram/wordpiece].")] = None,
    workspace: WorkspaceOpt = "./workspace",
    json_out: JsonOpt = False,
    flow: FlowOpt = False,
    spec_file: Annotated[str | None, typer.Option(
        "--spec", help="A TrainSpec YAML (or a pipeline YAML: its train section; a shipped "
        "example's name such as examples/legal.yaml works from any directory); flags "
        "override its values.")] = None,
    ref: Annotated[str | None, typer.Option(help="Snapshot ref or id [default: latest].")] = None,
    lang: Annotated[list[str] | None, typer.Option(
        "--lang", help="Train only on these languages (repeatable).")] = None,
    holdout_fraction: Annotated[float | None, typer.Option(
        help="Held-out fraction never trained on [default: 0.05].")] = None,
    max_bytes: Annotated[str | None, typer.Option(
        help="Byte budget of the sample, e.g. 500MB [default: all].")] = None,
    max_docs: Annotated[int | None, typer.Option(help="Document budget [default: all].")] = None,
    mix_by: Annotated[str | None, typer.Option(
        help="Temperature mixing over 'lang' or 'corpus' [default: none].")] = None,
    mix_alpha: Annotated[float | None, typer.Option(
        help="Mixing exponent alpha, p_i ∝ n_i^alpha [default: 0.3].")] = None,
    upsample: Annotated[bool | None, typer.Option(
        "--upsample/--no-upsample", help="Repeat small groups up to their target "
        "[default: on].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed [default: 0].")] = None,
    round_vocab: Annotated[str | None, typer.Option(
        help="none, multiple_of_64, multiple_of_128 or power_of_two [default: none].")] = None,
    min_frequency: Annotated[int | None, typer.Option(help="Min pair frequency [default: 2].")
                             ] = None,
    byte_fallback: Annotated[bool | None, typer.Option(
        "--byte-fallback/--no-byte-fallback", help="Byte fallback (bpe hf, spm).")] = None,
    normalization: Annotated[str | None, typer.Option(
        help="none, NFC or NFKC [default: none].")] = None,
    lowercase: Annotated[bool | None, typer.Option("--lowercase/--no-lowercase",
                                                   help="Lower-case text.")] = None,
    special_token: Annotated[list[str] | None, typer.Option(
        "--special-token", help="Special token (repeatable; first ids, in order) [default: "
        "<|endoftext|> <|pad|>].")] = None,
    unk_token: Annotated[str | None, typer.Option(help="Unknown token [default: <unk>].")] = None,
    max_token_length: Annotated[int | None, typer.Option(
        help="Longest token in characters (char-bpe default 4).")] = None,
    limit_alphabet: Annotated[int | None, typer.Option(help="HF: max initial alphabet.")] = None,
    superbpe_transition: Annotated[int | None, typer.Option(
        help="SuperBPE transition point t (vocab size after stage 1) [default: 0.8 x vocab].")
    ] = None,
    superbpe_max_words: Annotated[int | None, typer.Option(
        help="SuperBPE: most words a superword token spans [default: 4].")] = None,
    parity_aware: Annotated[bool | None, typer.Option(
        "--parity-aware/--no-parity-aware", help="Parity-aware BPE (needs --mix-by lang and "
        "parallel gettext text).")] = None,
    character_coverage: Annotated[float | None, typer.Option(
        help="spm character coverage [default: 0.9995].")] = None,
    split_digits: Annotated[bool | None, typer.Option("--split-digits/--no-split-digits",
                                                      help="spm: split digits.")] = None,
    input_sentence_size: Annotated[int | None, typer.Option(
        help="spm: sentences sampled (0 = all).")] = None,
    deterministic: Annotated[bool | None, typer.Option(
        "--deterministic/--no-deterministic", help="Single-threaded where results depend on "
        "thread timing [default: on].")] = None,
    strict: Annotated[bool | None, typer.Option(
        "--strict/--no-strict", help="Fail (exit 1, --out untouched) when the trainer learns "
        "fewer tokens than --vocab-size asks; without it the shortfall is reported "
        "[default: off].")] = None,
) -> None:
    from tokenfoundry.schemas.config import validate_spec
    from tokenfoundry.schemas.errors import BadInputError
    from tokenfoundry.schemas.train import TrainSpec

    data: dict[str, Any] = {}
    if spec_file:
        data = _spec_data(spec_file)
    overrides = {
        "corpora": list(corpus) if corpus else None, "model": model, "vocab_size": vocab_size,
        "backend": backend, "pretokenizer": pretokenizer, "ref": ref,
        "languages": list(lang) if lang else None, "holdout_fraction": holdout_fraction,
        "max_bytes": parse_size(max_bytes) if max_bytes else None, "max_docs": max_docs,
        "mix_by": mix_by, "mix_alpha": mix_alpha, "upsample": upsample, "seed": seed,
        "round_vocab": round_vocab, "min_frequency": min_frequency,
        "byte_fallback": byte_fallback, "normalization": normalization, "lowercase": lowercase,
        "special_tokens": list(special_token) if special_token else None,
        "unk_token": unk_token, "max_token_length": max_token_length,
        "limit_alphabet": limit_alphabet, "superbpe_transition": superbpe_transition,
        "superbpe_max_words": superbpe_max_words,
        "parity_aware": parity_aware, "character_coverage": character_coverage,
        "split_digits": split_digits, "input_sentence_size": input_sentence_size,
        "deterministic": deterministic, "strict": strict,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    if not data.get("corpora"):
        raise BadInputError("tokenfoundry train: give --corpus NAME|PATH (or --spec FILE)")
    if "vocab_size" not in data:
        raise BadInputError("tokenfoundry train: give --vocab-size N (or vocab_size in --spec)")
    where = spec_file or "tokenfoundry train"
    spec = validate_spec(TrainSpec, data, where)

    if flow:
        from tokenfoundry.flows.train import train_flow

        result = train_flow(spec=spec.model_dump(mode="json"), workspace=workspace, out=out_dir)
    else:
        result = _run_direct(spec, workspace, out_dir).model_dump(mode="json")
    if json_out:
        emit_json(result)
    else:
        _summary(result)


def _spec_data(path: str) -> dict[str, Any]:
    """A TrainSpec mapping from a YAML file (a pipeline YAML contributes its ``train`` section)."""
    import os

    from tokenfoundry.flows.quickstart import example_names, example_text
    from tokenfoundry.schemas.config import read_yaml_mapping

    stem = os.path.basename(path).removesuffix(".yaml")
    if not os.path.exists(path) and stem in example_names():  # a shipped example, from anywhere
        import yaml

        data = yaml.safe_load(example_text(stem))
    else:
        data = read_yaml_mapping(path, "--spec file", "pass a TrainSpec or pipeline YAML")
    if "train" in data and isinstance(data["train"], dict):
        data = data["train"]
    return dict(data)


def _run_direct(spec, workspace: str, out_dir: str):
    from tokenfoundry.storage.workspace import Workspace
    from tokenfoundry.tasks.progress import show_progress
    from tokenfoundry.tasks.train.core import train

    with show_progress("train", console=err, unit="B") as progress:
        return train(Workspace(workspace), spec, out_dir, progress=progress)


def _summary(r: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"tokenizer: {r['model']} ({r['backend']})", show_header=False)
    t.add_row("out", r["out"])
    short = r.get("shortfall")
    if short:
        t.add_row("vocab_size", f"[bold yellow]{r['vocab_size']}: {short['got']} learned of "
                  f"{short['asked']} asked[/] ({short['why']}; --strict fails on this)")
    else:
        t.add_row("vocab_size", str(r["vocab_size"]))
    t.add_row("inputs", ", ".join(f"{s['corpus']}@{s.get('snapshot_id') or s.get('path')}"
                                  for s in r["snapshots"]))
    t.add_row("trained on", f"{r['docs']} docs, {r['bytes'] / 1e6:.2f} MB "
              f"({r['heldout_docs']} held-out docs excluded)")
    if len(r["realised_mix"]) > 1:
        t.add_row("mix", ", ".join(f"{k} {v:.3f}" for k, v in r["realised_mix"].items()))
    t.add_row("special tokens", ", ".join(f"{k}={v}" for k, v in r["special_tokens"].items()))
    t.add_row("seconds", f"{r['seconds']:.1f}")
    t.add_row("peak RSS", f"{r['peak_rss_mb']:.0f} MB")
    t.add_row("report", r["report"])
    out.print(t)
