"""The ingest core: sources -> a content-addressed corpus snapshot (plain Python, no Prefect).

Three steps, each usable alone so that a flow can fan the middle one out over a task runner:

1. :func:`plan_ingest` validates the spec, expands the sources into files
   (:mod:`.sources`: walks, patterns, formats, and the list of what was skipped), fingerprints every
   file (size + xxh3-128 of its bytes), cuts large uncompressed jsonl files into line-aligned
   units, and derives the snapshot id from (spec hash, inputs). It writes nothing; every bad
   path, unknown format or config error is a ``BadInputError`` here.
2. :func:`ingest_unit` reads one unit (:mod:`.readers`), normalises and filters its records
   (:mod:`.process`), and writes the
   unit's shards (documents + rejects) plus a marker, through ``storage.workspace.PartWriter``.
   A unit whose marker exists (a crashed run got that far) is not redone.
3. :func:`commit_ingest` checks the counts (``read == kept + rejected`` per unit and in total,
   and against the rows actually written), writes the manifest last, and moves the corpus'
   ``ingest`` and ``latest`` refs.

:func:`ingest` runs the three in order, and returns the committed snapshot without rework when
the same inputs and spec were ingested before (``reused: true``).
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import xxhash

from tokenfoundry.schemas.config import stable_hash
from tokenfoundry.schemas.errors import BadInputError, InvariantError
from tokenfoundry.schemas.ingest import (
    IngestPlan,
    IngestResult,
    IngestSpec,
    IngestUnit,
    SkippedFile,
    SourceCounts,
)
from tokenfoundry.schemas.tables import CORPUS_SCHEMA, REJECTS_SCHEMA
from tokenfoundry.storage.workspace import (
    PartWriter,
    Snapshot,
    Workspace,
    commit_parts,
    read_part,
)
from tokenfoundry.tasks.ingest.process import process_records
from tokenfoundry.tasks.ingest.readers import open_raw, read_unit
from tokenfoundry.tasks.ingest.sources import detect_format, expand_sources  # noqa: F401
from tokenfoundry.tasks.progress import Progress, no_progress

#: Records processed between two progress reports inside a unit.
PROGRESS_RECORDS = 1024
#: Bump when the output of the same inputs and spec changes (it is part of the snapshot id).
INGEST_VERSION = 1
STAGE = "ingest"
REJECTS = "rejects"
_FP_CHUNK = 8 * 1024 * 1024


# ---- planning (no writes) ---------------------------------------------------------------------

def _fingerprint(path: str, fmt: str, compression: str | None, unit_bytes: int
                 ) -> tuple[int, str, list[tuple[int, int]]]:
    """(size, xxh3-128 hex, line-aligned cut points [(offset, first line)] for jsonl)."""
    h = xxhash.xxh3_128()
    size = 0
    lines_before = 0
    cuts: list[tuple[int, int]] = []
    splittable = fmt == "jsonl" and compression is None
    next_cut = unit_bytes
    with open_raw(path) as fh:
        while True:
            chunk = fh.read(_FP_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            if splittable:
                off = size
                while next_cut < off + len(chunk):
                    idx = chunk.find(b"\n", max(0, next_cut - off))
                    if idx == -1:
                        break
                    cut = off + idx + 1
                    cuts.append((cut, lines_before + chunk.count(b"\n", 0, idx + 1) + 1))
                    next_cut = cut + unit_bytes
                lines_before += chunk.count(b"\n")
            size += len(chunk)
    cuts = [c for c in cuts if c[0] < size]
    return size, h.hexdigest(), cuts


def plan_ingest(spec: IngestSpec, progress: Progress = no_progress) -> IngestPlan:
    """Validate and fingerprint everything; derive the snapshot id. Writes nothing."""
    progress(0, None, "listing sources")
    files, skipped = expand_sources(spec)
    resolved = spec.model_copy(update={"sources": [
        s if "://" in s else os.path.abspath(os.path.expanduser(s)) for s in spec.sources]})
    inputs: list[dict[str, Any]] = []
    units: list[IngestUnit] = []
    width = max(5, len(str(len(files))))
    seen = 0
    for i, (path, fmt, comp) in enumerate(files):
        progress(seen, None, f"fingerprinting file {i + 1} of {len(files)}")
        try:
            size, digest, cuts = _fingerprint(path, fmt, comp, spec.unit_bytes)
        except OSError as e:
            raise BadInputError(f"{path}: cannot read it ({e}); check its permissions") from None
        seen += size
        inputs.append({"path": path, "size": size, "xxh3_128": digest})
        bounds = [(0, 1), *cuts]
        for k, (start, first_line) in enumerate(bounds):
            end = bounds[k + 1][0] if k + 1 < len(bounds) else None
            units.append(IngestUnit(name=f"{i:0{width}d}-{k:04d}", path=path, format=fmt,
                                    compression=comp, size=size, start=start, end=end,
                                    first_line=first_line))
    progress(seen, None, f"fingerprinted {len(files)} files")
    spec_dict = resolved.model_dump(mode="json")
    spec_hash = resolved.spec_hash()
    sid = stable_hash({"stage": STAGE, "version": INGEST_VERSION, "spec_hash": spec_hash,
                       "inputs": inputs}, n=20)
    return IngestPlan(snapshot_id=sid, corpus=spec.corpus, spec=spec_dict, spec_hash=spec_hash,
                      inputs=inputs, units=units, skipped=skipped)


def _table(cols: dict[str, list], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict(cols, schema=schema)


# ---- units ------------------------------------------------------------------------------------

def _spec_of(plan: IngestPlan) -> IngestSpec:
    return IngestSpec.model_validate(plan.spec)


def ingest_unit(ws: Workspace, plan: IngestPlan, unit: IngestUnit,
                progress: Progress = no_progress) -> dict[str, Any]:
    """Read, process and write one unit; return its counts (the unit marker's ``info``).

    A unit that a previous (crashed) run already finished is not redone.
    """
    done = read_part(ws, plan.corpus, plan.snapshot_id, unit.name)
    if done is not None:
        progress(1, 1, f"{unit.name} done before")
        return done["info"]
    spec = _spec_of(plan)
    writer = PartWriter(ws, plan.corpus, plan.snapshot_id, unit.name, schema=CORPUS_SCHEMA,
                        extras={REJECTS: REJECTS_SCHEMA})
    read = kept = rejected = kept_bytes = 0
    reasons: Counter[str] = Counter()
    langs: Counter[str] = Counter()
    unit_bytes = (unit.end if unit.end is not None else unit.size) - unit.start
    name = posixpath.basename(unit.path)
    before = 0  # bytes of the unit done before the current batch
    try:
        for records, done_bytes in read_unit(unit, spec):
            # processed in pieces so that progress moves every PROGRESS_RECORDS records (language
            # id of a reader batch can take seconds); written as one table per reader batch
            pieces = records.split(PROGRESS_RECORDS)
            tables = []
            for k, piece in enumerate(pieces, 1):
                read += piece.size
                b = process_records(piece, unit.path, spec)
                if b.table is not None:
                    tables.append(b.table)
                if b.rej["reason"]:
                    writer.write_extra(REJECTS, _table(b.rej, REJECTS_SCHEMA))
                kept += b.kept
                rejected += len(b.rej["reason"])
                reasons.update(b.reasons)
                langs.update(b.langs)
                kept_bytes += b.kept_bytes
                progress(before + (done_bytes - before) * k / len(pieces), unit_bytes,
                         f"{name}: {read:,} records")
            if tables:
                writer.write(pa.concat_tables(tables) if len(tables) > 1 else tables[0])
            before = done_bytes
        if read != kept + rejected:
            raise InvariantError(f"{unit.path} (unit {unit.name}): read {read} != kept {kept} "
                                 f"+ rejected {rejected}")
        info = {"unit": unit.name, "source": unit.path, "format": unit.format, "read": read,
                "kept": kept, "rejected": rejected, "rejects_by_reason": dict(sorted(reasons.items())),
                "langs": dict(sorted(langs.items())), "kept_bytes": kept_bytes}
        record = writer.close(info)
    except BaseException:
        writer.abort()
        raise
    written = sum(f["rows"] for f in record["files"])
    written_rej = sum(f["rows"] for f in record["extra_files"].get(REJECTS, []))
    if written != kept or written_rej != rejected:
        raise InvariantError(f"{unit.path}: wrote {written} documents and {written_rej} rejects, "
                             f"but counted {kept} kept and {rejected} rejected")
    return info


# ---- commit -----------------------------------------------------------------------------------

def commit_ingest(ws: Workspace, plan: IngestPlan, infos: list[dict[str, Any]]) -> IngestResult:
    """Check the counts, write the manifest (last), set refs ``ingest`` and ``latest``."""
    by_unit = {i["unit"]: i for i in infos}
    missing = [u.name for u in plan.units if u.name not in by_unit]
    if missing:
        raise InvariantError(f"snapshot {plan.snapshot_id}: units {missing[:5]} have no result")
    ordered = [by_unit[u.name] for u in plan.units]
    read = sum(i["read"] for i in ordered)
    kept = sum(i["kept"] for i in ordered)
    rejected = sum(i["rejected"] for i in ordered)
    if read != kept + rejected:
        raise InvariantError(f"ingest of {plan.corpus!r}: read {read} != kept {kept} + rejected "
                             f"{rejected}")
    reasons: Counter[str] = Counter()
    langs: Counter[str] = Counter()
    per_source: dict[str, dict[str, Any]] = {}
    for i in ordered:
        reasons.update(i["rejects_by_reason"])
        langs.update(i["langs"])
        s = per_source.setdefault(i["source"], {"source": i["source"], "format": i["format"],
                                                "read": 0, "kept": 0, "rejected": 0})
        for k in ("read", "kept", "rejected"):
            s[k] += i[k]
    stats = {
        "rejects_by_reason": dict(sorted(reasons.items())),
        "langs": dict(sorted(langs.items(), key=lambda kv: (-kv[1], kv[0]))),
        "kept_bytes": sum(i["kept_bytes"] for i in ordered),
        "files": len(plan.inputs),
        "skipped_files": [s.model_dump() for s in plan.skipped],
        "sources": list(per_source.values()),
    }
    manifest = commit_parts(
        ws, plan.corpus, plan.snapshot_id, [u.name for u in plan.units], schema=CORPUS_SCHEMA,
        extras={REJECTS: REJECTS_SCHEMA}, stage=STAGE, spec=plan.spec, spec_hash=plan.spec_hash,
        inputs=plan.inputs, counts={"read": read, "kept": kept, "rejected": rejected},
        stats=stats)
    rows = manifest.rows
    rej_rows = sum(f.rows for f in manifest.extra_files.get(REJECTS, []))
    if manifest.counts.get("read") != read or rows != kept or rej_rows != rejected:
        raise InvariantError(f"snapshot {plan.snapshot_id}: the manifest holds {rows} documents "
                             f"and {rej_rows} rejects, the units counted {kept} and {rejected}")
    ws.set_ref(plan.corpus, "ingest", plan.snapshot_id)
    ws.set_ref(plan.corpus, "latest", plan.snapshot_id)
    return result_of(ws.snapshot(plan.corpus, plan.snapshot_id), reused=False)


def result_of(snap: Snapshot, reused: bool) -> IngestResult:
    """The result object (the CLI's ``--json``) of a committed ingest snapshot."""
    m = snap.manifest
    ws = snap.workspace
    return IngestResult(
        snapshot_id=m.snapshot_id,
        read=m.counts.get("read", 0),
        kept=m.counts.get("kept", 0),
        rejected=m.counts.get("rejected", 0),
        rejects_by_reason=m.stats.get("rejects_by_reason", {}),
        dataset_path=ws.full_uri(snap.dir),
        rejects_path=ws.full_uri(posixpath.join(snap.dir, "_" + REJECTS)),
        corpus=m.corpus,
        reused=reused,
        files=m.stats.get("files", 0),
        kept_bytes=m.stats.get("kept_bytes", 0),
        langs=m.stats.get("langs", {}),
        sources=[SourceCounts(**s) for s in m.stats.get("sources", [])],
        skipped=[SkippedFile(path=s, reason="unknown ending") if isinstance(s, str)
                 else SkippedFile(**s) for s in m.stats.get("skipped_files", [])],
    )


def reuse_if_committed(ws: Workspace, plan: IngestPlan) -> IngestResult | None:
    """The committed snapshot of this plan (refs moved to it), or None."""
    if not ws.has_snapshot(plan.corpus, plan.snapshot_id):
        return None
    ws.set_ref(plan.corpus, "ingest", plan.snapshot_id)
    ws.set_ref(plan.corpus, "latest", plan.snapshot_id)
    return result_of(ws.snapshot(plan.corpus, plan.snapshot_id), reused=True)


def default_workers(plan: IngestPlan) -> int:
    """Worker threads for the direct path: one per core for big multi-unit plans, else 1."""
    if len(plan.units) < 2 or plan.total_bytes < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, len(plan.units), 8))


