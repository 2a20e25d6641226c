"""The extend flow: base model + target text -> extended tokenizer and resized model -> report.

The same core as ``tokenfoundry extend`` without ``--flow``; here the work is a Prefect task and
the report (tokens added, bytes/token, bits/byte before and after) a markdown artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from tokenfoundry.tasks.extend.prefect_tasks import extend_task


@flow(name="extend", log_prints=False)
def extend_flow(spec: dict[str, Any], workspace: str | None, out: str) -> dict[str, Any]:
    """Extend the vocabulary ``spec`` (an ExtendSpec as a dict) describes into ``out``."""
    report = extend_task(spec, workspace, out)
    create_markdown_artifact(report_markdown(report), key=f"extend-{report['init']}".lower(),
                             description=f"vocabulary extension in {report['out']}")
    return report


def report_markdown(r: dict[str, Any]) -> str:
    """The extension report as markdown."""
    lines = [f"# Vocabulary extension: {r['base']['name']} +{r['tokens_added']} tokens "
             f"({r['init']})", "",
             f"- output: `{r['out']}`",
             f"- base sha256 `{r['base']['sha256'][:16]}`, vocabulary {r['base']['vocab_size']} "
             f"-> {r['vocab_size']}, tied embeddings: {r['base']['tied']}",
             f"- filter `{r['filter']}`, seed {r['seed']}, merges stopped: {r['merges_stopped']}",
             f"- merges {r['merge_seconds']:.1f} s, init {r['init_seconds']:.1f} s, total "
             f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB"]
    if r.get("fallbacks"):
        lines.append(f"- fallbacks: {r['fallbacks']}")
    if "bytes_per_token_before" in r:
        lines += ["", "| held-out | base | extended |", "|---|---|---|",
                  f"| bytes/token | {r['bytes_per_token_before']:.3f} | "
                  f"{r['bytes_per_token_after']:.3f} |",
                  f"| tokens | {r['tokens_before']} | {r['tokens_after']} |"]
        if "bits_per_byte" in r:
            lines.append(f"| bits/byte | {r['bits_per_byte_base']:.4f} | "
                         f"{r['bits_per_byte']:.4f} |")
    return "\n".join(lines) + "\n"
