"""The ingest core: sources -> a content-addressed corpus snapshot (plain Python, no Prefect).

Three steps, each usable alone so that a flow can fan the middle one out over a task runner:

1. :func:`plan_ingest` validates the spec, expands the sources into files, fingerprints every
   file (size + xxh3-128 of its bytes), cuts large uncompressed jsonl files into line-aligned
   units, and derives the snapshot id from (spec hash, inputs). It writes nothing; every bad
   path, unknown format or config error is a ``BadInputError`` here.
2. :func:`ingest_unit` reads one unit, normalises and filters its records, and writes the
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
from tokenfoundry.tasks.ingest.langid import UNDETERMINED, identify
from tokenfoundry.tasks.ingest.normalise import normalise_text
from tokenfoundry.tasks.ingest.quality import alpha_fraction, repeated_line_fraction
from tokenfoundry.tasks.ingest.readers import Records, excerpt_of, open_raw, read_unit
from tokenfoundry.tasks.ingest.sources import detect_format, expand_sources  # noqa: F401
from tokenfoundry.tasks.progress import Progress, no_progress

#: Records processed between two progress reports inside a unit.
PROGRESS_RECORDS = 1024
#: Bump when the output of the same inputs and spec changes (it is part of the snapshot id).
INGEST_VERSION = 1
STAGE = "ingest"
REJECTS = "rejects"
_FP_CHUNK = 8 * 1024 * 1024
_C0 = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])  # Cc below 0x80 except \t \n


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


# ---- per-record processing ---------------------------------------------------------------------

class _Batch:
    """One processed batch: the kept rows as a table, and the rejects as columns."""

    __slots__ = ("table", "rej", "reasons", "langs", "kept_bytes")

    def __init__(self) -> None:
        self.table: pa.Table | None = None
        self.rej: dict[str, list] = {n: [] for n in REJECTS_SCHEMA.names}
        self.reasons: Counter[str] = Counter()
        self.langs: Counter[str] = Counter()
        self.kept_bytes = 0

    @property
    def kept(self) -> int:
        return 0 if self.table is None else self.table.num_rows

    def reject(self, corpus: str, source: str, loc: str, reason: str, detail: str,
               excerpt: str) -> None:
        r = self.rej
        r["corpus"].append(corpus)
        r["source"].append(source)
        r["location"].append(loc)
        r["reason"].append(reason)
        r["detail"].append(detail)
        r["excerpt"].append(excerpt)
        self.reasons[reason] += 1


#: C0 control bytes other than \t and \n (\r included: line endings are rewritten with them).
_C0_LUT = np.zeros(256, bool)
_C0_LUT[[*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F]] = True
_EMPTY, _SHORT, _LONG, _ALPHA, _REPEAT, _SURROGATE = 1, 2, 3, 4, 5, 6
_REASON = {_EMPTY: "empty", _SHORT: "too_short", _LONG: "too_long", _ALPHA: "low_alpha_fraction",
           _REPEAT: "repeated_lines", _SURROGATE: "invalid_utf8"}


def _control_rows(data_np: np.ndarray, offs: np.ndarray, n: int) -> np.ndarray:
    """Rows holding a C0 control (other than \t, \n) or a C1 control (UTF-8 C2 80..C2 9F)."""
    low = np.flatnonzero(data_np < 0x20)  # vector compares, not a fancy-indexed lookup
    low = low[_C0_LUT[data_np[low]]]
    pos = np.concatenate([low, np.flatnonzero(data_np == 0x7F)])
    c2 = np.flatnonzero(data_np[:-1] == 0xC2)
    if len(c2):
        nxt = data_np[c2 + 1]
        pos = np.concatenate([pos, c2[(nxt >= 0x80) & (nxt <= 0x9F)]])
    rows = np.zeros(n, bool)
    if len(pos):
        rows[np.searchsorted(offs, pos, side="right") - 1] = True
    return rows


def _as_arrow(texts: list[str]) -> tuple[pa.Array, list[int]]:
    """A large_string array of the texts, and the rows that had lone surrogates (blanked)."""
    try:
        return pa.array(texts, pa.large_string()), []
    except (UnicodeEncodeError, pa.ArrowInvalid):
        bad = []
        clean = []
        for i, t in enumerate(texts):
            try:
                t.encode("utf-8")
                clean.append(t)
            except UnicodeEncodeError:
                bad.append(i)
                clean.append("")
        return pa.array(clean, pa.large_string()), bad


def _buffers(arr: pa.Array) -> tuple[np.ndarray, memoryview, np.ndarray]:
    """(offsets int64 [n+1], data buffer, data as uint8 up to the last row's end)."""
    n = len(arr)
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], np.int64)[arr.offset: arr.offset + n + 1]
    data = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
    data_np = np.frombuffer(data, np.uint8)[: int(offs[-1])] if n else np.zeros(0, np.uint8)
    return offs, data, data_np


