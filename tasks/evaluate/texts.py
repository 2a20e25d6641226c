"""Evaluation text: files and directories given on the command line, or the held-out documents
of workspace corpora (the same md5 rule the trainer uses, ``storage.splits``).

``--text PATH`` is read by ingest's readers (``tasks.ingest.readers``), with ingest's walk and
format rules (``tasks.ingest.sources``): txt/md and other text files (one document per file),
jsonl (``.gz``/``.zst``, one document per line with a ``text`` field and optional ``lang``), csv,
parquet (a ``text`` column, optional ``lang``), gettext po/mo (one document per translation,
language from the catalog). A reader's reject (bad JSON, a cut stream, ...) is an error naming
the file and the place; in a directory, files that are binary or not UTF-8 are skipped and
counted, as are the entries the walk does not read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
from tokenfoundry.tasks.ingest.readers import read_unit
from tokenfoundry.tasks.ingest.sources import expand_sources

#: Longest evaluation document read (characters): whole books fit, a runaway line does not.
MAX_CHARS = 10_000_000
#: File-level rejects that skip a file found in a directory (an explicitly named one fails):
#: not text, not UTF-8, or a table without the text field.
_SKIPPABLE = {"binary", "invalid_utf8", "missing_field", "corrupt_file"}


@dataclass
class TextSet:
    """One evaluation dataset: documents with their language."""

    name: str
    source: str
    docs: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    skipped: int = 0


def _read_file(path: str, fmt: str, comp: str | None, spec: IngestSpec, ts: TextSet,
               in_dir: bool, max_docs: int | None) -> None:
    unit = IngestUnit(name="00000-0000", path=path, format=fmt, compression=comp,
                      size=os.path.getsize(path))
    docs: list[str] = []
    langs: list[str] = []
    for batch, _ in read_unit(unit, spec):
        for loc, reason, detail, _excerpt in batch.rejects:
            if in_dir and reason in _SKIPPABLE and (loc == "file" or reason == "missing_field"
                                                    and not docs):
                ts.skipped += 1
                return
            raise BadInputError(f"--text {path}: {loc}: {reason}: {detail}")
        for text, lang in zip(batch.text, batch.lang):
            if fmt in ("txt", "md"):
                if not text.strip():
                    continue
                text = text.replace("\r\n", "\n").replace("\r", "\n")  # as text-mode reading
            docs.append(text)
            langs.append(lang or "und")
        if max_docs and len(ts.docs) + len(docs) >= max_docs:
            break
    ts.docs += docs
    ts.langs += langs


def read_texts(path: str, text_field: str = "text", max_docs: int | None = None) -> TextSet:
    """Read one --text PATH into a TextSet (name = file stem or directory name)."""
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"--text {p}: no such file or directory")
    ts = TextSet(name=p.name.split(".")[0] if p.is_file() else p.name, source=str(p))
    spec = IngestSpec(corpus="evaluate", sources=[str(p)], text_field=text_field,
                      max_chars=MAX_CHARS, lang_id=False)
    try:
        files, skipped = expand_sources(spec, option="--text")
    except BadInputError as e:
        raise BadInputError(f"--text {e}") from None
    ts.skipped += len(skipped)
    in_dir = p.is_dir()
    for f, fmt, comp in files:
        _read_file(f, fmt, comp, spec, ts, in_dir, max_docs)
        if max_docs and len(ts.docs) >= max_docs:
            break
    if max_docs:
        ts.docs, ts.langs = ts.docs[:max_docs], ts.langs[:max_docs]
    if not ts.docs:
        raise BadInputError(f"--text {p}: no documents found (empty, or no txt/md/jsonl/csv/"
                            "parquet/po/mo)")
    return ts


def read_heldout(workspace: str, corpus: str, fraction: float, ref: str = "latest",
                 max_docs: int | None = None) -> TextSet:
    """The held-out documents of a corpus snapshot: the trainer's split rule
    (``storage.splits``: content hash below the fraction, at least min(100, n/5) documents)."""
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
        f"WHERE {heldout_sql(fraction, source=scan(snap))} ORDER BY content_hash{limit}").fetchall()
    ts = TextSet(name=f"{corpus}:heldout", source=f"{corpus}@{snap.snapshot_id}",
                 docs=[r[0] for r in rows], langs=[r[1] for r in rows])
    if not ts.docs:
        raise BadInputError(
            f"--corpus {corpus}: no held-out documents (fraction {fraction}; a corpus holds out "
            "at least min(100, n/5) documents); ingest more text or raise the fraction "
            "(train.holdout_fraction in a pipeline, evaluate --holdout-fraction)")
    return ts
