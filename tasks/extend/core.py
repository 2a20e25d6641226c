"""The extension stage: base model + target text -> extended tokenizer + resized model.

    resolve base -> learn merges on its own segmentation (merges.py) -> initialise the new rows
    (init.py METHODS) -> resize the embeddings (old rows bit-identical, tied stays tied)
    -> measure bytes/token and bits/byte -> write a temp dir -> rename into place

The output directory loads offline with ``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained``
(rows == len(tokenizer)) and holds ``extend_report.json``. The same spec on the same base is
reused: a directory whose report has the same ``spec_hash`` is returned as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from tokenfoundry.schemas.config import stable_hash
from tokenfoundry.schemas.errors import BadInputError, InvariantError
from tokenfoundry.schemas.extend import ExtendSpec
from tokenfoundry.tasks.extend.base import BaseModel, check_bpe_tokenizer, resolve_base
from tokenfoundry.tasks.extend.init import InitContext, InitError, initialise
from tokenfoundry.tasks.extend.merges import is_byte_level, learn_merges, token_bytes

Progress = Callable[[str, int, int | None], None]
REPORT = "extend_report.json"
#: tokenizer files copied from the base next to the extended tokenizer.json
_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                    "generation_config.json")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus_reader(spec: ExtendSpec, workspace: str | None) -> tuple[Callable[[], Iterator[str]],
                                                                     list[dict]]:
    """A re-iterable reader over the target text (max_bytes cap) and what it reads."""
    sources: list[dict] = []
    loaders: list[Callable[[], Iterator[str]]] = []
    for c in spec.corpora:
        p = Path(c)
        if p.exists():
            from tokenfoundry.tasks.evaluate.texts import read_texts

            docs = read_texts(str(p)).docs
            sources.append({"path": str(p), "documents": len(docs)})
            loaders.append(lambda docs=docs: iter(docs))
            continue
        if workspace is None:
            raise BadInputError(f"corpus {c!r}: no such path, and no workspace to look it up in")
        from tokenfoundry.storage.catalog import connect, scan
        from tokenfoundry.storage.splits import heldout_sql
        from tokenfoundry.storage.workspace import Workspace

        ws = Workspace(workspace)
        if not ws.list_snapshots(c):
            raise BadInputError(f"corpus {c!r}: not a path and not a corpus of workspace "
                                f"{workspace}; ingest it first or give a path")
        snap = ws.resolve(c, spec.ref)
        sql = (f"SELECT text FROM {scan(snap)} WHERE NOT {heldout_sql(spec.holdout_fraction)} "
               "ORDER BY doc_id")
        sources.append({"corpus": c, "snapshot_id": snap.snapshot_id})

        def rows(sql=sql, ws=ws) -> Iterator[str]:
            reader = connect(ws).sql(sql).to_arrow_reader(4096)
            for batch in reader:
                yield from batch.column(0).to_pylist()

        loaders.append(rows)

    def texts() -> Iterator[str]:
        left = spec.max_bytes
        for load in loaders:
            for t in load():
                if left is not None:
                    n = len(t.encode("utf-8"))
                    if n > left:
                        return
                    left -= n
                yield t

    return texts, sources


def workspace_heldout(spec: ExtendSpec, workspace: str) -> list[str]:
    """Held-out documents (storage.splits rule) of the workspace corpora among spec.corpora."""
    from tokenfoundry.storage.catalog import connect, scan
    from tokenfoundry.storage.splits import heldout_sql
    from tokenfoundry.storage.workspace import Workspace

    ws = Workspace(workspace)
    docs: list[str] = []
    for c in spec.corpora:
        if Path(c).exists() or not ws.list_snapshots(c) or spec.holdout_fraction <= 0:
            continue
        snap = ws.resolve(c, spec.ref)
        docs += [r[0] for r in connect(ws).execute(
            f"SELECT text FROM {scan(snap)} WHERE {heldout_sql(spec.holdout_fraction)} "
            "ORDER BY doc_id").fetchall()]
    return docs


def _hashing(it: Iterator[str], h) -> Iterator[str]:
    for t in it:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
        yield t


def bytes_per_token(tokenizer, docs: list[str]) -> tuple[float, int, int]:
    encs = tokenizer.encode_batch(docs, add_special_tokens=False)
    tokens = sum(len(e.ids) for e in encs)
    n = sum(len(d.encode("utf-8")) for d in docs)
    return n / max(tokens, 1), tokens, n


def extend(spec: ExtendSpec, out: str | Path, *, workspace: str | None = None,
           progress: Progress | None = None) -> dict:
    """Run the stage; returns the report (also written as ``out/extend_report.json``)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    out = Path(out)
    base = resolve_base(spec.base, progress)
    spec_hash = stable_hash({"spec": spec.model_dump(mode="json"), "base_sha256": base.sha256})
    if (out / REPORT).is_file():
        old = json.loads((out / REPORT).read_text(encoding="utf-8"))
        if old.get("spec_hash") == spec_hash:
            return {**old, "reused": True}
    if out.exists() and any(out.iterdir()):
        raise BadInputError(f"--out {out}: exists and holds something else; choose a new "
                            "directory or remove it")
    heldout_docs: list[str] = []
    for p in spec.heldout:
        from tokenfoundry.tasks.evaluate.texts import read_texts

        heldout_docs += read_texts(p).docs
    if spec.filter == "reference" and not spec.reference:
        raise BadInputError("filter 'reference' needs reference text: set extend.reference "
                            "(--reference PATH)")
    reference: list[str] = []
    for p in spec.reference:
        from tokenfoundry.tasks.evaluate.texts import read_texts

        reference += read_texts(p).docs
    texts, sources = corpus_reader(spec, workspace)
    if not heldout_docs and workspace is not None:  # the held-out documents of workspace corpora
        heldout_docs = workspace_heldout(spec, workspace)
    base_json = check_bpe_tokenizer(base.path / "tokenizer.json", f"base {spec.base}")

    # 1. merges
    t_merges = time.perf_counter()
    h = hashlib.sha256()
    ext = learn_merges(base_json, _hashing(texts(), h), spec.new_tokens, filter=spec.filter,
                       reference=reference or None, min_frequency=spec.min_frequency,
                       progress=progress)
    t_merges = time.perf_counter() - t_merges
    if not ext.new_tokens:
        raise BadInputError(f"corpora {spec.corpora}: no merge reached min_frequency "
                            f"{spec.min_frequency} (filter {spec.filter}); give more target text")

    # 2. base model and the new rows
    if progress:
        progress("load base model", 0, None)
    model = AutoModelForCausalLM.from_pretrained(str(base.path), dtype=torch.float32,
                                                 local_files_only=True)
    model.eval()
    E, E_out, tied, old_tokens, old_bytes = base_arrays(model, base_json, ext.n_old,
                                                        f"base {spec.base}")
    tmp_root = out.parent if out.parent.exists() else None
    if tmp_root is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_root = out.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=tmp_root))
    try:
        (tmp / "tokenizer.json").write_text(json.dumps(ext.data, ensure_ascii=False),
                                            encoding="utf-8")
        ctx = InitContext(
            embeddings=E, output_embeddings=E_out, old_tokens=old_tokens, old_token_bytes=old_bytes,
            new_tokens=ext.new_tokens, new_token_bytes=ext.new_token_bytes, leaves=ext.leaves,
            target_texts=texts, tokenizer_path=tmp / "tokenizer.json",
            base_tokenizer_path=base.path / "tokenizer.json",
            init_std=float(getattr(model.config, "initializer_range", 0.02)), seed=spec.seed,
            params=dict(spec.init_params), progress=progress)
        if progress:
            progress(f"init {spec.init}", 0, None)
        t_init = time.perf_counter()
        try:
            result = initialise(spec.init, ctx)
        except InitError as e:
            raise BadInputError(f"init {spec.init}: {e}") from None
        except ModuleNotFoundError as e:
            raise BadInputError(f"init {spec.init}: not available in this install ({e})") from None
        t_init = time.perf_counter() - t_init
        resized = resize(model, result.rows, result.output_rows, E, E_out, tied)
        resized.save_pretrained(tmp, safe_serialization=True)
        for name in _TOKENIZER_FILES:
            if (base.path / name).is_file() and not (tmp / name).exists():
                shutil.copy2(base.path / name, tmp / name)

        # 3. measurements
        old_tok = Tokenizer.from_str(json.dumps(base_json))
        new_tok = Tokenizer.from_file(str(tmp / "tokenizer.json"))
        measured: dict = {}
        if heldout_docs:
            b0, n0, nb = bytes_per_token(old_tok, heldout_docs)
            b1, n1, _ = bytes_per_token(new_tok, heldout_docs)
            measured = {"heldout_bytes": nb, "tokens_before": n0, "tokens_after": n1,
                        "bytes_per_token_before": b0, "bytes_per_token_after": b1,
                        "token_reduction": 1 - n1 / max(n0, 1)}
            from tokenfoundry.tasks.evaluate.bits_per_byte import score, segments

            docs = heldout_docs
            if spec.bpb_max_docs_bytes:
                docs = _cap(heldout_docs, spec.bpb_max_docs_bytes)
            segs = segments(docs, spec.bpb_max_bytes)
            s_base = score(model_from(base.path), old_tok, segs, name="base", progress=progress)
            s_new = score(resized, new_tok, segs, name="extended", progress=progress)
            measured["bits_per_byte_base"] = s_base.bits_per_byte
            measured["bits_per_byte"] = s_new.bits_per_byte
            measured["bits_per_byte_vs_base"] = s_new.bits_per_byte / s_base.bits_per_byte
            measured["bpb_bytes"] = s_new.bytes
            measured["bpb_segments"] = s_new.segments
        report = {
            "out": str(out), "spec_hash": spec_hash, "spec": spec.model_dump(mode="json"),
            "base": {"name": base.name, "sha256": base.sha256, "source": base.source,
                     "path": str(base.path), "vocab_size": ext.n_old, "tied": tied},
            "corpus": {"sources": sources, "sha256": h.hexdigest(), "words": ext.words,
                       "distinct_words": ext.distinct_words},
            "init": spec.init, "init_params": dict(spec.init_params), "seed": spec.seed,
            "filter": spec.filter, "tokens_added": len(ext.new_tokens),
            "vocab_size": ext.n_old + len(ext.new_tokens), "merges_stopped": ext.stopped,
            "merges_refused": ext.skipped, "fallbacks": result.fallbacks,
            "init_details": result.details, "merge_seconds": t_merges, "init_seconds": t_init,
            "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), **measured,
            "reused": False,
        }
        (tmp / REPORT).write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str),
                                  encoding="utf-8")
        tmp.chmod(0o755)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def base_arrays(model, base_json: dict, n_old: int, what: str):
    """(E, E_out or None, tied, old token strings, old token bytes) of a loaded base model."""
    emb_in = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight.data_ptr() == emb_in.data_ptr()
    if emb_in.shape[0] != n_old:
        raise BadInputError(f"{what}: embedding rows {emb_in.shape[0]} != tokenizer size "
                            f"{n_old}; extension needs one row per token id")
    E = emb_in.detach().numpy().copy()
    E_out = None if tied else head.weight.detach().numpy().copy()
    old_tokens = [""] * n_old
    for s, i in base_json["model"]["vocab"].items():
        old_tokens[i] = s
    for a in base_json.get("added_tokens", []):
        old_tokens[a["id"]] = a["content"]
    byte_level = is_byte_level(base_json)
    added_ids = {a["id"] for a in base_json.get("added_tokens", [])}
    old_bytes = [s.encode("utf-8") if i in added_ids else token_bytes(s, byte_level)
                 for i, s in enumerate(old_tokens)]
    return E, E_out, tied, old_tokens, old_bytes


