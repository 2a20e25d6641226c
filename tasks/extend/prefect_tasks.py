"""Thin Prefect wrapper around the extend core: spec dict, workspace URI, output dir in; the
report (JSON) out. Progress of the long steps (merges, bits per byte) goes to a progress
artifact and the log."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tokenfoundry.schemas.config import validate_spec
from tokenfoundry.schemas.extend import ExtendSpec
from tokenfoundry.tasks.extend.core import extend


@task(name="extend-vocabulary")
def extend_task(spec: dict[str, Any], workspace: str | None, out: str) -> dict[str, Any]:
    """Extend the base's vocabulary into ``out``; the report as a dict."""
    s = validate_spec(ExtendSpec, spec, "extend spec")
    logger = get_run_logger()
    artifact = create_progress_artifact(0.0, description=f"extend {s.base} +{s.new_tokens} "
                                        f"({s.init})")
    last: list[Any] = [None, 0.0]

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage != last[0]:
            logger.info("extend: %s", stage)
            last[0], last[1] = stage, 0.0
        pct = 100.0 * done / total if total else 0.0
        if pct - last[1] >= 10.0:
            update_progress_artifact(artifact, min(pct, 100.0))
            last[1] = pct

    report = extend(s, out, workspace=workspace, progress=progress)
    logger.info("extend done: tokens_added=%d vocab_size=%d seconds=%.1f reused=%s",
                report["tokens_added"], report["vocab_size"], report["seconds"], report["reused"])
    return report
