"""Thin Prefect wrappers around the evaluate core: references in, references out."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tokenfoundry.schemas.evaluate import EvaluateSpec, EvaluationResult


@task(name="evaluate-tokenizers")
def evaluate_task(spec: dict, out: str) -> dict:
    """Run the evaluate core; returns the EvaluationResult as JSON (small: metrics only)."""
    from tokenfoundry.tasks.evaluate.core import evaluate

    logger = get_run_logger()
    result = evaluate(EvaluateSpec.model_validate(spec), out,
                      progress=lambda d, t, m="": logger.info("%s (%s/%s)", m, d, t))
    for name, m in result.tokenizers.items():
        logger.info("%s: bytes/token=%.3f nsl=%s roundtrip_errors=%d parity=%s", name,
                    m.bytes_per_token or 0.0, m.nsl, m.roundtrip_errors, m.parity)
    return result.model_dump(mode="json")


@task(name="evaluation-artifacts")
def evaluation_artifacts_task(result: dict) -> None:
    """Prefect markdown (the report) and table (one row per tokenizer) artifacts."""
    res = EvaluationResult.model_validate(result)
    with open(res.report_path, encoding="utf-8") as fh:
        md = fh.read()
    create_markdown_artifact(markdown=md, key="tokenizer-evaluation",
                             description=f"evaluation of {res.candidate or 'references'}")
    rows = []
    for name, m in res.tokenizers.items():
        rows.append({"tokenizer": name, "candidate": name == res.candidate,
                     "bytes_per_token": m.bytes_per_token, "fertility": m.fertility,
                     "nsl": m.nsl, "vocab_utilization": m.vocab_utilization,
                     "renyi_efficiency": m.renyi_efficiency,
                     "roundtrip_errors": m.roundtrip_errors, "parity": m.parity,
                     "encode_mb_per_s": m.encode_mb_per_s})
    create_table_artifact(table=rows, key="tokenizer-metrics",
                          description=f"gates {'passed' if res.gates_passed else 'FAILED'}")
