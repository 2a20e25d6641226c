"""``tokenfoundry run PIPELINE.yaml``: the end-to-end Prefect flow, with a rich progress bar.

The pipeline always runs as a Prefect flow (``flows.pipeline.pipeline_flow``): with no
``PREFECT_API_URL`` set, Prefect starts its ephemeral API in this process (15-30 s here), so
the run, its subflows and artifacts are recorded as on a server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenfoundry.flows.cli.app import (
    JsonOpt,
    WorkspaceOpt,
    app,
    cli_errors,
    emit_json,
    err,
    out,
)

RunnerOpt = Annotated[
    str | None,
    typer.Option("--runner", help="Task runner of ingest/dedup: threads (default) or dask "
                 "(a LocalCluster; see --workers/--address). Overrides runner.kind."),
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, help="threads: pool size; dask: LocalCluster "
                             "workers. Overrides runner.max_workers."),
]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Existing Dask scheduler, e.g. tcp://host:8786 "
                             "(implies --runner dask)."),
]


def prepare_prefect_env() -> None:
    """Defaults for a CLI process that starts Prefect: no analytics, a generous ephemeral
    start-up timeout (2-core machines need 15-30 s), quiet Prefect console logs. A value the
    user has set wins."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_LEVEL", "WARNING")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("distributed", "prefect.server", "uvicorn", "alembic", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def runner_overrides(runner: str | None, workers: int | None, address: str | None
                     ) -> dict[str, Any] | None:
    from tokenfoundry.schemas.errors import BadInputError

    if runner is not None and runner not in ("threads", "dask"):
        raise BadInputError(f"--runner {runner!r}: choose threads or dask")
    o: dict[str, Any] = {}
    if runner:
        o["kind"] = runner
        if runner == "threads":
            o["address"] = None
    if workers:
        o["max_workers"] = workers
    if address:
        o["kind"], o["address"] = "dask", address
    return o or None


def run_with_progress(spec: Any, workspace: str, runner: dict[str, Any] | None,
                      show: bool = True) -> dict[str, Any]:
    """Run the pipeline flow in this process with a rich progress bar on stderr."""
    prepare_prefect_env()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from tokenfoundry.flows.pipeline import add_listener, run_pipeline

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("stages"), TimeElapsedColumn(),
                  console=err, transient=False, disable=not show) as bar:
        tid = bar.add_task("starting Prefect (ephemeral API)...", total=None)

        def on_event(ev: dict[str, Any]) -> None:
            if ev["event"] == "stage_start":
                bar.update(tid, total=ev["total"], completed=ev["done"],
                           description=f"{ev['label']}")
            elif ev["event"] == "stage_done":
                bar.update(tid, completed=ev["done"])
                note = "reused" if ev.get("reused") else f"{ev['seconds']:.1f} s"
                bar.console.print(f"  [green]✓[/] {ev['label']} [dim]({note})[/]")
            elif ev["event"] == "gate_failed":
                bar.update(tid, description="[red]gate failed[/]")

        remove = add_listener(on_event)
        try:
            result = run_pipeline(spec, workspace, runner)
        finally:
            remove()
        bar.update(tid, description="done")
    return result


def print_summary(result: dict[str, Any]) -> None:
    """Metrics table (candidate beside references), gates, snapshots, what was published."""
    from rich.markup import escape
    from rich.table import Table

    from tokenfoundry.flows.pipeline import REPORT_METRICS, metrics_rows

    rows = metrics_rows(result.get("evaluation", {}))
    if rows:
        from rich import box

        t = Table(title=f"pipeline {result.get('pipeline')}: tokenizer metrics on held-out text",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        cols = [(k, h) for k, h in REPORT_METRICS if any(r[k] is not None for r in rows)]
        t.add_column("tokenizer", style="bold", no_wrap=True)
        for _k, h in cols:
            t.add_column(h, justify="right", no_wrap=True)
        for r in rows:
            t.add_row(r["tokenizer"].replace(" (candidate)", " *"),
                      *[_cell(r[k]) for k, _h in cols],
                      style="green" if "(candidate)" in r["tokenizer"] else None)
        t.caption = "* candidate; NSL vs o200k; B/tok = UTF-8 bytes per token"
        # Numbers are never elided: at least 110 columns, even on a narrow terminal or a pipe.
        from rich.console import Console

        (out if out.width >= 110 else Console(width=110, file=out.file)).print(t)
    gates = result.get("gates") or []
    if gates:
        g = Table(title="gates", title_justify="left")
        for c in ("gate", "value", "result"):
            g.add_column(c)
        for x in gates:
            g.add_row(escape(x["expr"]), _cell(x.get("value")),  # "nsl[o200k]" is not markup
                      "[green]pass[/]" if x.get("passed") else "[red]FAIL[/]")
        out.print(g)
    s = Table(title="stages", title_justify="left")
    for c in ("stage", "output", "reused", "seconds"):
        s.add_column(c)
    for r in result.get("stages", []):
        s.add_row(r["stage"], str(r["output"]), "yes" if r["reused"] else "no",
                  f"{r['seconds']:.1f}")
    out.print(s)
    pub = result.get("published")
    if pub:
        out.print(f"published [bold green]{pub['ref']}[/] to {pub.get('registry', '')}"
                  + (" [dim](already there: nothing new)[/]" if pub.get("reused") else ""))


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


MaxBytesOpt = Annotated[
    str | None,
    typer.Option("--max-bytes", help="Size cap for a quick run of a big pipeline: each corpus "
                 "ingests at most this many bytes of source files (whole files, taken in turn "
                 "from each of its sources, so every source keeps a share) and train samples at "
                 "most this many bytes; everything else runs as the spec says. E.g. 20MB."),
]


@app.command("run")
@cli_errors
def run_command(
    pipeline: Annotated[Path, typer.Argument(
        help="pipeline.yaml, or the name of a shipped example (quickstart, legal, "
        "multilingual, code, ...; examples/NAME.yaml works from any directory).",
        show_default=False)],
    workspace: WorkspaceOpt = "./workspace",
    json_out: JsonOpt = False,
    runner: RunnerOpt = None,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    max_bytes: MaxBytesOpt = None,
) -> None:
    """Run a pipeline end to end: ingest -> dedup -> train -> evaluate -> gate -> publish.

    Finished stages are reused (a re-run publishes nothing new); a failed gate stops before
    publish and exits 1 naming the metric, its value and the threshold.

    Example: tokenfoundry run examples/legal.yaml --workspace ./ws --runner dask --workers 2

    Example: tokenfoundry run multilingual --max-bytes 20MB --workspace ./ws   # a quick run
    """
    from tokenfoundry.flows.cli.train import parse_size
    from tokenfoundry.flows.quickstart import cap_source_bytes, load_pipeline_file

    overrides = runner_overrides(runner, workers, address)
    spec = load_pipeline_file(str(pipeline), {"runner": overrides} if overrides else None)
    if max_bytes is not None:
        spec = cap_source_bytes(spec, parse_size(max_bytes), str(pipeline))
    prepare_prefect_env()  # before Prefect is first imported
    from tokenfoundry.flows.pipeline import PipelineGateFailed

    try:
        result = run_with_progress(spec, workspace, None, show=True)
    except PipelineGateFailed as e:
        if json_out:
            emit_json({**e.result, "error": str(e)})
        else:
            print_summary(e.result)
        raise
    if json_out:
        emit_json(result)
    else:
        print_summary(result)
