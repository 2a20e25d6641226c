"""The train flow: plan (checks before any work) -> train -> report artifact.

The same core as ``tokenfoundry train`` without ``--flow``; here each step is a Prefect task,
training progress is a progress artifact and the training report a markdown artifact.
"""

from __future__ import annotations

import json
import os
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from tokenfoundry.tasks.train.prefect_tasks import plan_task, train_task


@flow(name="train", log_prints=False)
def train_flow(spec: dict[str, Any], workspace: str, out: str) -> dict[str, Any]:
    """Train the tokenizer ``spec`` (a TrainSpec as a dict) describes into ``out``.

    Returns the TrainResult as a dict (the ``--json`` object of ``tokenfoundry train``).
    """
    plan = plan_task(spec, workspace)
    result = train_task(spec, workspace, out)
    create_markdown_artifact(report_markdown(result, plan), key=_key(result),
                             description=f"tokenizer trained into {result['out']}")
    return result


def _key(result: dict[str, Any]) -> str:
    return f"train-{result['model']}-{result['backend']}".lower()


def report_markdown(result: dict[str, Any], plan: dict[str, Any] | None = None) -> str:
    """The training report as markdown (inputs, vocabulary, mix, cost)."""
    report: dict[str, Any] = {}
    path = result.get("report")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            report = json.load(fh)
    lines = [f"# Tokenizer: {result['model']} ({result['backend']}), "
             f"{result['vocab_size']} tokens", "",
             f"- output: `{result['out']}`",
             f"- spec hash: `{result['spec_hash'][:16]}`, vocabulary sha256 "
             f"`{result['vocab_sha256'][:16]}`",
             f"- trained on {result['docs']} documents, {result['bytes'] / 1e6:.2f} MB "
             f"({result['heldout_docs']} held-out documents excluded)",
             f"- {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB",
             *([f"- **vocabulary short: {sf['got']} tokens learned of {sf['asked']} asked** "
                f"({sf['why']})"] if (sf := result.get("shortfall")) else []), "",
             "| input | snapshot |", "|---|---|"]
    for s in result["snapshots"]:
        lines.append(f"| {s['corpus']} | {s.get('snapshot_id') or s.get('path')} |")
    groups = report.get("mix", {}).get("groups", {})
    if groups:
        lines += ["", f"Mix (by {report['mix']['by']}, alpha {report['mix']['alpha']}):", "",
                  "| group | available MB | target | realised |", "|---|---|---|---|"]
        for k, g in groups.items():
            lines.append(f"| {k} | {g['bytes_available'] / 1e6:.2f} | "
                         f"{g['target_fraction']:.3f} | {g['realised_fraction']:.3f} |")
    vocab = report.get("vocab", {})
    if vocab:
        lines += ["", f"Vocabulary: {vocab['size']} entries ({vocab.get('merges')} merges, "
                  f"{vocab['added_tokens']} added tokens), mean token length "
                  f"{vocab['mean_token_length']} {vocab['length_unit']}."]
    if result.get("extra"):
        lines += ["", "```json", json.dumps(result["extra"], indent=2), "```"]
    return "\n".join(lines) + "\n"
