"""Evaluation text: files and directories given on the command line, or the held-out documents
of workspace corpora (the same md5 rule the trainer uses, ``storage.splits``).

Formats: ``.txt``/``.md``/other text files (one document per file), ``.jsonl`` (``.gz``/``.zst``,
one document per line with a ``text`` field and optional ``lang``), ``.parquet`` (a ``text``
column, optional ``lang`` and ``doc_id``). Directories are walked recursively; in directories,
files that are not UTF-8 text are skipped (and counted), an explicitly named file must be valid.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from tokenfoundry.schemas.errors import BadInputError

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ""}


@dataclass
class TextSet:
    """One evaluation dataset: documents with their language."""

    name: str
    source: str
    docs: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    skipped: int = 0


def _open_text(p: Path) -> io.TextIOBase:
    name = p.name
    if name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8")
    if name.endswith(".zst"):
        import zstandard

        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(p, "rb")),
                                encoding="utf-8")
    return open(p, encoding="utf-8")


def _read_jsonl(p: Path, ts: TextSet, text_field: str) -> None:
    with _open_text(p) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(f"{p}:{n}: not valid JSON ({e.msg})") from None
            text = rec.get(text_field) if isinstance(rec, dict) else None
            if not isinstance(text, str):
                raise BadInputError(f"{p}:{n}: no string field {text_field!r}")
            ts.docs.append(text)
            ts.langs.append(str(rec.get("lang") or "und"))


def _read_parquet(p: Path, ts: TextSet, text_field: str) -> None:
    try:
        pf = pq.ParquetFile(p)
    except Exception as e:  # noqa: BLE001
        raise BadInputError(f"{p}: not a readable Parquet file: {e}") from None
    names = pf.schema_arrow.names
    if text_field not in names:
        raise BadInputError(f"{p}: no column {text_field!r} (columns: {names})")
    cols = [text_field] + (["lang"] if "lang" in names else [])
    for batch in pf.iter_batches(columns=cols, batch_size=65536):
        texts = batch.column(0).to_pylist()
        langs = batch.column(1).to_pylist() if len(cols) > 1 else ["und"] * len(texts)
        for t, lg in zip(texts, langs):
            if isinstance(t, str):
                ts.docs.append(t)
                ts.langs.append(str(lg or "und"))


def _read_file(p: Path, ts: TextSet, text_field: str, strict: bool) -> None:
    name = p.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson")):
        _read_jsonl(p, ts, text_field)
    elif name.endswith(".parquet"):
        _read_parquet(p, ts, text_field)
    else:
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            if strict:
                raise BadInputError(f"{p}: not UTF-8 text; give txt/md, jsonl or parquet") from None
            ts.skipped += 1
            return
        if text.strip():
            ts.docs.append(text)
            ts.langs.append("und")


def read_texts(path: str, text_field: str = "text", max_docs: int | None = None) -> TextSet:
    """Read one --text PATH into a TextSet (name = file stem or directory name)."""
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"--text {p}: no such file or directory")
    ts = TextSet(name=p.name.split(".")[0] if p.is_file() else p.name, source=str(p))
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            _read_file(f, ts, text_field, strict=False)
            if max_docs and len(ts.docs) >= max_docs:
                break
    else:
        _read_file(p, ts, text_field, strict=True)
    if max_docs:
        ts.docs, ts.langs = ts.docs[:max_docs], ts.langs[:max_docs]
    if not ts.docs:
        raise BadInputError(f"--text {p}: no documents found (empty, or no txt/md/jsonl/parquet)")
    return ts


def read_heldout(workspace: str, corpus: str, fraction: float, ref: str = "latest",
                 max_docs: int | None = None) -> TextSet:
    """The held-out documents of a corpus snapshot: ``is_heldout(doc_id, fraction)``."""
    from tokenfoundry.storage.catalog import connect, scan
    from tokenfoundry.storage.splits import heldout_sql
    from tokenfoundry.storage.workspace import Workspace

    ws = Workspace(workspace)
    try:
        snap = ws.resolve(corpus, ref)
    except Exception as e:  # noqa: BLE001 - the workspace's own message names what is missing
        if getattr(e, "exit_code", None) is not None:
            raise
        raise BadInputError(f"--corpus {corpus}: cannot resolve {ref!r} in {workspace}: {e}") from None
    con = connect(ws)
    limit = f" LIMIT {int(max_docs)}" if max_docs else ""
    rows = con.execute(
        f"SELECT text, coalesce(lang, 'und') AS lang FROM {scan(snap)} "
        f"WHERE {heldout_sql(fraction)} ORDER BY doc_id{limit}").fetchall()
    ts = TextSet(name=f"{corpus}:heldout", source=f"{corpus}@{snap.snapshot_id}",
                 docs=[r[0] for r in rows], langs=[r[1] for r in rows])
    if not ts.docs:
        raise BadInputError(f"--corpus {corpus}: no held-out documents at fraction {fraction}; "
                            "raise --holdout-fraction or ingest more documents")
    return ts
