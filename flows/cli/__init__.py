"""``tokenfoundry``: the command-line entry point. See ../shared/CLI.md for the contract."""

from __future__ import annotations

import importlib
import pkgutil

import typer

from tokenfoundry.flows.cli.app import app

# Every module in this package except ``app`` and ``__main__`` registers its commands on import.
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
) -> None:
    """Turn raw domain and multilingual text into evaluated, versioned tokenizers."""


def main() -> None:
    app()
