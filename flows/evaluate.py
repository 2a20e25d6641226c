"""The evaluate flow: metrics vs references on held-out text, artifacts, then the gates."""

from __future__ import annotations

from prefect import flow

from tokenfoundry.schemas.evaluate import EvaluationResult
from tokenfoundry.tasks.evaluate.gates import raise_for_gates
from tokenfoundry.tasks.evaluate.prefect_tasks import evaluate_task, evaluation_artifacts_task


@flow(name="evaluate", log_prints=False)
def evaluate_flow(spec: dict, workspace: str, out: str, fail_on_gates: bool = True) -> dict:
    """Evaluate ``spec`` (an EvaluateSpec as a dict) writing reports to ``out``.

    Returns the EvaluationResult JSON. With ``fail_on_gates`` a failed gate raises GateFailed
    after the artifacts are recorded, so later stages (publish) do not run.
    """
    spec = {**spec, "workspace": spec.get("workspace") or workspace}
    result = evaluate_task(spec, out)
    evaluation_artifacts_task(result)
    if fail_on_gates:
        res = EvaluationResult.model_validate(result)
        raise_for_gates(res.gates, res.candidate)
    return result
