"""The one rule for retries: which errors a retry can fix.

Every Prefect task that touches storage retries through Prefect itself, with
``@task(retries=N, retry_delay_seconds=..., retry_condition_fn=retry_transient)``; no code
writes its own retry loop. Transient: timeouts, dropped or refused connections and the errnos of
a busy or flaky device/network (EAGAIN, EBUSY, EIO, ETIMEDOUT, ECONNRESET, ...), also when they
are the ``__cause__``/``__context__`` of another exception. Never transient: a missing file, a
permission, a directory where a file should be (a retry cannot create them), and tokenfoundry's
own errors (bad input, a failed gate).
"""

from __future__ import annotations

import errno
from typing import Any

from tokenfoundry.schemas.errors import TokenfoundryError

_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EBUSY, errno.EIO, errno.ETIMEDOUT, errno.ECONNRESET,
                     errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.EINTR,
                     errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ESTALE}
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
              FileExistsError, TokenfoundryError)

#: Retries of a storage-touching task and the delays between them (seconds).
RETRIES = 2
RETRY_DELAYS = [1, 4]


def is_transient(exc: BaseException | None) -> bool:
    """True for errors that may go away on a retry (see the module docstring)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, _PERMANENT):
            return False
        if isinstance(exc, (TimeoutError, ConnectionError)):
            return True
        if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:  # noqa: ARG001 - Prefect's
    """``retry_condition_fn`` for Prefect tasks: retry only :func:`is_transient` errors."""
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - we classify whatever the task raised
        return is_transient(exc)
    return False
