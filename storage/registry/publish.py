"""Publishing: stage the files, then commit them as a version exactly once per content.

The commit protocol (written once; ``import`` uses it too, see docs/registry-format.md):

1. Stage every file and hash it (``store.Staging``): the content identity ``fp`` is known.
2. Look up the content record ``<name>/_content/<fp>.json``. A record naming a committed
   version whose (re-checked) manifest has identity ``fp`` is a reuse: nothing new is written.
3. Otherwise take the content record with an exclusive create (the lock for this content),
   claim the next version number with an exclusive create of ``<name>/_claims/<v>.json``, write
   the number into the record and commit (local: one rename; object store: upload, then the
   manifest by conditional put).
4. A publisher that finds the record naming a version not yet committed commits its own,
   identical files under that number; whoever commits first wins, the others see a reuse. So
   any number of simultaneous publishes of the same files give one version, and a publisher
   killed after taking the record is completed by the next one.

Then ``latest`` moves forward to the version, also on a reuse: a kill after the commit that
left ``latest`` behind is repaired by the next publish instead of making a duplicate.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec

from tokenfoundry.schemas.errors import BadInputError, CheckFailed
from tokenfoundry.schemas.registry import MANIFEST_FORMAT, PublishResult
from tokenfoundry.storage.registry import aliases
from tokenfoundry.storage.registry.manifest import build_manifest, content_sha256, parse_manifest
from tokenfoundry.storage.registry.refs import LATEST, MANIFEST, check_alias, path_problem
from tokenfoundry.storage.registry.store import (
    Item,
    Progress,
    Staging,
    Store,
    is_local_fs,
)
from tokenfoundry.storage.provenance import utc_now
from tokenfoundry.storage.workspace import check_name

#: Test hook ``DIR:N``: after staging, each publisher adds a file to DIR and waits until DIR
#: holds N files (a barrier: N processes reach the commit together).
ENV_BARRIER = "TOKENFOUNDRY_REGISTRY_BARRIER"
#: A content record without a version number older than this is a dead publisher's; taken over.
LOCK_SECONDS = 30.0
_ATTEMPTS = 1000  # (a wait for a locked record sleeps 0.05 s per attempt: beyond LOCK_SECONDS)


def no_progress(done: float, total: float | None, message: str = "") -> None:
    """Report nothing."""


# ---- what to publish ---------------------------------------------------------------------------


def collect_source(source: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]]
                   ) -> list[Item]:
    """The files to publish: a directory (walked; symlinks to files are followed) or a mapping
    {path in version: source file}. A top-level ``manifest.json`` that is a registry manifest
    (a pulled version being re-published) is skipped; any other one is refused (reserved name)."""
    items = _from_mapping(source) if isinstance(source, Mapping) else _from_directory(source)
    out = []
    for it in items:
        if it.rel == MANIFEST:
            if _is_registry_manifest(it):
                continue
            raise BadInputError(f"{it.path}: 'manifest.json' is reserved for the registry's "
                                "manifest at the top of a version; rename the file")
        why = path_problem(it.rel)
        if why:
            raise BadInputError(f"{it.rel!r}: {why}; rename it before publishing")
        out.append(it)
    if not out:
        raise BadInputError(f"{source}: nothing to publish (no files)")
    return out


def _from_mapping(source: Mapping[str, Any]) -> list[Item]:
    items = []
    for rel, src in source.items():
        fs, p = fsspec.core.url_to_fs(os.fspath(src))
        local = is_local_fs(fs)
        p = os.path.abspath(p) if local else p
        if not fs.isfile(p):
            raise BadInputError(f"{src}: no such file (to publish as {rel!r})")
        items.append(Item(rel, fs, p, int(fs.size(p)), local))
    return items


def _from_directory(source: str | os.PathLike[str]) -> list[Item]:
    fs, root = fsspec.core.url_to_fs(os.fspath(source))
    if not is_local_fs(fs):
        if not fs.isdir(root):
            raise BadInputError(f"{source}: not a directory; pass the directory to publish")
        return [Item(posixpath.relpath(p, root), fs, p, int(i.get("size") or 0), False)
                for p, i in sorted(fs.find(root, detail=True).items())]
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise BadInputError(f"{source}: not a directory; pass the directory to publish "
                            "(e.g. the --out of `tokenfoundry train`)")
    items = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            if not os.path.isfile(full):  # dangling symlink, socket, fifo ...
                raise BadInputError(f"{full}: not a regular file; remove it before publishing")
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            items.append(Item(rel, fs, full, os.path.getsize(full), True))
    return items


def _is_registry_manifest(it: Item) -> bool:
    try:
        with it.open() as fh:
            return json.loads(fh.read(64 << 20)).get("format") == MANIFEST_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# ---- the content record and version claims -----------------------------------------------------


@dataclass
class Found:
    """What the content record of ``fp`` says: state is committed | pending | locked | absent |
    untrusted (unreadable, or naming a version with other files, or a released claim)."""

    state: str
    version: int | None = None
    age: float = 0.0


def content_path(name: str, fp: str) -> str:
    return posixpath.join(name, "_content", f"{fp}.json")


def claim_path(name: str, version: int) -> str:
    return posixpath.join(name, "_claims", f"{version}.json")


def committed_manifest(store: Store, name: str, version: int):
    """The checked manifest of a committed version, or None if it has none."""
    try:
        raw = store.read(posixpath.join(name, str(version), MANIFEST))
    except FileNotFoundError:
        return None
    return parse_manifest(raw, f"{name}@{version}")


def find_content(store: Store, name: str, fp: str) -> Found:
    """Read and check the content record of ``fp`` (never trusted without the manifest)."""
    try:
        rec = json.loads(store.read(content_path(name, fp)))
    except FileNotFoundError:
        return _latest_fallback(store, name, fp)
    except ValueError:
        return Found("untrusted")
    if not isinstance(rec, dict):
        return Found("untrusted")
    v, at = rec.get("version"), rec.get("at")
    if v is None:
        started = at if isinstance(at, (int, float)) and not isinstance(at, bool) else 0.0
        return Found("locked", age=time.time() - started)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        return Found("untrusted")
    try:
        m = committed_manifest(store, name, v)
    except CheckFailed:
        return Found("untrusted")
    if m is not None:
        return Found("committed", v) if m.content_sha256 == fp else Found("untrusted")
    return Found("pending", v) if _claim_token(store, name, v) == rec.get("token") \
        else Found("untrusted")  # its claim was released (or is another publisher's)


def _claim_token(store: Store, name: str, v: int) -> str | None:
    try:
        return json.loads(store.read(claim_path(name, v))).get("token")
    except (FileNotFoundError, ValueError, AttributeError):
        return None


def _latest_fallback(store: Store, name: str, fp: str) -> Found:
    """No record: the newest version may still hold these files (a registry written before
    records were taken first); a match is recorded so the next lookup is one read."""
    for v in sorted((int(v) for v in store.ls(name) if v.isdigit()), reverse=True):
        try:
            m = committed_manifest(store, name, v)
        except CheckFailed:
            return Found("absent")
        if m is None:
            continue
        if m.content_sha256 != fp:
            return Found("absent")
        store.write(content_path(name, fp), json.dumps({"version": v}).encode())
        return Found("committed", v)
    return Found("absent")


def claim(store: Store, name: str, token: str, want: int | None = None) -> int:
    """Allocate a version number no other publisher can get (exclusive claim object)."""
    for _ in range(_ATTEMPTS):
        taken = [int(f[:-5]) for f in store.ls(posixpath.join(name, "_claims"))
                 if f.endswith(".json") and f[:-5].isdigit()]
        present = [int(v) for v in store.ls(name) if v.isdigit()]
        v = want if want is not None else max([0, *taken, *present]) + 1
        body = json.dumps({"version": v, "token": token, "claimed_at": utc_now(),
                           "claimed_ts": time.time(),
                           "pid": os.getpid(), "host": socket.gethostname(),
                           "user": aliases.user()}).encode()
        if v not in present and store.create(claim_path(name, v), body):
            return v
        if want is not None:
            raise BadInputError(f"{name}@{want}: that version number is already taken in "
                                f"registry {store.uri}; import with --as-new")
    raise CheckFailed(f"{name}: could not allocate a version (too much contention)")


def commit(store: Store, name: str, staging: Staging, manifest_for: Callable[[int], bytes],
           token: str, want: int | None = None) -> tuple[int, bool]:
    """Commit the staged files as a version, once per content; (version, reused)."""
    fp = content_sha256(staging.entries)
    record = content_path(name, fp)
    for _ in range(_ATTEMPTS):
        found = find_content(store, name, fp)
        if found.state == "committed":
            return found.version, True
        if found.state == "pending":
            if staging.commit(found.version, manifest_for(found.version)):
                return found.version, False
            continue  # somebody committed it first: a reuse on the next look
        if found.state == "locked" and found.age < LOCK_SECONDS:
            time.sleep(0.05)  # its owner is claiming a number right now
            continue
        lock = json.dumps({"token": token, "at": time.time()}).encode()
        if found.state == "absent" and not store.create(record, lock):
            continue
        if found.state != "absent":
            store.write(record, lock)  # untrusted or abandoned: replaced by ours
        return _claim_and_commit(store, name, staging, manifest_for, token, want, record)
    raise CheckFailed(f"{name}: could not commit (too much contention)")


def _claim_and_commit(store, name, staging, manifest_for, token, want, record):
    try:
        v = claim(store, name, token, want)
    except BaseException:
        store.remove(record)
        raise
    store.write(record, json.dumps({"version": v, "token": token}).encode())
    try:
        if staging.commit(v, manifest_for(v)):
            return v, False
    except BaseException:
        if store.local:  # the stage goes; an object store keeps claim + files for gc
            store.remove(claim_path(name, v))
        raise
    m = committed_manifest(store, name, v)  # a helper committed our identical files first
    if m is not None and m.content_sha256 == content_sha256(staging.entries):
        return v, True
    raise CheckFailed(f"{name}@{v}: a manifest appeared under our claimed version; another "
                      "publisher ignored the claim protocol")


# ---- publish -----------------------------------------------------------------------------------


def publish(store: Store, name: str, source: Any, *, lineage: dict[str, Any] | None = None,
            metrics: dict[str, Any] | None = None, gates: list[dict[str, Any]] | None = None,
            aliases_to_move: Iterable[str] = (), progress: Progress = no_progress
            ) -> PublishResult:
    """Publish the files of ``source`` as the next version of ``name`` (see module docstring)."""
    t0 = time.perf_counter()
    check_name(name, "registry")
    extra = [check_alias(a) for a in aliases_to_move if a != LATEST]
    items = collect_source(source)
    token = uuid.uuid4().hex
    publisher = {"user": aliases.user(), "token": token}
    with store.staging(name, token) as staging:
        entries = staging.add(items, progress)
        barrier()
        v, reused = commit(store, name, staging,
                           lambda v: build_manifest(name, v, entries, lineage, metrics, gates,
                                                    publisher), token)
    moved = move_latest(store, name, v, "publish")
    for a in extra:
        aliases.move(store, name, a, v, "publish")
        moved[a] = v
    return PublishResult(ref=f"{name}@{v}", name=name, version=v,
                         uri=store.full_uri(posixpath.join(name, str(v))), registry=store.uri,
                         reused=reused, files=len(entries), bytes=sum(e.size for e in entries),
                         aliases=moved, seconds=round(time.perf_counter() - t0, 3))


def move_latest(store: Store, name: str, v: int, by: str, note: str = "") -> dict[str, int]:
    """Move ``latest`` forward to ``v`` (also repairs a publish killed before its move)."""
    prev, changed = aliases.move(store, name, LATEST, v, by, note=note, forward_only=True)
    return {LATEST: v} if changed or prev == v else {}


def barrier() -> None:
    """ENV_BARRIER ``DIR:N`` (failure tests only; unset: nothing): wait for N publishers."""
    spec = os.environ.get(ENV_BARRIER)
    if spec:
        directory, _, n = spec.rpartition(":")
        os.makedirs(directory, exist_ok=True)
        open(os.path.join(directory, f"{socket.gethostname()}-{os.getpid()}"), "w").close()
        while len(os.listdir(directory)) < int(n):
            time.sleep(0.01)
