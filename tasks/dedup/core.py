"""The dedup stage: exact -> MinHash signatures per shard -> LSH buckets -> clusters -> snapshot.

Stages (each writes files you can inspect under
``<workspace>/_work/dedup/<corpus>/<snapshot>.rows<N>/`` until the output snapshot is committed,
as datatrove's signature -> buckets -> clusters -> filter):

1. ``run_exact``   DuckDB over the input Parquet: rank (source, location, doc_id), exact groups
                   by content_hash, earlier copies (incremental); optional boilerplate lines.
2. ``run_shard``   per shard of rows (fan-out unit of the flow): MinHash signatures of the
                   documents still in play and their LSH bucket rows, as Parquet.
3. ``finish``      DuckDB groups the buckets into candidate pairs, estimated-Jaccard verification,
                   union-find into clusters (root = smallest rank = kept), then the output snapshot
                   (kept documents + ``_clusters/`` table + ``_dedup_report.md``), refs "dedup"/"latest".

The output depends only on the input snapshot and the spec, never on how many workers ran the
shards or in which order they finished, so the flow (threads or Dask) and the direct CLI path
write the same snapshot. Its id is content-addressed (parent id + spec hash + earlier snapshots
in incremental mode); a re-run finds it committed and returns it without work.

Counts always balance: input == kept + exact_duplicates + near_duplicates + boilerplate_only.
"""

from __future__ import annotations

import io
import os
import posixpath
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from tokenfoundry.schemas.dedup import DedupResult, DedupSpec
from tokenfoundry.schemas.errors import InvariantError
from tokenfoundry.schemas.tables import CLUSTERS_SCHEMA
from tokenfoundry.storage.workspace import (
    PartWriter, Snapshot, Workspace, atomic_write_bytes, commit_parts,
)
from tokenfoundry.tasks.dedup.boilerplate import boilerplate_lines, strip_boilerplate
from tokenfoundry.tasks.dedup.clusters import UnionFind, size_histogram
from tokenfoundry.tasks.dedup.exact import ExactTable, exact_groups
from tokenfoundry.tasks.dedup.lsh import (
    BUCKET_SCHEMA, bucket_table, candidate_pairs, pair_jaccard, verify_pairs,
)
from tokenfoundry.tasks.dedup.minhash import (
    Permutations, shingle_hashes, signatures, words_of,
)
from tokenfoundry.tasks.dedup.plan import (  # noqa: F401 - the stage's public names
    JACCARD_PREFILTER_MARGIN, REQUIRED_COLUMNS, SHARD_ROWS, DedupPlan, ShardRef, bands_rows,
    plan_dedup, prior_snapshots, resolve_input,
)
from tokenfoundry.tasks.dedup.report import examples, report_markdown
from tokenfoundry.tasks.progress import Progress, no_progress

REPORT_NAME = "_dedup_report.md"  # "_": Parquet dataset readers of the directory skip it
_BATCH = 8192


# Per-process memo of what every shard of a plan reads and nobody rewrites: the committed input
# snapshot (its manifest) and the work files written once by the exact stage. A corpus of many
# small part files has hundreds of shards; reading these once per shard cost more than the
# MinHash work itself. Keyed by plan (work_dir is unique to the output snapshot id).
_MEMO: OrderedDict[tuple[str, ...], Any] = OrderedDict()
_MEMO_LOCK = threading.Lock()
_MEMO_SIZE = 4


def _memo(key: tuple[str, ...], make: Callable[[], Any]) -> Any:
    with _MEMO_LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
    value = make()
    with _MEMO_LOCK:
        _MEMO[key] = value
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return value


def _open(plan: DedupPlan) -> tuple[Workspace, DedupSpec, Snapshot]:
    def make() -> tuple[Workspace, Snapshot]:
        ws = Workspace(plan.workspace)
        return ws, ws.snapshot(plan.corpus, plan.input_snapshot)

    ws, snap = _memo(("open", plan.workspace, plan.corpus, plan.input_snapshot), make)
    return ws, DedupSpec.model_validate(plan.spec), snap


