"""One Prefect set-up for every door: CLI commands, ``--flow``, ``run``, ``quickstart``, tests.

Prefect reads its settings and configures logging when it is first imported, so
:func:`prepare_prefect_env` must run before that. The CLI's root callback calls it for every
command (``flows/cli/__init__.py``), and ``tests/conftest.py`` calls it at import. What it sets
(each only where the user has not set it already):

- ``PREFECT_SERVER_ANALYTICS_ENABLED=false`` and ``DO_NOT_TRACK=1``: no telemetry. The
  ephemeral server's telemetry heartbeat otherwise races the flow run for the SQLite database
  and prints a "database is locked" traceback.
- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120``: the ephemeral API takes 15-30 s to
  start on a loaded 2-core machine (Prefect's default timeout is shorter than that under load).
- ``PREFECT_LOGGING_LEVEL=WARNING``: quiet console logs.
- ``PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS``: :class:`~tokenfoundry.flows.prefect_console.
  QuietConsoleHandler`, Prefect's console handler that leaves failed flow/task runs' tracebacks
  to the Prefect logs (the API handler still records them) unless ``--verbose``; the CLI prints
  one ``error:`` block instead.
- offline model hubs (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``): code never downloads.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

#: Environment defaults (a value already in the environment wins).
PREFECT_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOGGERS_PREFECT_LEVEL": "WARNING",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS":
        "tokenfoundry.flows.prefect_console.QuietConsoleHandler",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "true",
}

#: Set to "1" by ``--verbose``: tracebacks on the console again.
VERBOSE_ENV = "TOKENFOUNDRY_VERBOSE"

_prepared = False


def prepare_prefect_env(verbose: bool | None = None) -> None:
    """Apply :data:`PREFECT_DEFAULTS` once per process (later calls only update ``verbose``).

    Call it before Prefect is imported; when Prefect is already imported the environment is
    still set (subprocesses, Dask workers and the API server read it) but this process keeps
    the settings Prefect read at import.
    """
    global _prepared
    if verbose is not None:
        os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    if _prepared:
        return
    _prepared = True
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(prefect|distributed)")
    for name in ("distributed", "prefect.server", "uvicorn", "alembic", "httpx", "docket"):
        logging.getLogger(name).setLevel(logging.ERROR)


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false")


def prefect_imported() -> bool:
    """True when Prefect was imported before the set-up could run (its settings are fixed)."""
    return "prefect" in sys.modules
