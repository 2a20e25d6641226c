"""``tokenfoundry``: the command-line entry point. See ../shared/CLI.md for the contract."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from tokenfoundry.flows.cli.app import app, usage_error_json
from tokenfoundry.flows.prefect_setup import prepare_prefect_env

# Every module in this package except ``app`` (and ``__main__``) registers its commands on import.
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("app", "__main__"):
        importlib.import_module(f"{__name__}.{_m.name}")


def _version(value: bool) -> None:
    if value:
        from tokenfoundry.storage.provenance import code_version

        typer.echo(f"tokenfoundry {code_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="On an error, also print the traceback (and Prefect's)."),
) -> None:
    """Turn raw domain and multilingual text into evaluated, versioned tokenizers."""
    # Before any command imports Prefect: one set-up for every door (see flows/prefect_setup).
    prepare_prefect_env(verbose=True if verbose else None)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. A usage error (unknown option, missing argument) exits 2 like click does,
    and with ``--json`` among the arguments it is also one JSON error object on stdout."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args=args, prog_name="tokenfoundry", standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("Aborted.\n")
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - click's usage errors (typer vendors click)
        show, code = getattr(e, "show", None), getattr(e, "exit_code", None)
        if not (callable(show) and isinstance(code, int)):
            raise
        if "--json" in args:
            usage_error_json(e.format_message(), code)
        show()
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)
