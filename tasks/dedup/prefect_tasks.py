"""Thin Prefect tasks around the dedup core: references (plan JSON, ids, paths) in and out."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tokenfoundry.schemas.config import validate_spec
from tokenfoundry.schemas.dedup import DedupSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.dedup import core
from tokenfoundry.tasks.retry import RETRIES, RETRY_DELAYS, retry_transient


@task(name="dedup-plan")
def plan_task(spec: dict[str, Any], workspace: str, shard_rows: int = core.SHARD_ROWS
              ) -> dict[str, Any]:
    """Validate the spec and the input snapshot; fix the output id and the shards."""
    s = validate_spec(DedupSpec, spec, "dedup spec")
    plan = core.plan_dedup(Workspace(workspace), s, shard_rows=shard_rows)
    get_run_logger().info("dedup %s: input %s (%d docs, %d shards) -> %s; %d bands x %d rows",
                          plan.corpus, plan.input_snapshot, plan.n_docs, len(plan.shards),
                          plan.snapshot_id, plan.bands, plan.rows)
    return plan.model_dump(mode="json")


@task(name="dedup-exact", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def exact_task(plan: dict[str, Any]) -> dict[str, int]:
    counts = core.run_exact(core.DedupPlan.model_validate(plan))
    get_run_logger().info("exact stage: %s", counts)
    return counts


@task(name="dedup-minhash-shard", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def shard_task(plan: dict[str, Any], shard: int) -> dict[str, int]:
    """MinHash signatures + LSH bucket rows of one shard (Parquet under the work dir)."""
    counts = core.run_shard(core.DedupPlan.model_validate(plan), shard)
    get_run_logger().info("shard %d: %d documents signed%s", shard, counts["signed"],
                          " (reused)" if counts["reused"] else "")
    return counts


@task(name="dedup-finish", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def finish_task(plan: dict[str, Any]) -> dict[str, Any]:
    """Clusters + output snapshot; publishes the dedup report as Prefect artifacts."""
    p = core.DedupPlan.model_validate(plan)
    result = core.finish(p)
    ws = Workspace(p.workspace)
    report = core.REPORT_NAME
    path = f"{ws.snapshot_dir(p.corpus, result.snapshot_id)}/{report}"
    if ws.fs.exists(path):
        create_markdown_artifact(
            key=f"dedup-report-{_key(p.corpus)}", markdown=ws.fs.cat_file(path).decode("utf-8"),
            description=f"dedup of corpus {p.corpus}: {result.snapshot_id}")
    create_table_artifact(
        key=f"dedup-counts-{_key(p.corpus)}",
        table=[{"count": k, "documents": getattr(result, k)} for k in
               ("input", "exact_duplicates", "near_duplicates", "boilerplate_only", "kept")],
        description=f"dedup counts of {p.corpus} ({result.snapshot_id})")
    get_run_logger().info("dedup %s: input %d, exact %d, near %d, kept %d%s", p.corpus,
                          result.input, result.exact_duplicates, result.near_duplicates,
                          result.kept, " (reused)" if result.reused else "")
    return result.model_dump(mode="json")


def _key(name: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in name.lower())
