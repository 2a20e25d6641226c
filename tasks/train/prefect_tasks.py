"""Thin Prefect wrappers around the train core: references (spec dicts, workspace URI, output
directory) in, JSON out. Training itself is one task (one multi-threaded trainer process over a
sample, which is how the field trains tokenizers); its progress is a Prefect progress artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tokenfoundry.schemas.config import validate_spec
from tokenfoundry.schemas.train import TrainSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.train import core


@task(name="train-plan")
def plan_task(spec: dict[str, Any], workspace: str) -> dict[str, Any]:
    """Validate the spec and check it against the data (no writes): inputs, groups, checks."""
    s = validate_spec(TrainSpec, spec, "train spec")
    plan, checks = core.plan(Workspace(workspace), s)
    info = {
        "snapshots": [src.ref.model_dump(mode="json") for src in plan.sources if src.ref],
        "groups": {k: {"docs": g.docs, "bytes": g.bytes, "target_fraction": g.target_fraction,
                       "factor": g.factor} for k, g in plan.groups.items()},
        "expected_bytes": plan.expected_bytes,
        "heldout_docs": plan.heldout_docs,
        "checks": checks,
    }
    get_run_logger().info("train plan: inputs=%s groups=%d expected_bytes=%d heldout_docs=%d",
                          [x.get("snapshot_id") or x.get("path") for x in info["snapshots"]],
                          len(info["groups"]), info["expected_bytes"], info["heldout_docs"])
    return info


@task(name="train-tokenizer")
def train_task(spec: dict[str, Any], workspace: str, out: str) -> dict[str, Any]:
    """Train into ``out``; the TrainResult as a dict. Progress goes to a progress artifact."""
    s = validate_spec(TrainSpec, spec, "train spec")
    logger = get_run_logger()
    artifact = create_progress_artifact(0.0, description=f"train {s.model} ({s.backend}) "
                                        f"{s.target_vocab_size}: bytes streamed")
    last = [0.0]

    def progress(done: float, total: float | None, message: str = "") -> None:
        pct = 100.0 * done / total if total else 0.0
        if pct - last[0] >= 5.0 or pct >= 100.0:
            update_progress_artifact(artifact, min(pct, 100.0))
            last[0] = pct
        if message and message not in ("reading", "re-reading"):
            logger.info("train: %s", message)

    result = core.train(Workspace(workspace), s, out, progress=progress)
    logger.info("train done: vocab_size=%d docs=%d bytes=%d seconds=%.1f peak_rss_mb=%.0f",
                result.vocab_size, result.docs, result.bytes, result.seconds, result.peak_rss_mb)
    return result.model_dump(mode="json")
