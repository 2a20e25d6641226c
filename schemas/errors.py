"""Error types that map onto the CLI's exit codes (see ../shared/CLI.md).

- ``BadInputError``  -> exit 2: a missing file, an unknown field, an impossible value.
  The message names the file or field and says how to fix it.
- ``CheckFailed``    -> exit 1: a gate, a checksum or an invariant that the data failed.
"""

from __future__ import annotations


class TokenfoundryError(Exception):
    """Base class for every error tokenfoundry raises on purpose."""

    exit_code = 1


class BadInputError(TokenfoundryError, ValueError):
    """Bad usage or bad input; nothing has been written. Exit code 2."""

    exit_code = 2


class CheckFailed(TokenfoundryError):
    """A gate, checksum or invariant failed on real data. Exit code 1."""

    exit_code = 1


class GateFailed(CheckFailed):
    """An evaluation gate failed; later stages (publish) must not run."""


class InvariantError(CheckFailed):
    """An internal count or invariant did not balance (e.g. read != kept + rejected)."""


class DiskFull(TokenfoundryError):
    """No space left on the device of a workspace or registry (ENOSPC). Exit code 1.

    Names the root and the file being written, the bytes that write needed (when known) and
    what is free, and says how to make room; the writer has removed its temporaries.
    """

    exit_code = 1

    def __init__(self, root: str, path: str | None = None, needed: int | None = None,
                 free: int | None = None):
        self.root, self.path, self.needed, self.free = root, path, needed, free
        super().__init__(disk_full_message(path, root=root, needed=needed, free=free))

    def details(self) -> dict[str, object]:
        return {"root": self.root, "path": self.path, "bytes_needed": self.needed,
                "bytes_free": self.free}


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def disk_full_message(path: str | None, root: str | None = None, needed: int | None = None,
                      free: int | None = None) -> str:
    """The one-line message for ENOSPC: where, how much was needed and is free, what to do."""
    where = f"workspace/registry {root}" if root else "the output directory"
    msg = f"no space left on the device of {where}"
    if path:
        msg += f" while writing {path}"
    if needed is not None:
        msg += f"; this write needed about {_size(needed)} more"
    if free is not None:
        msg += f" ({_size(free)} free)"
    return (msg + ". Temporary files were removed; free space (e.g. `tokenfoundry gc` removes "
            "what killed runs left) or use a workspace on a larger disk (--workspace), then run "
            "again")