def _exact_table(ws: Workspace, plan: DedupPlan) -> pa.Table:
    """``exact.parquet`` of the plan (written once by :func:`run_exact`, then only read)."""
    path = posixpath.join(plan.work_dir, "exact.parquet")
    return _memo(("exact", plan.workspace, path), lambda: _read_parquet(ws, path))


def _temp_dir(ws: Workspace, plan: DedupPlan) -> str:
    if ws.is_local:
        d = posixpath.join(plan.work_dir, "duckdb")
        os.makedirs(d, exist_ok=True)
        return d
    return tempfile.mkdtemp(prefix="tokenfoundry-dedup-")


def _write_parquet(ws: Workspace, path: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    atomic_write_bytes(ws.fs, path, buf.getvalue())


def _read_parquet(ws: Workspace, path: str) -> pa.Table:
    with ws.fs.open(path, "rb") as fh:
        return pq.read_table(fh)


# ---- stage 1: exact --------------------------------------------------------------------------


def run_exact(plan: DedupPlan) -> dict[str, int]:
    """Exact groups (and boilerplate lines) -> ``exact.parquet`` (+ ``boilerplate.parquet``)."""
    ws, spec, snap = _open(plan)
    out = posixpath.join(plan.work_dir, "exact.parquet")
    tmp = _temp_dir(ws, plan)
    if not ws.fs.exists(out):
        prior = [ws.snapshot(plan.corpus, s) for s in plan.prior]
        table = exact_groups(ws, snap, exact=spec.exact, prior=prior, temp_dir=tmp)
        if len(table.idx) != plan.n_docs:
            raise InvariantError(f"exact stage read {len(table.idx)} rows of snapshot "
                                 f"{snap.snapshot_id}, its manifest says {plan.n_docs}")
        _write_parquet(ws, out, table.to_table())
    bp = posixpath.join(plan.work_dir, "boilerplate.parquet")
    n_lines = 0
    if spec.boilerplate_min_docs is not None:
        if not ws.fs.exists(bp):
            lines = boilerplate_lines(ws, snap, spec.boilerplate_min_docs, temp_dir=tmp)
            _write_parquet(ws, bp, pa.table({"line": pa.array(lines, pa.string())}))
        n_lines = _read_parquet(ws, bp).num_rows
    return {"documents": plan.n_docs, "boilerplate_lines": n_lines}


def _boilerplate(ws: Workspace, plan: DedupPlan) -> frozenset[str]:
    bp = posixpath.join(plan.work_dir, "boilerplate.parquet")
    if not ws.fs.exists(bp):
        return frozenset()
    return _memo(("boilerplate", plan.workspace, bp),
                 lambda: frozenset(_read_parquet(ws, bp).column("line").to_pylist()))


# ---- stage 2: signatures + buckets per shard -------------------------------------------------


def _read_rows(ws: Workspace, snap: Snapshot, ref: ShardRef, columns: list[str]) -> pa.Table:
    """The shard's rows, read row group by row group from every file it overlaps."""
    parts: list[pa.Table] = []
    file_start = 0
    for f in snap.manifest.files:
        file_stop = file_start + f.rows
        if file_stop > ref.pos and file_start < ref.stop and f.rows:
            start, stop = max(ref.pos, file_start) - file_start, min(ref.stop, file_stop) - file_start
            with ws.fs.open(posixpath.join(snap.dir, f.path), "rb") as fh:
                pf = pq.ParquetFile(fh)
                groups, first, row0 = [], None, 0
                for g in range(pf.metadata.num_row_groups):
                    n = pf.metadata.row_group(g).num_rows
                    if row0 + n > start and row0 < stop:
                        groups.append(g)
                        first = row0 if first is None else first
                    row0 += n
                t = pf.read_row_groups(groups, columns=columns)
            parts.append(t.slice(start - first, stop - start))
        if file_stop >= ref.stop:
            break
        file_start = file_stop
    return pa.concat_tables(parts)


def _shard_paths(plan: DedupPlan, shard: int) -> tuple[str, str]:
    return (posixpath.join(plan.work_dir, "signatures", f"shard-{shard:05d}.parquet"),
            posixpath.join(plan.work_dir, "buckets", f"shard-{shard:05d}.parquet"))


def run_shard(plan: DedupPlan, shard: int) -> dict[str, int]:
    """Signatures + bucket rows of one shard; skipped when its files exist (resumable)."""
    ws, spec, snap = _open(plan)
    ref = plan.shards[shard]
    sig_path, bucket_path = _shard_paths(plan, shard)
    if ws.fs.exists(sig_path) and ws.fs.exists(bucket_path):
        t = _read_parquet(ws, sig_path)
        return {"shard": shard, "signed": t.num_rows, "reused": 1}
    exact = _exact_table(ws, plan).slice(ref.pos, ref.stop - ref.pos)
    idx = exact.column("idx").to_numpy()
    in_play = (exact.column("exact_rep").to_numpy() == idx) & \
        pc.is_null(exact.column("prior_rep")).to_numpy(zero_copy_only=False)
    texts = _read_rows(ws, snap, ref, ["text"]).column("text").combine_chunks()
    lines = _boilerplate(ws, plan)
    perms = Permutations.make(spec.num_perm, spec.seed)
    rows = np.flatnonzero(in_play)
    sig_tables, bucket_tables = [], []
    for s in range(0, len(rows), _BATCH):
        r = rows[s:s + _BATCH]
        batch = texts.take(pa.array(r))
        emptied = np.zeros(len(r), dtype=bool)
        if lines:
            orig = batch.to_pylist()
            cleaned = [strip_boilerplate(t, lines) for t in orig]
            emptied = np.array([bool(o and o.strip()) and not c.strip()
                                for o, c in zip(orig, cleaned)], dtype=bool)
            batch = pa.array(cleaned, pa.large_string())
        if spec.near:
            sig, has = signatures(batch, perms, spec.ngram)
        else:
            sig = np.zeros((len(r), spec.num_perm), np.uint32)
            has = np.zeros(len(r), dtype=bool)
        sig_tables.append(pa.table({
            "idx": idx[r], "has_shingles": has, "emptied": emptied,
            "sig": pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(4 * spec.num_perm), len(r), [None, pa.py_buffer(sig.tobytes())]),
        }))
        if has.any():
            bucket_tables.append(bucket_table(sig[has], idx[r][has], plan.bands, plan.rows))
    sig_schema = pa.schema([("idx", pa.int64()), ("has_shingles", pa.bool_()),
                            ("emptied", pa.bool_()), ("sig", pa.binary(4 * spec.num_perm))])
    _write_parquet(ws, bucket_path, pa.concat_tables(bucket_tables) if bucket_tables
                   else BUCKET_SCHEMA.empty_table())
    _write_parquet(ws, sig_path, pa.concat_tables(sig_tables) if sig_tables
                   else sig_schema.empty_table())
    return {"shard": shard, "signed": int(len(rows)), "reused": 0}


