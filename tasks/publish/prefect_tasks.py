"""Thin Prefect wrappers around the publish core: references in, references out."""

from __future__ import annotations

import re
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from tokenfoundry.tasks.publish.artifacts import create_published_artifact


def _key(name: str) -> str:
    """An artifact key (lowercase letters, digits, dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "tokenizer"


@task(name="publish-to-registry")
def publish_task(registry: str, source: str, name: str, lineage: dict[str, Any],
                 metrics: dict[str, Any], gate_results: list[dict[str, Any]],
                 aliases: list[str], evaluation_dir: str | None = None) -> dict[str, Any]:
    """Publish a candidate directory (after its gates passed); returns the PublishResult JSON."""
    from tokenfoundry.tasks.publish.core import publish_candidate

    logger = get_run_logger()
    result = publish_candidate(
        registry, source, name, lineage=lineage, metrics=metrics, gate_results=gate_results,
        aliases=aliases, evaluation_dir=evaluation_dir,
        progress=lambda d, t, m="": None)
    logger.info("%s %s (%d files, %d bytes) in %s", "reused" if result["reused"] else
                "published", result["ref"], result["files"], result["bytes"], result["registry"])
    return result


@task(name="publish-artifacts")
def publish_artifacts_task(result: dict[str, Any], metrics: dict[str, Any]) -> None:
    """A link artifact to the version and a table artifact with what it holds and scored."""
    ref = result["ref"]
    key = _key(result["name"])
    create_published_artifact(ref, result["uri"], result["registry"], key=f"{key}-version",
                              description=f"registry version {ref}"
                              + (" (identical files already published; reused)"
                                 if result["reused"] else ""))
    rows = [{"field": "ref", "value": ref}, {"field": "version", "value": result["version"]},
            {"field": "registry", "value": result["registry"]},
            {"field": "reused", "value": result["reused"]},
            {"field": "aliases", "value": ", ".join(f"{a}={v}" for a, v in
                                                    sorted(result["aliases"].items()))},
            {"field": "files", "value": result["files"]},
            {"field": "bytes", "value": result["bytes"]}]
    for k, v in sorted(metrics.items()):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            rows.append({"field": k, "value": v})
    create_table_artifact(table=rows, key=f"{key}-published",
                          description=f"published tokenizer {ref}")
