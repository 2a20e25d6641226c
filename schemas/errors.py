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