# ---- stage 3: clusters + output ------------------------------------------------------------


def _node_shingles(ws: Workspace, snap: Snapshot, idx_of_pos: np.ndarray, nodes: np.ndarray,
                   ngram: int, lines: frozenset[str]) -> dict[int, np.ndarray]:
    """Sorted unique shingle hashes of the documents ``nodes`` (by idx), read in one pass."""
    want = np.zeros(len(idx_of_pos), dtype=bool)
    want[nodes] = True
    out: dict[int, np.ndarray] = {}
    start = 0
    for batch in snap.iter_batches(["text"], batch_size=_BATCH):
        ids = idx_of_pos[start:start + batch.num_rows]
        sel = np.flatnonzero(want[ids])
        start += batch.num_rows
        if not len(sel):
            continue
        texts = batch.column(0).take(pa.array(sel))
        if lines:
            texts = pa.array([strip_boilerplate(t, lines) for t in texts.to_pylist()],
                             pa.large_string())
        wh, counts = words_of(texts)
        sh, n_sh = shingle_hashes(wh, counts, ngram)
        bounds = np.concatenate([[0], np.cumsum(n_sh)])
        for k, i in enumerate(ids[sel].tolist()):
            out[i] = np.unique(sh[bounds[k]:bounds[k + 1]])
    return out


