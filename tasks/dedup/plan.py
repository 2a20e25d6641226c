"""Planning the dedup stage: validate the input snapshot and the spec and fix every name the stage
will write (the output id, the work directory, the shard layout), before any work. Split from
``core.py`` so that the plan, which the flow passes between tasks as JSON, reads on its own.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from tokenfoundry.schemas.config import stable_hash
from tokenfoundry.schemas.dedup import DedupSpec
from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.storage.workspace import Snapshot, Workspace
from tokenfoundry.tasks.dedup.minhash import optimal_param

REQUIRED_COLUMNS = ("doc_id", "source", "location", "text", "content_hash")
SHARD_ROWS = 65_536
#: verify: jaccard drops candidates whose estimate is this far below the threshold before computing
#: the exact Jaccard (about 4 standard deviations of a 128-permutation estimate)
JACCARD_PREFILTER_MARGIN = 0.15


class ShardRef(BaseModel):
    """Global rows [pos, stop) of the input snapshot (its files in manifest order); a shard may
    span many small part files (ingest writes one per source file) or part of a large one."""

    model_config = ConfigDict(extra="forbid")
    shard: int
    pos: int
    stop: int


class DedupPlan(BaseModel):
    """Everything the stage's tasks need, as JSON (references only, never data)."""

    model_config = ConfigDict(extra="forbid")
    workspace: str
    corpus: str
    spec: dict[str, Any]
    spec_hash: str
    input_snapshot: str
    snapshot_id: str
    bands: int
    rows: int
    verify_threshold: float | None
    prior: list[str]
    work_dir: str
    n_docs: int
    shards: list[ShardRef]


# ---- plan ---------------------------------------------------------------------------------------


def resolve_input(ws: Workspace, spec: DedupSpec) -> Snapshot:
    """The input snapshot: spec.snapshot (id or ref), else the "ingest" ref, else "latest"."""
    if spec.snapshot:
        return ws.resolve(spec.corpus, spec.snapshot)
    for ref in ("ingest", "latest"):
        sid = ws.get_ref(spec.corpus, ref)
        if sid and ws.has_snapshot(spec.corpus, sid):
            return ws.snapshot(spec.corpus, sid)
    if not ws.list_snapshots(spec.corpus):
        raise BadInputError(
            f"corpus {spec.corpus!r} has no snapshots in workspace {ws.uri}; create one with "
            f"`tokenfoundry ingest --corpus {spec.corpus} --source PATH`")
    raise BadInputError(
        f"corpus {spec.corpus!r} has no 'ingest' or 'latest' ref in {ws.uri}; pass "
        f"--snapshot ID (known: {', '.join(m.snapshot_id for m in ws.list_snapshots(spec.corpus))})")


def bands_rows(spec: DedupSpec) -> tuple[int, int]:
    if spec.bands is not None and spec.rows is not None:
        return spec.bands, spec.rows
    fn = spec.fn_weight if spec.fn_weight is not None else (0.9 if spec.verify != "none" else 0.5)
    return optimal_param(spec.threshold, spec.num_perm, 1.0 - fn, fn)


def prior_snapshots(ws: Workspace, spec: DedupSpec, input_sid: str) -> list[str]:
    """Earlier dedup outputs whose content hashes count as already seen (incremental mode)."""
    if not spec.incremental:
        return []
    if spec.against:
        for sid in spec.against:
            if not ws.has_snapshot(spec.corpus, sid):
                raise BadInputError(f"against: corpus {spec.corpus!r} has no snapshot {sid!r}; "
                                    "list earlier dedup snapshots or drop --against")
        return sorted(set(spec.against))
    return sorted(m.snapshot_id for m in ws.list_snapshots(spec.corpus)
                  if m.stage == "dedup" and m.parent != input_sid)


def _check_schema(ws: Workspace, snap: Snapshot) -> None:
    if not snap.manifest.files:
        raise BadInputError(f"snapshot {snap.snapshot_id} of corpus {snap.corpus!r} lists no "
                            "Parquet files; re-run `tokenfoundry ingest`")
    with ws.fs.open(posixpath.join(snap.dir, snap.manifest.files[0].path), "rb") as fh:
        names = set(pq.ParquetFile(fh).schema_arrow.names)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise BadInputError(
            f"{snap.paths[0]}: missing column(s) {', '.join(missing)}; dedup needs a corpus "
            f"snapshot with {', '.join(REQUIRED_COLUMNS)} (schemas/tables.CORPUS_SCHEMA), "
            "as `tokenfoundry ingest` writes")


def _shards(ws: Workspace, snap: Snapshot, shard_rows: int) -> list[ShardRef]:
    total = sum(f.rows for f in snap.manifest.files)
    return [ShardRef(shard=i, pos=s, stop=min(s + shard_rows, total))
            for i, s in enumerate(range(0, total, shard_rows))]


def plan_dedup(ws: Workspace, spec: DedupSpec, shard_rows: int = SHARD_ROWS) -> DedupPlan:
    """Validate the input and the spec and fix every name the stage will write (no writes)."""
    snap = resolve_input(ws, spec)
    _check_schema(ws, snap)
    if snap.rows == 0:
        raise BadInputError(
            f"snapshot {snap.snapshot_id} of corpus {spec.corpus!r} is empty (0 documents); "
            "ingest some text first (see its rejects table for why records were dropped)")
    bands, rows = bands_rows(spec)
    prior = prior_snapshots(ws, spec, snap.snapshot_id)
    # the input is named by its id (parent), so how it was picked (ref or id) does not matter
    spec_hash = stable_hash(spec.model_dump(mode="json", exclude={"snapshot"}))
    sid = "dedup-" + stable_hash({"stage": "dedup", "parent": snap.snapshot_id,
                                  "spec_hash": spec_hash, "prior": prior}, 20)
    vt = None  # the estimated-Jaccard cut (a pre-filter for verify: jaccard)
    if spec.verify == "estimate":
        vt = spec.verify_threshold if spec.verify_threshold is not None else spec.threshold
    elif spec.verify == "jaccard":
        vt = max(0.01, round(spec.threshold - JACCARD_PREFILTER_MARGIN, 6))
    root = ws.root if ws.is_local else ws.uri
    return DedupPlan(
        workspace=root, corpus=spec.corpus, spec=spec.model_dump(mode="json"),
        spec_hash=spec_hash, input_snapshot=snap.snapshot_id, snapshot_id=sid,
        bands=bands, rows=rows, verify_threshold=vt, prior=prior,
        # the shard layout is part of the name: a resumed run never mixes layouts
        work_dir=ws.path("_work", "dedup", spec.corpus, f"{sid}.rows{shard_rows}"),
        n_docs=snap.rows,
        shards=_shards(ws, snap, shard_rows),
    )