def process_records(records: Records, source: str, spec: IngestSpec) -> _Batch:
    """Normalise, filter, identify and hash one batch of records.

    Vectorised where it pays: Arrow kernels and one numpy pass over the data buffer find the
    rows that are plain ASCII without control characters (already NFC/NFKC, nothing to
    remove); those keep their Arrow bytes untouched. Only the other rows become Python strings
    for ``unicodedata`` and the control-character regex, and only rows that changed are
    re-encoded. Hashes are xxh3-128 per row over the UTF-8 bytes (buffer slices, no copies).
    """
    out = _Batch()
    corpus = spec.corpus
    for loc, reason, detail, excerpt in records.rejects:
        out.reject(corpus, source, loc, reason, detail, excerpt)
    n = len(records.text)
    if n == 0:
        return out
    form = spec.normalization
    arr, bad = _as_arrow(records.text)
    offs, data, data_np = _buffers(arr)
    o = offs.tolist()
    lengths = np.diff(offs)
    has_ctrl = _control_rows(data_np, offs, n)
    non_ascii = ~pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    dirty = non_ascii | has_ctrl
    empty = pc.utf8_is_space(arr).to_numpy(zero_copy_only=False) | (lengths == 0)
    n_bytes = lengths.copy()
    n_chars = lengths.copy()
    code = np.zeros(n, np.int8)
    strs: dict[int, str] = {}  # decoded (normalised) text of the per-row rows
    changed: dict[int, str] = {}
    for i in np.flatnonzero(dirty).tolist():
        s0 = str(data[o[i]:o[i + 1]], "utf-8")
        s = normalise_text(s0, form, bool(has_ctrl[i]))
        if s != s0:
            changed[i] = s
            n_bytes[i] = len(s.encode("utf-8"))
        strs[i] = s
        n_chars[i] = len(s)
        empty[i] = not s or s.isspace()
    for i in bad:
        code[i] = _SURROGATE
    code[(code == 0) & empty] = _EMPTY
    code[(code == 0) & (n_chars < spec.min_chars)] = _SHORT
    code[(code == 0) & (n_chars > spec.max_chars)] = _LONG

    def text_of(i: int) -> str:
        t = strs.get(i)
        return t if t is not None else str(data[o[i]:o[i + 1]], "utf-8")

    alpha: dict[int, float] = {}
    if spec.min_alpha_fraction > 0.0:
        for i in np.flatnonzero(code == 0).tolist():
            af = alpha_fraction(text_of(i))
            if af < spec.min_alpha_fraction:
                code[i] = _ALPHA
                alpha[i] = af
    repeat: dict[int, float] = {}
    if spec.max_repeated_line_fraction < 1.0:
        for i in np.flatnonzero(code == 0).tolist():
            rf = repeated_line_fraction(text_of(i))
            if rf > spec.max_repeated_line_fraction:
                code[i] = _REPEAT
                repeat[i] = rf

    for i in np.flatnonzero(code).tolist():
        c = int(code[i])
        loc = records.location[i]
        if c == _SURROGATE:
            out.reject(corpus, source, loc, "invalid_utf8", "lone surrogate in the text",
                       excerpt_of(records.text[i].encode("utf-8", "replace")))
            continue
        detail = {
            _EMPTY: "no text after normalisation",
            _SHORT: f"{n_chars[i]} characters < min_chars {spec.min_chars}",
            _LONG: f"{n_chars[i]} characters > max_chars {spec.max_chars}",
            _ALPHA: f"alpha fraction {alpha.get(i, 0):.3f} < {spec.min_alpha_fraction}",
            _REPEAT: f"repeated-line fraction {repeat.get(i, 0):.3f} > "
                     f"{spec.max_repeated_line_fraction}",
        }[c]
        out.reject(corpus, source, loc, _REASON[c], detail, excerpt_of(text_of(i)))

    kept = np.flatnonzero(code == 0)
    if not len(kept):
        return out
    kept_list = kept.tolist()
    if changed:
        mask = np.zeros(n, bool)
        idx = sorted(changed)
        mask[idx] = True
        arr = pc.replace_with_mask(arr, pa.array(mask),
                                   pa.array([changed[i] for i in idx], pa.large_string()))
    text_kept = arr.take(pa.array(kept, pa.int64())) if len(kept) < n else arr
    k_offs, k_data, _ = _buffers(text_kept)
    h128 = xxhash.xxh3_128_hexdigest
    ko = k_offs.tolist()
    hashes = [h128(k_data[ko[j]:ko[j + 1]]) for j in range(len(kept_list))]
    prefix = f"{corpus}\x00{source}\x00".encode("utf-8", "surrogatepass")
    locs = [records.location[i] for i in kept_list]
    doc_ids = [h128(prefix + loc.encode("utf-8", "surrogatepass")) for loc in locs]

    forced = spec.lang
    src_langs = records.lang
    langs: list[str] = []
    scores: list[float | None] = []
    for i in kept_list:
        lang = forced or src_langs[i]
        score = None
        if lang is None:
            if spec.lang_id:
                lang, score = identify(text_of(i), spec.lang_id_min_score, spec.lang_id_chars,
                                           spec.lang_id_backend)
            else:
                lang = UNDETERMINED
        langs.append(lang)
        scores.append(score)
    k = len(kept_list)
    kept_nb = n_bytes[kept]
    out.table = pa.Table.from_arrays([
        pa.array(doc_ids, pa.string()),
        pa.array([corpus] * k, pa.string()),
        pa.array([source] * k, pa.string()),
        pa.array([records.source_id[i] for i in kept_list], pa.string()),
        pa.array(locs, pa.string()),
        pa.array(langs, pa.string()),
        pa.array(scores, pa.float32()),
        pa.array([records.align_key[i] for i in kept_list], pa.string()),
        text_kept,
        pa.array(kept_nb, pa.int64()),
        pa.array(n_chars[kept], pa.int64()),
        pa.array(hashes, pa.string()),
        pa.array([records.flags[i] for i in kept_list], pa.list_(pa.string())),
    ], schema=CORPUS_SCHEMA)
    out.langs.update(langs)
    out.kept_bytes = int(kept_nb.sum())
    return out


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
    several units and at least 64 MB). The heavy parts - pyarrow's JSON parser, the Parquet
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
