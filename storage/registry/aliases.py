"""Aliases: an append-only log per alias, ``<name>/_aliases/<alias>/<seq:08d>.json``.

The event with the highest sequence number is the alias' current value. A move appends the next
sequence number with an exclusive create, so two concurrent moves never both land on the same
number; the loser re-reads the log and tries again. ``latest`` moves forward only (judged against
its value at every attempt), so a slow publisher never moves it back.
"""

from __future__ import annotations

import getpass
import posixpath
import socket

from tokenfoundry.schemas.errors import CheckFailed
from tokenfoundry.schemas.registry import AliasEvent
from tokenfoundry.storage.provenance import utc_now
from tokenfoundry.storage.registry.store import Store

_ATTEMPTS = 1000


def _log(name: str, alias: str) -> str:
    return posixpath.join(name, "_aliases", alias)


def _seqs(store: Store, name: str, alias: str) -> list[int]:
    return sorted(int(fn[:-5]) for fn in store.ls(_log(name, alias))
                  if fn.endswith(".json") and fn[:-5].isdigit())


def events(store: Store, name: str, alias: str) -> list[AliasEvent]:
    """Every move of ``alias``, oldest first."""
    base = _log(name, alias)
    return [AliasEvent.model_validate_json(store.read(posixpath.join(base, f"{s:08d}.json")))
            for s in _seqs(store, name, alias)]


def state(store: Store, name: str, alias: str) -> tuple[int, int | None]:
    """(last sequence number or 0, the version it points at or None)."""
    seqs = _seqs(store, name, alias)
    if not seqs:
        return 0, None
    last = store.read(posixpath.join(_log(name, alias), f"{seqs[-1]:08d}.json"))
    return seqs[-1], AliasEvent.model_validate_json(last).version


def current(store: Store, name: str) -> dict[str, int]:
    """{alias: version} of every alias of ``name``."""
    out = {}
    for alias in store.ls(posixpath.join(name, "_aliases")):
        v = state(store, name, alias)[1]
        if v is not None:
            out[alias] = v
    return out


def move(store: Store, name: str, alias: str, version: int, by: str, note: str = "",
         forward_only: bool = False) -> tuple[int | None, bool]:
    """Append an event pointing ``alias`` at ``version``; (previous version, changed)."""
    for _ in range(_ATTEMPTS):
        seq, prev = state(store, name, alias)
        if prev == version or (forward_only and prev is not None and prev > version):
            return prev, False
        ev = AliasEvent(alias=alias, seq=seq + 1, version=version, previous=prev, at=utc_now(),
                        by=by, user=user(), host=socket.gethostname(), note=note)
        if store.create(posixpath.join(_log(name, alias), f"{seq + 1:08d}.json"),
                        ev.model_dump_json(indent=1).encode()):
            return prev, True
    raise CheckFailed(f"{name}: could not move alias {alias!r} (too much contention)")


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
