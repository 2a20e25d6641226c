"""Prefect's console log handler without failed runs' tracebacks (they stay in Prefect's logs).

Selected by ``PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS`` (see :mod:`tokenfoundry.flows.prefect_setup`).
A failed gate or a bad input inside a pipeline otherwise prints every flow and task run's
traceback on the console (~170 lines) before the CLI's one-line ``error:``. Records below ERROR
(retries, warnings) still print; with ``--verbose`` everything prints. The API log handler is
a separate handler, so the Prefect UI and ``prefect flow-run logs`` keep the full tracebacks.
"""

from __future__ import annotations

import logging

from prefect.logging.handlers import PrefectConsoleHandler

from tokenfoundry.flows.prefect_setup import is_verbose

#: Loggers whose ERROR records describe a run that failed (its exception reaches the CLI).
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class QuietConsoleHandler(PrefectConsoleHandler):
    """Drops ERROR records of flow/task runs (and exception text of any record) unless verbose."""

    def emit(self, record: logging.LogRecord) -> None:
        if not is_verbose():
            if record.levelno >= logging.ERROR and record.name.startswith(RUN_LOGGERS):
                return
            if record.exc_info or record.exc_text:
                record = logging.makeLogRecord({**record.__dict__, "exc_info": None,
                                                "exc_text": None})
        super().emit(record)
