"""The dedup flow: plan -> exact -> MinHash per shard (fanned out) -> clusters + snapshot.

Shard outputs are named by shard number and ``finish`` reads them in that order, so the output
snapshot (id and content) is the same with the thread pool, a Dask cluster or the direct CLI
path. Use ``dedup_flow.with_options(task_runner=...)`` to pick another task runner.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from tokenfoundry.tasks.dedup.prefect_tasks import exact_task, finish_task, plan_task, shard_task


@flow(name="dedup", task_runner=ThreadPoolTaskRunner(max_workers=4))
def dedup_flow(spec: dict[str, Any], workspace: str, shard_rows: int = 65_536) -> dict[str, Any]:
    """Exact + MinHash-LSH near-duplicate removal of one corpus snapshot (DedupSpec as a dict).

    ``shard_rows``: rows per MinHash task (parallelism only; the output does not depend on it).
    """
    plan = plan_task(spec, workspace, shard_rows)
    if not _committed(plan):
        exact_task(plan)
        futures = shard_task.map(unmapped(plan), [s["shard"] for s in plan["shards"]])
        for f in futures:
            f.result()
    return finish_task(plan)


def _committed(plan: dict[str, Any]) -> bool:
    from tokenfoundry.storage.workspace import Workspace

    return Workspace(plan["workspace"]).has_snapshot(plan["corpus"], plan["snapshot_id"])