def _load_signatures(ws: Workspace, plan: DedupPlan, num_perm: int, wanted: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sig rows of the wanted idx, row-of-idx map, emptied idx) from every shard file."""
    row_of = np.full(plan.n_docs, -1, dtype=np.int64)
    want = np.zeros(plan.n_docs, dtype=bool)
    want[wanted] = True
    blocks, emptied = [], []
    n = 0
    for ref in plan.shards:
        t = _read_parquet(ws, _shard_paths(plan, ref.shard)[0])
        if t.num_rows == 0:
            continue
        idx = t.column("idx").to_numpy()
        emptied.append(idx[t.column("emptied").to_numpy(zero_copy_only=False)])
        sel = want[idx]
        if sel.any():
            raw = t.column("sig").combine_chunks().filter(pa.array(sel))
            buf = np.frombuffer(raw.buffers()[1], dtype=np.uint32,
                                count=len(raw) * num_perm, offset=raw.offset * 4 * num_perm)
            blocks.append(buf.reshape(len(raw), num_perm))
            row_of[idx[sel]] = np.arange(n, n + len(raw))
            n += len(raw)
    sigs = np.concatenate(blocks) if blocks else np.zeros((0, num_perm), np.uint32)
    return sigs, row_of, (np.concatenate(emptied) if emptied else np.zeros(0, np.int64))


def _clean_batch(batch: pa.RecordBatch, lines: frozenset[str]) -> pa.Table:
    """Remove boilerplate lines; update n_bytes, n_chars, content_hash and flags of changed rows."""
    t = pa.Table.from_batches([batch])
    texts = t.column("text").to_pylist()
    cleaned = [strip_boilerplate(x, lines) for x in texts]
    changed = [c != x for c, x in zip(cleaned, texts)]
    if not any(changed):
        return t
    cols = {name: t.column(name).to_pylist() for name in ("n_bytes", "n_chars", "content_hash")}
    flags = t.column("flags").to_pylist() if "flags" in t.column_names else [None] * len(texts)
    for i, ch in enumerate(changed):
        if ch:
            c = cleaned[i]
            cols["n_bytes"][i] = len(c.encode("utf-8"))
            cols["n_chars"][i] = len(c)
            cols["content_hash"][i] = xxhash.xxh3_128_hexdigest(c.encode("utf-8"))
            flags[i] = [*(flags[i] or []), "boilerplate_removed"]
    t = t.set_column(t.schema.get_field_index("text"), "text", pa.array(cleaned, pa.large_string()))
    for name, vals in cols.items():
        t = t.set_column(t.schema.get_field_index(name), name,
                         pa.array(vals, t.schema.field(name).type))
    if "flags" in t.column_names:
        t = t.set_column(t.schema.get_field_index("flags"), "flags",
                         pa.array(flags, t.schema.field("flags").type))
    return t


def existing_result(plan: DedupPlan) -> DedupResult | None:
    """The committed output of this plan (a finished earlier run), refs updated, or None."""
    ws = Workspace(plan.workspace)
    if not ws.has_snapshot(plan.corpus, plan.snapshot_id):
        return None
    out = ws.snapshot(plan.corpus, plan.snapshot_id)
    ws.set_ref(plan.corpus, "dedup", plan.snapshot_id)
    ws.set_ref(plan.corpus, "latest", plan.snapshot_id)
    return _result(ws, plan, out, reused=True, seconds=0.0)


def _result(ws: Workspace, plan: DedupPlan, out: Snapshot, *, reused: bool, seconds: float
            ) -> DedupResult:
    c = out.manifest.counts
    clusters = out.extra_paths("clusters")
    return DedupResult(
        snapshot_id=out.snapshot_id, input=c["input"], exact_duplicates=c["exact_duplicates"],
        near_duplicates=c["near_duplicates"], kept=c["kept"],
        dataset_path=ws.full_uri(out.dir),
        clusters_path=posixpath.dirname(clusters[0]) if clusters else "",
        input_snapshot=plan.input_snapshot, boilerplate_only=c.get("boilerplate_only", 0),
        boilerplate_lines=int(out.manifest.stats.get("boilerplate_lines", 0)),
        clusters=int(out.manifest.stats.get("duplicate_clusters", 0)),
        bands=plan.bands, rows=plan.rows,
        report_path=ws.full_uri(posixpath.join(out.dir, REPORT_NAME)),
        reused=reused, seconds=round(seconds, 3),
    )


def finish(plan: DedupPlan, progress: Progress = no_progress, started: float | None = None
           ) -> DedupResult:
    """Candidate pairs -> verification -> clusters -> the output snapshot (manifest last)."""
    t0 = started if started is not None else time.perf_counter()
    done = existing_result(plan)
    if done is not None:
        return done
    ws, spec, snap = _open(plan)
    tmp = _temp_dir(ws, plan)
    n = plan.n_docs
    exact = ExactTable.from_table(_exact_table(ws, plan))
    lines = _boilerplate(ws, plan)
    for ref in plan.shards:
        if not ws.fs.exists(_shard_paths(plan, ref.shard)[0]):
            raise InvariantError(f"dedup {plan.snapshot_id}: shard {ref.shard} has no signatures; "
                                 "run its task (run_shard) before finish")

    progress(0, 3, "LSH: grouping buckets")
    a, b = candidate_pairs(ws, [ws.full_uri(_shard_paths(plan, r.shard)[1]) for r in plan.shards],
                           temp_dir=tmp)
    n_candidates = len(a)
    nodes = np.unique(np.concatenate([a, b])) if len(a) else np.zeros(0, np.int64)
    sigs, row_of, emptied_idx = _load_signatures(ws, plan, spec.num_perm, nodes)
    progress(1, 3, f"verifying {n_candidates:,} candidate pairs")
    a, b, est = verify_pairs(a, b, row_of, sigs, plan.verify_threshold)
    del sigs
    if spec.verify == "jaccard" and len(a):
        progress(1.5, 3, f"exact Jaccard of {len(a):,} pairs")
        sets = _node_shingles(ws, snap, exact.idx, np.unique(np.concatenate([a, b])), spec.ngram,
                              lines)
        true_j = pair_jaccard(a, b, sets)
        ok = true_j >= spec.threshold - 1e-9
        a, b, est = a[ok], b[ok], est[ok]

    progress(2, 3, "clusters")
    idx_of_pos = exact.idx
    pos_of_idx = np.empty(n, dtype=np.int64)
    pos_of_idx[idx_of_pos] = np.arange(n)
    parent = np.arange(n, dtype=np.int64)
    parent[idx_of_pos] = exact.exact_rep  # exact groups: every copy under its group's minimum
    uf = UnionFind(n, parent)
    uf.union_edges(a, b)
    roots = uf.roots()  # by idx

    prior_rep = exact.prior_rep
    has_prior = pc.is_valid(prior_rep).to_numpy(zero_copy_only=False)  # by pos
    root_pos = roots[idx_of_pos]  # root idx of each pos
    is_exact = has_prior | (exact.exact_rep != idx_of_pos)
    emptied = np.zeros(n, dtype=bool)
    emptied[emptied_idx] = True
    is_empty = emptied[idx_of_pos] & ~is_exact
    is_near = ~is_exact & ~is_empty & (root_pos != idx_of_pos)
    keep = ~(is_exact | is_near | is_empty)
    counts = {"input": n, "exact_duplicates": int(is_exact.sum()),
              "near_duplicates": int(is_near.sum()), "boilerplate_only": int(is_empty.sum()),
              "kept": int(keep.sum())}
    if counts["input"] != counts["kept"] + counts["exact_duplicates"] + \
            counts["near_duplicates"] + counts["boilerplate_only"]:
        raise InvariantError(f"dedup counts do not balance: {counts}")

    doc_ids = exact.doc_id
    cluster_ids = pc.take(doc_ids, pa.array(pos_of_idx[root_pos]))
    cluster_ids = pc.if_else(pa.array(has_prior), prior_rep.cast(pa.string()),
                             cluster_ids.cast(pa.string()))
    hist = size_histogram(roots[~has_prior[pos_of_idx]] if n else roots)
    stats: dict[str, Any] = {
        "bands": plan.bands, "rows": plan.rows, "candidate_pairs": n_candidates,
        "verified_pairs": int(len(a)), "boilerplate_lines": len(lines),
        "cluster_sizes": hist,
        "duplicate_clusters": int(sum(v for k, v in hist.items() if k != "1")),
        "estimated_jaccard_hist": dict(sorted(Counter(
            f"{np.floor(x * 20) / 20:.2f}" for x in est.tolist()).items())),
        "examples": examples(ws, snap, doc_ids, pos_of_idx, a, b, est, spec.ngram, lines),
        "prior_snapshots": plan.prior,
    }

    progress(2.5, 3, "writing the deduplicated snapshot")
    schema = snap.dataset().schema
    w = PartWriter(ws, plan.corpus, plan.snapshot_id, "00000", schema=schema,
                   extras={"clusters": CLUSTERS_SCHEMA})
    try:
        start = 0
        for batch in snap.iter_batches(batch_size=_BATCH):
            m = keep[start:start + batch.num_rows]
            if m.any():
                kept = batch.filter(pa.array(m))
                w.write(_clean_batch(kept, lines) if lines else kept)
            start += batch.num_rows
        for s in range(0, n, 262_144):
            w.write_extra("clusters", pa.table(
                {"doc_id": doc_ids.slice(s, 262_144).cast(pa.string()),
                 "cluster_id": cluster_ids.slice(s, 262_144)}, schema=CLUSTERS_SCHEMA))
        w.close()
    except BaseException:
        w.abort()
        raise
    atomic_write_bytes(ws.fs, posixpath.join(ws.snapshot_dir(plan.corpus, plan.snapshot_id),
                                             REPORT_NAME),
                       report_markdown(plan, counts, stats).encode("utf-8"))
    commit_parts(ws, plan.corpus, plan.snapshot_id, ["00000"], schema=schema,
                 extras={"clusters": CLUSTERS_SCHEMA}, stage="dedup",
                 parent=plan.input_snapshot, spec=plan.spec, spec_hash=plan.spec_hash,
                 counts=counts, stats=stats)
    ws.set_ref(plan.corpus, "dedup", plan.snapshot_id)
    ws.set_ref(plan.corpus, "latest", plan.snapshot_id)
    try:
        ws.fs.rm(plan.work_dir, recursive=True)
        if not ws.is_local:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass
    progress(3, 3, "done")
    return _result(ws, plan, ws.snapshot(plan.corpus, plan.snapshot_id), reused=False,
                   seconds=time.perf_counter() - t0)


# ---- the whole stage -----------------------------------------------------------------------


def _run_shard_json(plan_json: str, shard: int) -> dict[str, int]:
    return run_shard(DedupPlan.model_validate_json(plan_json), shard)


def dedup(ws: Workspace, spec: DedupSpec, progress: Progress = no_progress, *,
          workers: int = 1, shard_rows: int = SHARD_ROWS) -> DedupResult:
    """Exact + near-duplicate removal of the corpus' "ingest" snapshot (see module docstring).

    ``workers`` > 1 computes shard signatures in that many processes (same output as 1).
    """
    t0 = time.perf_counter()
    plan = plan_dedup(ws, spec, shard_rows=shard_rows)
    done = existing_result(plan)
    if done is not None:
        return done
    total = len(plan.shards) + 2
    progress(0, total, "exact duplicates (DuckDB)")
    run_exact(plan)
    progress(1, total, "MinHash signatures")
    if workers > 1 and len(plan.shards) > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(_run_shard_json, plan.model_dump_json(), r.shard) for r in plan.shards]
            for i, f in enumerate(futs):
                f.result()
                progress(2 + i, total, f"MinHash signatures: shard {i + 1}/{len(plan.shards)}")
    else:
        for i, r in enumerate(plan.shards):
            run_shard(plan, r.shard)
            progress(2 + i, total, f"MinHash signatures: shard {i + 1}/{len(plan.shards)}")

    def sub(done: float, tot: float | None, msg: str = "") -> None:
        progress(total - 1 + (done / (tot or 1)), total, msg)

    return finish(plan, sub, started=t0)
