"""The publish flow: a candidate that passed its gates goes into the registry, with lineage.

Refs in, refs out: a candidate directory, an ``evaluation.json`` (metrics and gate results),
the registry URI. The version is recorded in a Prefect link artifact and a table artifact.
Publishing identical files again returns the existing version, so a re-run publishes nothing.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tokenfoundry.tasks.publish.core import check_gate_results, evaluation_from_json
from tokenfoundry.tasks.publish.prefect_tasks import publish_artifacts_task, publish_task


def _flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:  # noqa: BLE001 - outside a run there is simply no id
        return None


@flow(name="publish", log_prints=False)
def publish_flow(source: str, name: str, registry: str | None = None,
                 aliases: list[str] | None = None, evaluation: str | None = None,
                 lineage: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                 gate_results: list[dict[str, Any]] | None = None,
                 workspace: str | None = None) -> dict[str, Any]:
    """Publish ``source`` (a candidate directory) as the next version of ``name``.

    ``evaluation``: the candidate's ``evaluation.json``; its metrics and gate results go into the
    manifest and its report/plots into ``evaluation/`` of the version. A failed gate raises
    GateFailed and publishes nothing. ``registry`` defaults to ``<workspace>/registry``.
    Returns the PublishResult JSON (ref, version, uri, reused, registry, ...).
    """
    from tokenfoundry.storage.registry import resolve_registry_uri
    from tokenfoundry.storage.workspace import Workspace

    gates = list(gate_results or [])
    evaluation_dir = None
    if evaluation:
        ev = evaluation_from_json(evaluation)
        gates = gates or ev["gates"]
        metrics = metrics if metrics is not None else ev["metrics"]
        evaluation_dir = str(ev["dir"])
        if ev["gates_passed"] is False and not [g for g in gates if not g.get("passed")]:
            gates.append({"expr": "gates_passed", "passed": False, "value": False})
    check_gate_results(gates)  # before any task runs: a failed gate publishes nothing
    uri = registry or (Workspace(workspace).registry_uri if workspace
                       else resolve_registry_uri(None))
    lin = {**(lineage or {}), "flow_run_id": _flow_run_id()}
    result = publish_task(uri, source, name, lin, dict(metrics or {}), gates,
                          list(aliases if aliases is not None else ["latest"]), evaluation_dir)
    publish_artifacts_task(result, dict(metrics or {}))
    return result
