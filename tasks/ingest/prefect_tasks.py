"""Thin Prefect wrappers around the ingest core: references (dicts, paths) in and out.

Each task logs its named counters with ``get_run_logger()``; a unit's shards and marker are
written by the core, so a retried or re-run task redoes at most the unit it was in.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from tokenfoundry.schemas.config import validate_spec
from tokenfoundry.schemas.ingest import IngestPlan, IngestSpec, IngestUnit
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.ingest import core
from tokenfoundry.tasks.retry import RETRIES, RETRY_DELAYS, retry_transient


@task(name="ingest-plan")
def plan_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Validate the spec, expand and fingerprint the sources; the plan as JSON (no writes)."""
    s = validate_spec(IngestSpec, spec, "ingest spec")
    plan = core.plan_ingest(s)
    get_run_logger().info("ingest plan %s: files=%d units=%d bytes=%d skipped_files=%d",
                          plan.snapshot_id, len(plan.inputs), len(plan.units), plan.total_bytes,
                          len(plan.skipped))
    return plan.model_dump(mode="json")


@task(name="ingest-reuse")
def reuse_task(workspace: str, plan: dict[str, Any]) -> dict[str, Any] | None:
    """The committed snapshot of this plan, if any (no rework on a re-run)."""
    r = core.reuse_if_committed(Workspace(workspace), IngestPlan.model_validate(plan))
    return None if r is None else r.model_dump(mode="json")


@task(name="ingest-units", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def ingest_units_task(workspace: str, plan: dict[str, Any], units: list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
    """Ingest a group of units (files or parts of a large file); their counts, in order."""
    logger = get_run_logger()
    p = IngestPlan.model_validate({**plan, "units": units})
    ws = Workspace(workspace)
    infos = []
    for u in p.units:
        info = core.ingest_unit(ws, p, u)
        reasons = " ".join(f"{k}={v}" for k, v in info["rejects_by_reason"].items())
        logger.info("unit %s %s: read=%d kept=%d rejected=%d kept_bytes=%d %s", u.name, u.path,
                    info["read"], info["kept"], info["rejected"], info["kept_bytes"], reasons)
        infos.append(info)
    return infos


@task(name="ingest-commit")
def commit_task(workspace: str, plan: dict[str, Any], infos: list[dict[str, Any]]
                ) -> dict[str, Any]:
    """Check counts, write the manifest last, move refs ``ingest`` and ``latest``."""
    result = core.commit_ingest(Workspace(workspace), IngestPlan.model_validate(plan), infos)
    get_run_logger().info("ingest %s committed: read=%d kept=%d rejected=%d", result.snapshot_id,
                          result.read, result.kept, result.rejected)
    return result.model_dump(mode="json")


def group_units(units: list[IngestUnit], max_bytes: int = 64 * 1024 * 1024,
                max_units: int = 64, min_groups: int = 8) -> list[list[IngestUnit]]:
    """Consecutive units batched into task-sized groups (many small catalogs -> few tasks),
    at most ``max_bytes``/``max_units`` each, and at least ``min_groups`` groups when there are
    that many units, so that the task runner has work to spread.

    Grouping changes only how work is scheduled; shard names come from unit names, so the
    snapshot is the same for any grouping and any task runner.
    """
    if not units:
        return []
    target = min(len(units), min_groups)
    total = sum((u.end if u.end is not None else u.size) - u.start for u in units)
    max_bytes = max(1, min(max_bytes, -(-total // target)))
    max_units = max(1, min(max_units, -(-len(units) // target)))
    groups: list[list[IngestUnit]] = []
    cur: list[IngestUnit] = []
    size = 0
    for u in units:
        ub = (u.end if u.end is not None else u.size) - u.start
        if cur and (size + ub > max_bytes or len(cur) >= max_units):
            groups.append(cur)
            cur, size = [], 0
        cur.append(u)
        size += ub
    if cur:
        groups.append(cur)
    return groups
