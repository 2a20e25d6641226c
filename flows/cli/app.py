"""The typer application, its shared options and output conventions.

Conventions (../shared/CLI.md): ``--json`` prints exactly one JSON object on stdout, and logs and
progress go to stderr. Exit codes: 0 success, 1 a failed gate or check, 2 bad usage / bad input.
Command modules keep heavy imports (Prefect, tokenizers, torch) inside the command body so that
``tokenfoundry --help`` stays instant.

Errors (:func:`cli_errors`): one ``error:`` block on stderr, never a traceback (``--verbose``
shows it); with ``--json`` one JSON object on stdout that carries ``error`` and ``exit_code``
(plus the command's result when it had one, e.g. the metrics of a failed gate).

Output read in logs and CI (:class:`OutputConsole`): text is never wrapped by us (a long path
stays one piece for the terminal or the log viewer to wrap), and a table that does not fit the
width prints as plain ``column=value`` lines instead of breaking cells mid-word.
"""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
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


class OutputConsole(Console):
    """A rich Console whose text never wraps and whose tables fit or become plain lines.

    rich wraps text at the console width (80 columns when stdout is a pipe), which breaks paths
    in CI logs, and squeezes a table into the width by folding cells. Here ``print`` defaults to
    ``soft_wrap=True`` (lines are as long as their content), and a ``rich.table.Table`` wider
    than the console prints as one ``header=value`` line per row (title first).
    """

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("soft_wrap", True)
        super().__init__(**kwargs)

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: A003 - rich's name
        from rich.table import Table

        if len(objects) == 1 and isinstance(objects[0], Table) and not self.fits(objects[0]):
            for line in table_lines(objects[0]):
                super().print(line, markup=False, highlight=False, soft_wrap=True)
            return
        super().print(*objects, **kwargs)

    def fits(self, table: Any) -> bool:
        """The table's natural width (every cell unbroken) is within the console width."""
        from rich.measure import Measurement

        natural = Measurement.get(self, self.options.update(max_width=100_000), table).maximum
        return natural <= self.width


def table_lines(table: Any) -> list[str]:
    """A rich Table as plain lines: its title, then ``header=value`` pairs, one row a line."""
    from rich.text import Text

    def plain(cell: Any) -> str:
        if isinstance(cell, Text):
            return cell.plain
        if isinstance(cell, str):
            return Text.from_markup(cell).plain if table.columns and "[" in cell else cell
        return str(cell)

    lines = [plain(table.title)] if table.title else []
    columns = [(plain(c.header), [plain(x) for x in c.cells]) for c in table.columns]
    for i in range(table.row_count):
        lines.append("  ".join(f"{h}={cells[i]}" if h else cells[i] for h, cells in columns
                               if i < len(cells)))
    if table.caption:
        lines.append(plain(table.caption))
    return lines


#: Progress bars, logs and human messages: stderr, so ``--json`` stdout stays one object.
err = OutputConsole(stderr=True)
#: Summary tables for humans (not used with --json).
out = OutputConsole()

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

#: The JSON object a command emitted, held until it ends (so an error can be added to it).
_pending: list[Any] = []
_holding: list[bool] = []


def cli_errors(fn: F) -> F:
    """Map errors onto exit codes: one ``error:`` block on stderr (or one JSON object).

    Also adds ``--verbose`` to the command (tracebacks on stderr and in Prefect's console logs).
    tokenfoundry errors keep their exit code (1 check, 2 bad input); a full disk and an
    unreachable Prefect API get their own message with the fix; anything else is reported as an
    internal error (exit 1) with its type and message.
    """
    sig = inspect.signature(fn, eval_str=True)
    has_verbose = "verbose" in sig.parameters

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = bool(kwargs.get("verbose")) if has_verbose else bool(kwargs.pop("verbose",
                                                                                  False))
        from tokenfoundry.flows.prefect_setup import is_verbose, prepare_prefect_env

        from tokenfoundry.flows.prefect_setup import VERBOSE_ENV

        # --verbose holds for this command only (in-process callers run several commands)
        previous_verbose = os.environ.get(VERBOSE_ENV)
        prepare_prefect_env(verbose=True if verbose else None)
        json_out = bool(kwargs.get("json_out"))
        _holding.append(True)
        try:
            result = fn(*args, **kwargs)
        except typer.Exit:
            _flush_pending(None)
            raise
        except BaseException as e:  # noqa: BLE001 - every error ends in one block
            if isinstance(e, (KeyboardInterrupt, SystemExit)) and not isinstance(e, typer.Exit):
                _flush_pending(None)
                raise
            code, message, extra = describe_error(e)
            if is_verbose():
                import traceback

                err.print("".join(traceback.format_exception(e)), markup=False,
                          highlight=False)
            # --json: the error joins stdout's one object; stderr gets the block either way
            _flush_pending({"error": message, "exit_code": code, **extra} if json_out else None)
            from rich.markup import escape

            # escape: messages quote user text such as "nsl[o200k] <= 0.9" (not markup)
            err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False,
                      soft_wrap=True)
            raise typer.Exit(code) from None
        finally:
            _holding.pop()
            if previous_verbose is None:
                os.environ.pop(VERBOSE_ENV, None)
            else:
                os.environ[VERBOSE_ENV] = previous_verbose
        _flush_pending(None)
        return result

    if not has_verbose:
        verbose_param = inspect.Parameter(
            "verbose", inspect.Parameter.KEYWORD_ONLY, default=False,
            annotation=Annotated[bool, typer.Option(
                "--verbose", help="On an error, also print the traceback (and Prefect's).")])
        wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[*sig.parameters.values(), verbose_param])
    return wrapper  # type: ignore[return-value]


