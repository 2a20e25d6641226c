"""A full disk (ENOSPC) as an error that names where, how much, and what to do.

Writers of the workspace wrap their writes in :func:`disk_full_guard`: on ENOSPC the writer's
temporaries are removed (``cleanup``) and :class:`~tokenfoundry.schemas.errors.DiskFull` is
raised naming the workspace root, the file, the bytes that write needed and what is free,
instead of a raw ``OSError: [Errno 28]`` traceback and ``*.tmp-*`` files left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator

from tokenfoundry.schemas.errors import DiskFull

_MESSAGE = "no space left on device"


def is_enospc(exc: BaseException | None) -> bool:
    """ENOSPC by errno, or by message where a library (pyarrow, DuckDB) drops the errno."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if _MESSAGE in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def free_bytes(path: str) -> int | None:
    """Free bytes on the local filesystem holding ``path`` (its nearest existing parent)."""
    p = os.path.abspath(path)
    while p and not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


@contextlib.contextmanager
def disk_full_guard(root: str | None, path: str, needed: int | None = None,
                    cleanup: Callable[[], None] | None = None, local: bool = True
                    ) -> Iterator[None]:
    """Turn ENOSPC raised inside the block into DiskFull, after ``cleanup`` (best effort)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as e:
        if not is_enospc(e):
            raise
        if cleanup is not None:
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - the disk is full; report that, not this
                pass
        raise DiskFull(root or os.path.dirname(path), path, needed,
                       free_bytes(path) if local else None) from e