def ingest(ws: Workspace, spec: IngestSpec, progress: Progress = no_progress,
           workers: int | None = None) -> IngestResult:
    """Ingest ``spec.sources`` into a snapshot of ``spec.corpus`` (or return the committed one).

    ``workers`` > 1 runs units on that many threads (default: one per core when the plan has
    several units and at least 64 MB). The heavy parts - JSON parsing, the Parquet
    writer, compression, numpy screening, hashing - release the GIL, so threads overlap them
    without the start-up cost of processes. The snapshot is the same for any number.
    """
    plan = plan_ingest(spec, progress)
    reused = reuse_if_committed(ws, plan)
    if reused is not None:
        progress(1, 1, "reused")
        return reused
    total = max(1, plan.total_bytes)
    n = default_workers(plan) if workers is None else max(1, workers)
    if n > 1:
        infos = _run_in_threads(ws, plan, n, progress, total)
    else:
        base = 0
        infos = []
        for unit in plan.units:
            ub = _unit_bytes(unit)
            report: Callable[[float, float | None, str], None] = (
                lambda d, t, msg="", _b=base, _u=ub: progress(_b + min(d, _u), total, msg))
            infos.append(ingest_unit(ws, plan, unit, progress=report))
            base += ub
    result = commit_ingest(ws, plan, infos)
    progress(total, total, "committed")
    return result


PARALLEL_MIN_BYTES = 64 * 1024 * 1024


def _unit_bytes(unit: IngestUnit) -> int:
    return (unit.end if unit.end is not None else unit.size) - unit.start


def _run_in_threads(ws: Workspace, plan: IngestPlan, workers: int, progress: Progress,
                    total: int) -> list[dict[str, Any]]:
    import threading
    from concurrent.futures import ThreadPoolExecutor, as_completed

    lock = threading.Lock()
    done_per_unit: dict[str, float] = {}

    def run(unit: IngestUnit) -> dict[str, Any]:
        ub = _unit_bytes(unit)

        def report(d: float, t: float | None, msg: str = "") -> None:
            with lock:
                done_per_unit[unit.name] = min(d, ub)
                progress(sum(done_per_unit.values()), total, msg)

        return ingest_unit(ws, plan, unit, progress=report)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as ex:
        futures = {ex.submit(run, u): u for u in plan.units}
        infos = {futures[f].name: f.result() for f in as_completed(futures)}
    return [infos[u.name] for u in plan.units]