def _cap(docs: list[str], max_bytes: int) -> list[str]:
    kept, left = [], max_bytes
    for d in docs:
        b = d.encode("utf-8")
        if len(b) >= left:
            kept.append(b[:left].decode("utf-8", "ignore"))
            break
        kept.append(d)
        left -= len(b)
    return kept


def model_from(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)
    return m.eval()


def resize(model, rows: np.ndarray, output_rows: np.ndarray | None, E: np.ndarray,
           E_out: np.ndarray | None, tied: bool):
    """Append the new rows; old rows stay bit-identical (checked), tied stays tied."""
    import torch

    n_old, n_new = E.shape[0], rows.shape[0]
    if not tied and output_rows is None:
        raise InvariantError("untied base: the init method returned no output rows")
    model.resize_token_embeddings(n_old + n_new, mean_resizing=False)
    with torch.no_grad():
        w = model.get_input_embeddings().weight
        w[n_old:] = torch.from_numpy(rows)
        if not tied:
            model.get_output_embeddings().weight[n_old:] = torch.from_numpy(output_rows)
    if tied:
        model.tie_weights()
        assert model.get_output_embeddings().weight.data_ptr() == \
            model.get_input_embeddings().weight.data_ptr(), "tied embeddings came untied"
    w = model.get_input_embeddings().weight.detach().numpy()
    if not np.array_equal(w[:n_old], E) or (E_out is not None and not np.array_equal(
            model.get_output_embeddings().weight.detach().numpy()[:n_old], E_out)):
        raise InvariantError("resize changed an old embedding row")
    model.config.vocab_size = n_old + n_new
    return model
