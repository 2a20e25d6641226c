"""The typer application, its shared options and output conventions.

Conventions (../shared/CLI.md): ``--json`` prints exactly one JSON object on stdout, and logs and
progress go to stderr. Exit codes: 0 success, 1 a failed gate or check, 2 bad usage / bad input.
Command modules keep heavy imports (Prefect, tokenizers, torch) inside the command body so that
``tokenfoundry --help`` stays instant.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from tokenfoundry.schemas.errors import TokenfoundryError

app = typer.Typer(
    name="tokenfoundry",
    help=(
        "Turn raw domain and multilingual text into evaluated, versioned tokenizers.\n\n"
        "Example: tokenfoundry quickstart"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Progress bars, logs and human messages: stderr, so ``--json`` stdout stays one object.
err = Console(stderr=True)
#: Summary tables for humans (not used with --json).
out = Console()

WorkspaceOpt = Annotated[
    str,
    typer.Option(
        "--workspace", "-w", envvar="TOKENFOUNDRY_WORKSPACE",
        help="Workspace root: a local directory or an fsspec URI such as s3://bucket/prefix.",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON object on stdout (logs go to stderr).")
]
FlowOpt = Annotated[
    bool,
    typer.Option(
        "--flow",
        help="Run as a Prefect flow (observable in the UI; starts Prefect's API, ~15-30 s here) "
        "instead of calling the task cores directly.",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(fn: F) -> F:
    """Map tokenfoundry errors onto exit codes with a one-line message on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TokenfoundryError as e:
            label = "error" if e.exit_code == 2 else "failed"
            from rich.markup import escape

            # escape: messages quote user text such as "nsl[o200k] <= 0.9" (not rich markup)
            err.print(f"[bold red]{label}:[/] {escape(str(e))}", markup=True, highlight=False,
                      soft_wrap=True)
            raise typer.Exit(e.exit_code) from None

    return wrapper  # type: ignore[return-value]


def emit_json(obj: Any) -> None:
    """Write one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
