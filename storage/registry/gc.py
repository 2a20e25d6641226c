"""Garbage collection: what crashed or killed publishers left behind, older than a grace period.

- ``staging``: a local publish's ``_staging/<name>.<token>/`` directory, its marker, temp files;
- ``uncommitted-version``: a version directory/prefix without a manifest (an object-store
  publish killed while uploading), removed together with its claim;
- ``claim``: a version number claimed by a publisher that never committed it (released, so the
  number is given out again);
- ``content-record``: a content record naming a version that was never committed and is no
  longer claimed, or one whose owner died before claiming a number.

Committed versions, their claims and their content records are never touched.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Callable

from tokenfoundry.schemas.registry import GcEntry, GcResult
from tokenfoundry.storage.registry.publish import claim_path
from tokenfoundry.storage.registry.refs import MANIFEST
from tokenfoundry.storage.registry.store import STAGING, Store

DEFAULT_GRACE_SECONDS = 24 * 3600


class _Collector:
    def __init__(self, store: Store, grace: float, force: bool):
        self.store, self.grace, self.force, self.now = store, grace, force, time.time()
        self.res = GcResult(registry=store.uri)

    def decide(self, rel: str, kind: str, started: float | None, size: int,
               remove: Callable[[], None]) -> bool:
        age = max(0.0, self.now - started) if started else float("inf")
        entry = GcEntry(path=self.store.full_uri(rel), kind=kind,
                        age_seconds=round(age, 1) if age != float("inf") else -1.0, bytes=size)
        if not (self.force or age > self.grace):
            self.res.kept.append(entry)
            return False
        remove()
        self.res.removed.append(entry)
        self.res.bytes_freed += size
        return True


def gc(store: Store, grace_seconds: float = DEFAULT_GRACE_SECONDS,
       force: bool = False) -> GcResult:
    """Remove leftovers older than ``grace_seconds`` (all with ``force``: only when no publish
    is running)."""
    c = _Collector(store, grace_seconds, force)
    if store.local:
        _staging(c)
    for name in [n for n in store.ls("") if not n.startswith(("_", "."))]:
        committed = set(store.versions(name))
        _uncommitted(c, name, committed)
        _claims(c, name, committed)
        _records(c, name, committed)
    return c.res


def _staging(c: _Collector) -> None:
    store = c.store
    for fn in store.ls(STAGING):
        rel = posixpath.join(STAGING, fn)
        full = store.p(rel)
        if fn.endswith(".json") and os.path.isdir(full[:-5]):
            continue  # a marker goes together with its directory
        if not os.path.lexists(full):
            continue
        started = _json_field(store, rel + ".json", "started_ts") or os.path.getmtime(full)
        size = sum(store.files(rel).values()) if os.path.isdir(full) else os.path.getsize(full)

        def rm(rel: str = rel) -> None:
            store.remove(rel)
            store.remove(rel + ".json")

        c.decide(rel, "staging", started, size, rm)


def _uncommitted(c: _Collector, name: str, committed: set[int]) -> None:
    store = c.store
    for v in store.ls(name):
        if not v.isdigit() or int(v) in committed or \
                store.exists(posixpath.join(name, v, MANIFEST)):
            continue
        rel = posixpath.join(name, v)
        claim = claim_path(name, int(v))

        def rm(rel: str = rel, claim: str = claim) -> None:
            store.remove(rel)
            store.remove(claim)

        c.decide(rel, "uncommitted-version", _claimed_ts(store, claim),
                 sum(store.files(rel).values()), rm)


def _claims(c: _Collector, name: str, committed: set[int]) -> None:
    store = c.store
    present = {int(v) for v in store.ls(name) if v.isdigit()}
    for fn in store.ls(posixpath.join(name, "_claims")):
        if not (fn.endswith(".json") and fn[:-5].isdigit()) or int(fn[:-5]) in present | committed:
            continue
        rel = claim_path(name, int(fn[:-5]))
        c.decide(rel, "claim", _claimed_ts(store, rel), len(_read(store, rel)),
                 lambda rel=rel: store.remove(rel))


def _records(c: _Collector, name: str, committed: set[int]) -> None:
    store = c.store
    base = posixpath.join(name, "_content")
    for fn in store.ls(base):
        rel = posixpath.join(base, fn)
        raw = _read(store, rel)
        try:
            rec = json.loads(raw)
            v, at = rec.get("version"), rec.get("at")
        except (ValueError, AttributeError):
            v, at = None, None
        if isinstance(v, int) and (v in committed or store.exists(claim_path(name, v))):
            continue
        started = at if v is None and isinstance(at, (int, float)) else None  # else: no owner
        c.decide(rel, "content-record", started, len(raw),
                 lambda rel=rel: store.remove(rel))


def _claimed_ts(store: Store, rel: str) -> float | None:
    ts = _json_field(store, rel, "claimed_ts")
    return float(ts) if isinstance(ts, (int, float)) else None


def _json_field(store: Store, rel: str, key: str):
    try:
        return json.loads(store.read(rel)).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _read(store: Store, rel: str) -> bytes:
    try:
        return store.read(rel)
    except FileNotFoundError:
        return b""