def describe_error(e: BaseException) -> tuple[int, str, dict[str, Any]]:
    """(exit code, one-paragraph message, extra JSON fields) for any exception."""
    from tokenfoundry.schemas.errors import DiskFull

    extra: dict[str, Any] = {"error_type": type(e).__name__}
    if isinstance(e, TokenfoundryError):
        if isinstance(e, DiskFull):
            extra.update(e.details())
        return e.exit_code, str(e), extra
    enospc = _find(e, lambda x: isinstance(x, OSError) and x.errno == errno.ENOSPC)
    if enospc is not None:
        from tokenfoundry.schemas.errors import disk_full_message

        where = getattr(enospc, "filename", None)
        extra.update({"path": where})
        return 1, disk_full_message(where), extra
    api = prefect_api_error(e)
    if api is not None:
        extra["hint"] = "prefect config unset PREFECT_API_URL"
        return 1, api, extra
    return 1, (f"internal error: {type(e).__name__}: {e} (run again with --verbose for the "
               "traceback)"), extra


def prefect_api_error(e: BaseException) -> str | None:
    """The message for a Prefect API that cannot be reached (server stopped), else None."""
    import os

    def unreachable(x: BaseException) -> bool:
        name = type(x).__module__.split(".")[0]
        return ("Failed to reach API" in str(x)
                or (name in ("httpx", "httpcore") and "Connect" in type(x).__name__))

    hit = _find(e, unreachable)
    if hit is None:
        return None
    url = os.environ.get("PREFECT_API_URL") or _configured_api_url() or "(from the profile)"
    return (f"cannot reach the Prefect API at {url} ({type(hit).__name__}: {hit}). Start the "
            "server again (`prefect server start`), or go back to the ephemeral API that "
            "needs no server: `prefect config unset PREFECT_API_URL` (and `unset "
            "PREFECT_API_URL` if your shell exports it)")


def _configured_api_url() -> str | None:
    if "prefect" not in sys.modules:
        return None
    try:
        from prefect.settings import get_current_settings

        return get_current_settings().api.url
    except Exception:  # noqa: BLE001 - only for the message
        return None


def _find(e: BaseException | None, pred: Callable[[BaseException], bool]
          ) -> BaseException | None:
    """``e`` or the first of its causes/contexts (and exception-group members) that match."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if pred(x):
            return x
        stack += [x.__cause__, x.__context__, *getattr(x, "exceptions", ())]
    return None


def emit_json(obj: Any) -> None:
    """Write one JSON object on stdout (inside a command: when it ends, so that an error raised
    after it joins the same object as ``error``/``exit_code``)."""
    if _holding:
        _pending[:] = [obj]
        return
    _write_json(obj)


def _flush_pending(error: dict[str, Any] | None) -> None:
    obj = _pending[0] if _pending else None
    _pending.clear()
    if error is not None:
        base = obj if isinstance(obj, dict) else {}
        _write_json({**base, **error})
    elif obj is not None:
        _write_json(obj)


def _write_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def usage_error_json(message: str, code: int = 2) -> None:
    """The JSON error object for an error found before a command ran (bad usage)."""
    _write_json({"error": message, "exit_code": code, "error_type": "UsageError"})
