"""The ingest flow: plan -> fan out over units through the task runner -> commit.

Reads like the stage's table of contents; the work lives in tasks/ingest. The default task
runner is Prefect's ThreadPoolTaskRunner; pass another with
``ingest_flow.with_options(task_runner=DaskTaskRunner(...))`` - the snapshot id and its files
are the same either way (units name their shards; the commit lists them in plan order).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from tokenfoundry.schemas.ingest import IngestPlan
from tokenfoundry.tasks.ingest.prefect_tasks import (
    commit_task,
    group_units,
    ingest_units_task,
    plan_task,
    reuse_task,
)

#: Runs with more groups than this get a progress artifact.
PROGRESS_ARTIFACT_MIN_GROUPS = 2


@flow(name="ingest", task_runner=ThreadPoolTaskRunner(max_workers=4), log_prints=False)
def ingest_flow(spec: dict[str, Any], workspace: str) -> dict[str, Any]:
    """Ingest ``spec`` (an IngestSpec as a dict) into ``workspace``; the IngestResult as a dict."""
    logger = get_run_logger()
    plan_dict = plan_task(spec)
    reused = reuse_task(workspace, plan_dict)
    if reused is not None:
        logger.info("snapshot %s already committed: reused (read=%d kept=%d rejected=%d)",
                    reused["snapshot_id"], reused["read"], reused["kept"], reused["rejected"])
        _report(reused)
        return reused

    plan = IngestPlan.model_validate(plan_dict)
    head = {**plan_dict, "units": []}
    groups = group_units(plan.units)
    futures = [ingest_units_task.submit(workspace, head, [u.model_dump(mode="json") for u in g])
               for g in groups]
    artifact = None
    if len(groups) >= PROGRESS_ARTIFACT_MIN_GROUPS:
        artifact = create_progress_artifact(0.0, key=f"ingest-{plan.corpus}-progress",
                                            description=f"ingest {plan.corpus}: units done")
    done = 0
    for _ in as_completed(futures):
        done += 1
        if artifact is not None:
            update_progress_artifact(artifact, 100.0 * done / len(futures))
    infos = [info for f in futures for info in f.result()]  # plan order, not completion order
    result = commit_task(workspace, plan_dict, infos)
    logger.info("ingest counters: read=%d kept=%d rejected=%d %s", result["read"], result["kept"],
                result["rejected"],
                " ".join(f"rejected_{k}={v}" for k, v in result["rejects_by_reason"].items()))
    _report(result)
    return result


def _report(result: dict[str, Any]) -> None:
    """Table artifacts: per-source counts and rejects by reason."""
    key = f"ingest-{result['corpus']}".lower().replace("_", "-").replace(".", "-")
    rows = [{"source": s["source"], "format": s["format"], "read": s["read"], "kept": s["kept"],
             "rejected": s["rejected"]} for s in result.get("sources", [])]
    rows.append({"source": "TOTAL", "format": "", "read": result["read"], "kept": result["kept"],
                 "rejected": result["rejected"]})
    create_table_artifact(rows, key=f"{key}-sources",
                          description=f"snapshot {result['snapshot_id']}: per-source counts "
                          f"(dataset {result['dataset_path']})")
    if result.get("skipped"):
        create_table_artifact([{"path": s["path"], "reason": s["reason"]}
                               for s in result["skipped"]], key=f"{key}-skipped",
                              description="files the source walks did not read, and why")
    create_table_artifact(
        [{"reason": k, "records": v} for k, v in sorted(result["rejects_by_reason"].items())]
        or [{"reason": "(none)", "records": 0}],
        key=f"{key}-rejects", description=f"snapshot {result['snapshot_id']}: rejects by reason "
        f"({result['rejects_path']})")
