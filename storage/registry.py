"""A versioned artifact registry on fsspec: local directories by default, ``s3://`` for teams.

Layout (documented for consumers without tokenfoundry in the README, "Registry layout")::

    <root>/<name>/<version>/manifest.json        the commit point: a version exists iff it has one
    <root>/<name>/<version>/<path>               the files listed in the manifest
    <root>/<name>/_aliases/<alias>/<seq>.json    append-only alias log; the highest seq is current
    <root>/<name>/_claims/<version>.json         who allocated a version number (exclusive create)
    <root>/<name>/_content/<content_sha256>.json content -> version (idempotent publish)
    <root>/_staging/<name>.<token>/              local backend: a publish in progress

Publishing stages every file first, computing sha256 and size, then makes the version visible in
one step. Local: the staged directory is renamed onto ``<name>/<version>`` (``rename(2)`` is
atomic). Object stores have no rename: the version's prefix receives the files, and the manifest,
written last with a conditional put (``If-None-Match: *``), is the commit point; readers ignore a
prefix without a manifest. Version numbers are claimed by creating ``_claims/<v>.json``
exclusively (local: ``link(2)`` of a complete temp file, which fails if the name exists; S3: a
conditional put), so two concurrent publishers never get the same number. Stores without
conditional puts fall back to write-then-read-back verification of the claim
(``TOKENFOUNDRY_REGISTRY_CLAIM=verify`` forces it).

Pull verifies every file's size and sha256, refuses manifest paths that are absolute, contain
``..`` or backslashes or would resolve outside the target, and writes into a temporary directory
beside the target that is renamed into place only when everything verified. Verified versions
are cached under ``$TOKENFOUNDRY_CACHE`` (default ``~/.cache/tokenfoundry``), keyed by the sha256
of their manifest, and re-verified on every use. Bundles (tar.gz / zip) are checked completely
before anything is written. JSON only; nothing here unpickles anything.

Hand-written because no maintained library does versioned, checksummed, alias-carrying artifact
directories on plain fsspec (MLflow/DVC bring servers or their own formats).
"""

from __future__ import annotations

import getpass
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec
import fsspec.asyn

from tokenfoundry.schemas.errors import BadInputError, CheckFailed
from tokenfoundry.schemas.registry import (
    BUNDLE_FORMAT,
    MANIFEST_FORMAT,
    AliasEvent,
    ExportResult,
    FileEntry,
    GcEntry,
    GcResult,
    ImportResult,
    ListResult,
    NameInfo,
    PromoteResult,
    PublishResult,
    PullResult,
    ShowResult,
    VerifyProblem,
    VerifyResult,
    VersionInfo,
    VersionManifest,
)
from tokenfoundry.storage.fastcopy import copy_files, preallocate, write_all
from tokenfoundry.storage.provenance import code_version, library_versions, utc_now
from tokenfoundry.storage.workspace import (
    DEFAULT_WORKSPACE,
    Workspace,
    atomic_write_bytes,
    check_name,
)

MANIFEST = "manifest.json"
STAGING = "_staging"
LATEST = "latest"
ENV_REGISTRY = "TOKENFOUNDRY_REGISTRY"
ENV_CACHE = "TOKENFOUNDRY_CACHE"
ENV_CLAIM = "TOKENFOUNDRY_REGISTRY_CLAIM"
#: Test hook: a publishing process sleeps this many seconds after staging, before the commit.
ENV_PAUSE = "TOKENFOUNDRY_REGISTRY_PAUSE_AFTER_STAGING"
DEFAULT_GRACE_SECONDS = 24 * 3600
_CHUNK = 1 << 20
_WORKERS = 2
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")

Progress = Callable[[float, "float | None", str], None]


def _no_progress(done: float, total: float | None, message: str = "") -> None:
    """Report nothing."""


# ---- references and paths ----------------------------------------------------------------------


def parse_ref(ref: str) -> tuple[str, str]:
    """``"legal-bpe@3"`` -> ("legal-bpe", "3"); ``"legal-bpe@production"``; ``"legal-bpe"`` ->
    ("legal-bpe", "latest")."""
    if not isinstance(ref, str) or not ref:
        raise BadInputError(f"invalid registry reference {ref!r}: use NAME, NAME@VERSION or "
                            "NAME@ALIAS, e.g. legal-bpe@production")
    name, _, sel = ref.partition("@")
    check_name(name, "registry")
    sel = sel or LATEST
    if not (sel.isdigit() or _ALIAS_RE.fullmatch(sel)):
        raise BadInputError(f"invalid version or alias {sel!r} in {ref!r}: a version is a "
                            "positive integer, an alias starts with a letter")
    return name, sel


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise BadInputError(f"invalid alias {alias!r}: start with a letter; then letters, digits, "
                            "'-', '_' or '.' (a number would be read as a version)")
    return alias


def path_problem(path: Any) -> str | None:
    """Why a manifest/bundle path is unsafe, or None. Safe = relative POSIX, no ``..``/``.``,
    no backslashes, no drive letters, no empty components, no NUL."""
    if not isinstance(path, str) or not path:
        return "empty path"
    if "\x00" in path:
        return "NUL byte in path"
    if "\\" in path:
        return "backslash in path (Windows separators are refused)"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "'..' in path (climbs out of the target)"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    return None


def content_sha256(files: Iterable[FileEntry]) -> str:
    """Identity of a version's files: sha256 of canonical JSON of [path, size, sha256] by path."""
    rows = sorted([f.path, f.size, f.sha256] for f in files)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def resolve_registry_uri(uri: str | os.PathLike[str] | None = None) -> str:
    """``uri`` if given, else ``$TOKENFOUNDRY_REGISTRY``, else ``<workspace>/registry`` of
    ``$TOKENFOUNDRY_WORKSPACE`` (default ``./workspace``)."""
    if uri:
        return os.fspath(uri)
    env = os.environ.get(ENV_REGISTRY)
    if env:
        return env
    return Workspace(os.environ.get("TOKENFOUNDRY_WORKSPACE") or DEFAULT_WORKSPACE).registry_uri


def cache_root() -> Path:
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tokenfoundry"


# ---- hashing and copying -----------------------------------------------------------------------


def sha256_stream(fh: IO[bytes]) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    read = getattr(fh, "readinto", None)
    while True:
        if read is not None:
            k = read(buf)
            if not k:
                break
            h.update(mv[:k])
        else:
            b = fh.read(_CHUNK)
            if not b:
                break
            k = len(b)
            h.update(b)
        n += k
    return h.hexdigest(), n


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    return copy_files([(path, None, os.path.getsize(path))])[0]


def sha256_files(paths: list[str | os.PathLike[str]]) -> list[tuple[str, int]]:
    """sha256 and size of local files, two files hashed at once per core (storage.fastcopy)."""
    return copy_files([(p, None, os.path.getsize(p)) for p in paths], workers=_WORKERS)


def _writev_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` in order with one ``writev(2)`` (no joined copy) when it writes all."""
    if len(parts) == 1 or not hasattr(os, "writev"):
        for p in parts:
            write_all(fd, p)
        return
    k = os.writev(fd, parts)
    if k < sum(len(p) for p in parts):
        write_all(fd, memoryview(b"".join(parts))[k:])


def copy_hash(src: IO[bytes], dst: IO[bytes], on_bytes: Callable[[int], None] | None = None,
              size_hint: int = 0) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` once, hashing exactly the bytes written.

    Each chunk is read into one private, reused buffer, hashed, and written from that same
    buffer, so the digest is of the written bytes even if the source changes meanwhile (hence
    no mmap of the source: a concurrent truncation would also raise SIGBUS). 1 MiB chunks stay
    cache-resident between the hash and the write (4 MiB ones measured ~1.5x slower).
    ``size_hint`` (the expected size) preallocates a raw destination file."""
    h, n = hashlib.sha256(), 0
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    readinto = getattr(src, "readinto", None)
    fd = None
    if isinstance(dst, io.FileIO):
        fd = dst.fileno()
        if size_hint:
            preallocate(fd, size_hint)
    while True:
        if readinto is not None:
            k = readinto(buf)
            if not k:
                break
            chunk = mv[:k]
        else:
            b = src.read(_CHUNK)
            if not b:
                break
            chunk, k = b, len(b)
        h.update(chunk)
        if fd is not None:
            write_all(fd, chunk)
        else:
            dst.write(chunk)
        n += k
        if on_bytes:
            on_bytes(k)
    if fd is not None and n < size_hint:
        os.ftruncate(fd, n)  # frees what _preallocate reserved past the end
    return h.hexdigest(), n


class _Counter:
    """Thread-safe byte counter that forwards to a progress callback."""

    def __init__(self, total: int, message: str, progress: Progress):
        self.done, self.total, self.message, self.progress = 0, total, message, progress
        self._lock = threading.Lock()

    def __call__(self, k: int) -> None:
        with self._lock:
            self.done += k
            done = self.done
        self.progress(done, self.total, self.message)


def _parallel(fn: Callable[[Any], Any], items: list[Any], workers: int = _WORKERS,
              size: Callable[[Any], int] | None = None) -> list[Any]:
    """``[fn(x) for x in items]`` on a few threads (hashing and file I/O release the GIL).
    With ``size``, the largest items start first (so the threads finish together)."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    order = list(range(len(items)))
    if size is not None:
        order.sort(key=lambda i: -size(items[i]))
    with ThreadPoolExecutor(min(workers, len(items))) as ex:
        done = list(ex.map(lambda i: fn(items[i]), order))
    out: list[Any] = [None] * len(items)
    for i, r in zip(order, done):
        out[i] = r
    return out


# ---- sources ---------------------------------------------------------------------------------


@dataclass
class _Item:
    """One file to publish: its path in the version and where to read it."""

    rel: str
    fs: Any
    path: str
    size: int
    local: bool

    def open(self) -> IO[bytes]:
        return open(self.path, "rb", buffering=0) if self.local else self.fs.open(self.path, "rb")


def _is_local_fs(fs: Any) -> bool:
    protos = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protos or "local" in protos


def _is_registry_manifest(fs: Any, path: str) -> bool:
    try:
        return json.loads(fs.cat_file(path)).get("format") == MANIFEST_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def collect_source(source: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]]
                   ) -> list[_Item]:
    """The files to publish: a directory (walked; symlinks to files are followed) or a mapping
    {path in version: source file}. A top-level ``manifest.json`` that is a registry manifest
    (a pulled version being re-published) is skipped; any other one is refused (reserved name)."""
    items: list[_Item] = []
    if isinstance(source, Mapping):
        for rel, src in source.items():
            fs, p = fsspec.core.url_to_fs(os.fspath(src))
            local = _is_local_fs(fs)
            if local:
                p = os.path.abspath(p)
            if not fs.isfile(p):
                raise BadInputError(f"{src}: no such file (to publish as {rel!r})")
            items.append(_Item(rel, fs, p, int(fs.size(p)), local))
    else:
        fs, root = fsspec.core.url_to_fs(os.fspath(source))
        local = _is_local_fs(fs)
        if local:
            root = os.path.abspath(root)
        if not fs.isdir(root):
            raise BadInputError(f"{source}: not a directory; pass the directory to publish "
                                "(e.g. the --out of `tokenfoundry train`)")
        if local:
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames.sort()
                for fn in sorted(filenames):
                    full = os.path.join(dirpath, fn)
                    if not os.path.isfile(full):  # dangling symlink, socket, fifo ...
                        raise BadInputError(f"{full}: not a regular file; remove it before "
                                            "publishing")
                    rel = os.path.relpath(full, root).replace(os.sep, "/")
                    items.append(_Item(rel, fs, full, os.path.getsize(full), True))
        else:
            for p, info in sorted(fs.find(root, detail=True).items()):
                rel = posixpath.relpath(p, root)
                items.append(_Item(rel, fs, p, int(info.get("size") or 0), False))
    out = []
    for it in items:
        if it.rel == MANIFEST:
            if _is_registry_manifest(it.fs, it.path):
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


# ---- the registry ------------------------------------------------------------------------------


class Registry:
    """One registry root on any fsspec filesystem; see the module docstring for the layout."""

    def __init__(self, uri: str | os.PathLike[str] | None = None,
                 storage_options: dict[str, Any] | None = None):
        self.uri = resolve_registry_uri(uri)
        self.fs, root = fsspec.core.url_to_fs(self.uri, **(storage_options or {}))
        self.local = _is_local_fs(self.fs)
        if self.local:
            root = os.path.abspath(root)
        self.root = root.rstrip("/")
        if self.local:
            self.uri = self.root
        if not self.local and not self.fs.exists(self.root.split("/")[0]):
            raise BadInputError(f"registry {self.uri}: bucket {self.root.split('/')[0]!r} does "
                                "not exist or is not reachable; create it or fix --registry")
        # s3fs: one request per small read (its cat_file first HEADs for a concurrent read)
        # and per empty listing (its ls lists the parent too when a prefix is empty)
        self._s3 = (not self.local and hasattr(self.fs, "_lsdir") and hasattr(self.fs, "_call_s3")
                    and hasattr(self.fs, "split_path"))

    def __repr__(self) -> str:
        return f"Registry({self.uri!r})"

    # ---- paths -------------------------------------------------------------------------------

    def _p(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def version_path(self, name: str, version: int) -> str:
        return self._p(name, str(version))

    def full_uri(self, path: str) -> str:
        if self.local:
            return path
        proto = self.fs.protocol[0] if isinstance(self.fs.protocol, tuple) else self.fs.protocol
        return f"{proto}://{path}"

    def _ls(self, path: str) -> list[str]:
        """Base names under ``path`` (fresh, never from a listing cache); [] if absent."""
        if self.local:
            try:
                return sorted(os.listdir(path))
            except (FileNotFoundError, NotADirectoryError):
                return []
        self.fs.invalidate_cache(path)
        try:
            if self._s3:
                entries = fsspec.asyn.sync(self.fs.loop, self.fs._lsdir, path.rstrip("/"),
                                           refresh=True)
                return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries)
            return sorted(posixpath.basename(p.rstrip("/"))
                          for p in self.fs.ls(path, detail=False, refresh=True))
        except FileNotFoundError:
            return []

    def _exists(self, path: str) -> bool:
        if self.local:
            return os.path.exists(path)
        self.fs.invalidate_cache(posixpath.dirname(path))
        return self.fs.exists(path)

    def _read(self, path: str) -> bytes:
        if self.local:
            with open(path, "rb") as fh:
                return fh.read()
        if self._s3:
            return self.fs.cat_file(path, max_concurrency=1)  # one GET, no HEAD first
        return self.fs.cat_file(path)

    def _write(self, path: str, data: bytes) -> None:
        """Atomic replace (temp + rename locally; one PUT on object stores)."""
        if self._s3:
            self.fs.pipe_file(path, data)  # (atomic_write_bytes' makedirs HEADs the bucket)
            return
        atomic_write_bytes(self.fs, path, data)

    def _create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` holding ``data`` unless it exists; True if we created it."""
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # fails with EEXIST; the file appears complete
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        if os.environ.get(ENV_CLAIM, "").lower() != "verify":
            try:
                self.fs.pipe_file(path, data, mode="create")
                return True
            except FileExistsError:
                return False
            except (NotImplementedError, TypeError, ValueError):
                pass  # no conditional puts here: fall back to write + read-back
        return self._create_verified(path, data)

    def _create_verified(self, path: str, data: bytes, settle: float = 0.5) -> bool:
        """Claim by write-then-read-back for stores without ``If-None-Match`` (last writer wins;
        each contender reads after a settle delay and only the one whose bytes stayed wins)."""
        if self._exists(path):
            return False
        self.fs.pipe_file(path, data)
        time.sleep(settle)
        try:
            return self.fs.cat_file(path) == data
        except FileNotFoundError:
            return False

    # ---- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        return [n for n in self._ls(self.root) if not n.startswith(("_", "."))]

    def versions(self, name: str) -> list[int]:
        """Committed versions (those with a manifest), ascending."""
        check_name(name, "registry")
        base = self._p(name)
        if self.local:
            return sorted(int(v) for v in self._ls(base)
                          if v.isdigit() and os.path.isfile(posixpath.join(base, v, MANIFEST)))
        self.fs.invalidate_cache()
        found = self.fs.glob(posixpath.join(base, "*", MANIFEST))
        return sorted(int(v) for v in (posixpath.basename(posixpath.dirname(p)) for p in found)
                      if v.isdigit())

    def manifest_bytes(self, name: str, version: int) -> bytes:
        try:
            return self._read(posixpath.join(self.version_path(name, version), MANIFEST))
        except FileNotFoundError:
            known = self.versions(name)
            raise BadInputError(f"{name}@{version}: no such version in registry {self.uri} "
                                f"(versions: {', '.join(map(str, known)) or 'none'})") from None

    def manifest(self, name: str, version: int) -> VersionManifest:
        return _parse_manifest(self.manifest_bytes(name, version), f"{name}@{version}")

    def alias_events(self, name: str, alias: str) -> list[AliasEvent]:
        base = self._p(name, "_aliases", alias)
        out = []
        for fn in self._ls(base):
            if fn.endswith(".json") and fn[:-5].isdigit():
                out.append(AliasEvent.model_validate_json(self._read(posixpath.join(base, fn))))
        return sorted(out, key=lambda e: e.seq)

    def alias_version(self, name: str, alias: str) -> int | None:
        return self._alias_state(name, alias)[1]

    def aliases(self, name: str) -> dict[str, int]:
        out = {}
        for a in self._ls(self._p(name, "_aliases")):
            v = self.alias_version(name, a)
            if v is not None:
                out[a] = v
        return out

    def resolve(self, ref: str, check: bool = True) -> tuple[str, int]:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` -> (name, version), committed.

        ``check=False`` skips the existence check of an explicit version (for callers that read
        its manifest next, which fails the same way)."""
        name, sel = parse_ref(ref)
        if sel.isdigit():
            v = int(sel)
            if check and not self._exists(posixpath.join(self.version_path(name, v), MANIFEST)):
                known = self.versions(name)
                raise BadInputError(
                    f"{ref}: no such version in registry {self.uri} "
                    f"(versions of {name}: {', '.join(map(str, known)) or 'none'})")
            return name, v
        v = self.alias_version(name, sel)
        if v is None and sel == LATEST:
            vs = self.versions(name)
            v = vs[-1] if vs else None
        if v is None:
            if not self.versions(name):
                raise BadInputError(f"{ref}: registry {self.uri} has no tokenizer {name!r} "
                                    f"(names: {', '.join(self.names()) or 'none'})")
            raise BadInputError(f"{ref}: {name!r} has no alias {sel!r} (aliases: "
                                f"{', '.join(sorted(self.aliases(name))) or 'none'}); "
                                f"set it with `tokenfoundry registry promote {name}@N "
                                f"--alias {sel}`")
        return name, v

    def list(self) -> ListResult:
        out = []
        for name in self.names():
            vs = self.versions(name)
            if not vs:
                continue
            al = self.aliases(name)
            infos = []
            for v in vs:
                m = self.manifest(name, v)
                infos.append(VersionInfo(version=v, created_at=m.created_at, files=len(m.files),
                                         bytes=m.total_bytes,
                                         aliases=sorted(a for a, av in al.items() if av == v)))
            out.append(NameInfo(name=name, versions=infos, aliases=al))
        return ListResult(registry=self.uri, tokenizers=out)

    def show(self, ref: str) -> ShowResult:
        name, v = self.resolve(ref)
        m = json.loads(self.manifest_bytes(name, v))
        al = self.aliases(name)
        history = [e for a in sorted(al) for e in self.alias_events(name, a)]
        return ShowResult(ref=f"{name}@{v}", name=name, version=v,
                          uri=self.full_uri(self.version_path(name, v)),
                          aliases=sorted(a for a, av in al.items() if av == v),
                          alias_history=sorted(history, key=lambda e: (e.at, e.alias, e.seq)),
                          manifest=m)

    # ---- aliases ---------------------------------------------------------------------------

    def _alias_state(self, name: str, alias: str) -> tuple[list[int], int | None]:
        """The alias log's sequence numbers and the version of its last event."""
        base = self._p(name, "_aliases", alias)
        seqs = sorted(int(fn[:-5]) for fn in self._ls(base)
                      if fn.endswith(".json") and fn[:-5].isdigit())
        if not seqs:
            return seqs, None
        return seqs, int(json.loads(self._read(posixpath.join(base, f"{seqs[-1]:08d}.json")))
                         ["version"])

    def _move_alias(self, name: str, alias: str, version: int, by: str, note: str = "",
                    forward_only: bool = False,
                    hint: tuple[list[int], int | None] | None = None
                    ) -> tuple[int | None, bool]:
        """Append an alias event (exclusive create of the next seq); (previous, changed).

        ``forward_only`` (``latest``): never move to a lower version, judged against the alias'
        current value on every attempt, so concurrent publishers cannot move it backwards."""
        base = self._p(name, "_aliases", alias)
        for _ in range(1000):
            if hint is not None:  # read earlier (e.g. while files uploaded); the exclusive
                seqs, prev = hint  # create below fails if it went stale, and we re-read
                hint = None
            else:
                seqs, prev = self._alias_state(name, alias)
            if prev == version or (forward_only and prev is not None and prev > version):
                return prev, False
            seq = (seqs[-1] + 1) if seqs else 1
            ev = AliasEvent(alias=alias, seq=seq, version=version, previous=prev, at=utc_now(),
                            by=by, user=_user(), host=socket.gethostname(), note=note)
            if self._create_exclusive(posixpath.join(base, f"{seq:08d}.json"),
                                      ev.model_dump_json(indent=1).encode()):
                return prev, True
        raise CheckFailed(f"{name}: could not move alias {alias!r} (too much contention)")

    def promote(self, ref: str, alias: str, note: str = "") -> PromoteResult:
        """Point ``alias`` at the version ``ref`` resolves to; the move is logged."""
        check_alias(alias)
        if alias == LATEST:
            raise BadInputError("alias 'latest' is moved by publish only; promote to another "
                                "alias (e.g. production, staging)")
        name, v = self.resolve(ref)
        prev, changed = self._move_alias(name, alias, v, "promote", note)
        return PromoteResult(ref=f"{name}@{v}", name=name, version=v, alias=alias,
                             previous=prev, changed=changed)

    # ---- publishing ------------------------------------------------------------------------

    def _find_content(self, name: str, fingerprint: str) -> int | None:
        p = self._p(name, "_content", f"{fingerprint}.json")
        try:
            v = int(json.loads(self._read(p))["version"])
        except (FileNotFoundError, ValueError, KeyError):
            return None
        try:
            m = self.manifest(name, v)
        except BadInputError:
            return None
        return v if m.content_sha256 == fingerprint else None

    def _next_version(self, name: str) -> int:
        """1 + the highest claimed (or, locally, present) version. Every version has a claim
        (publish and import both claim), so object stores need one listing only."""
        claimed = [int(f[:-5]) for f in self._ls(self._p(name, "_claims"))
                   if f.endswith(".json") and f[:-5].isdigit()]
        present = [int(v) for v in self._ls(self._p(name)) if v.isdigit()] if self.local else []
        return max([0, *claimed, *present]) + 1

    def _claim(self, name: str, token: str, want: int | None = None) -> int:
        """Allocate a version number no other publisher can get (exclusive claim object)."""
        for _ in range(1000):
            v = want if want is not None else self._next_version(name)
            body = json.dumps({"version": v, "token": token, "claimed_at": utc_now(),
                               "claimed_ts": time.time(), "pid": os.getpid(),
                               "host": socket.gethostname(), "user": _user()}).encode()
            if self._create_exclusive(self._p(name, "_claims", f"{v}.json"), body):
                return v
            if want is not None:
                raise BadInputError(f"{name}@{want}: that version number is already taken in "
                                    f"registry {self.uri}; import with --as-new")
        raise CheckFailed(f"{name}: could not allocate a version (too much contention)")

    def _manifest_for(self, name: str, version: int, entries: list[FileEntry], lineage: dict,
                      metrics: dict, gates: list, token: str) -> bytes:
        lin = {"code_version": code_version(), "library_versions": library_versions(),
               **(lineage or {})}
        m = VersionManifest(
            name=name, version=version, created_at=utc_now(),
            content_sha256=content_sha256(entries), total_bytes=sum(e.size for e in entries),
            files=sorted(entries, key=lambda e: e.path), lineage=_jsonable(lin),
            metrics=_jsonable(metrics or {}), gates=_jsonable(list(gates or [])),
            publisher={"user": _user(), "host": socket.gethostname(), "token": token},
        )
        return (json.dumps(m.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n").encode()

    def publish(self, name: str, source: str | os.PathLike[str] | Mapping[str, Any], *,
                lineage: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                gates: list[dict[str, Any]] | None = None, aliases: Iterable[str] = (),
                progress: Progress = _no_progress) -> PublishResult:
        """Publish the files of ``source`` as the next version of ``name``.

        Identical files (same paths, sizes and sha256) as an existing version return that
        version (``reused``). ``latest`` moves to a new version; the other ``aliases`` are moved
        to the (new or reused) version and logged.
        """
        t0 = time.perf_counter()
        check_name(name, "registry")
        extra_aliases = [check_alias(a) for a in aliases if a != LATEST]
        items = collect_source(source)
        token = uuid.uuid4().hex
        total = sum(i.size for i in items)
        count = _Counter(total, f"publish {name}", progress)
        hint = None
        if self.local:
            v, entries, reused = self._publish_local(name, items, token, count, lineage,
                                                     metrics, gates)
        else:
            v, entries, reused, hint = self._publish_remote(name, items, token, count, lineage,
                                                            metrics, gates)
        if reused:
            cur = self.alias_version(name, LATEST)
        else:
            # the content record and the ``latest`` move are independent: both at once
            # (``latest`` only moves forward, judged against its value at the move); locally
            # the new version's directory entry is fsynced meanwhile too
            def record() -> None:
                if self.local:
                    _fsync_dir(self._p(name))
                self._write(self._p(name, "_content", f"{content_sha256(entries)}.json"),
                            json.dumps({"version": v}).encode())

            with ThreadPoolExecutor(1) as ex:
                fut = ex.submit(record)
                prev, changed = self._move_alias(name, LATEST, v, "publish", forward_only=True,
                                                 hint=hint)
                fut.result()
            cur = v if changed else prev
        moved = {LATEST: v} if cur == v else {}
        for a in extra_aliases:
            self._move_alias(name, a, v, "publish")
            moved[a] = v
        return PublishResult(ref=f"{name}@{v}", name=name, version=v,
                             uri=self.full_uri(self.version_path(name, v)), registry=self.uri,
                             reused=reused, files=len(entries),
                             bytes=sum(e.size for e in entries), aliases=moved,
                             seconds=round(time.perf_counter() - t0, 3))

    def _publish_local(self, name, items, token, count, lineage, metrics, gates):
        stage = self._p(STAGING, f"{name}.{token}")
        marker = stage + ".json"
        # a hint for gc only (it falls back to the directory's mtime): no fsync, no rename
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "wb") as fh:
            fh.write(json.dumps({"name": name, "token": token, "started_at": utc_now(),
                                 "started_ts": time.time(), "pid": os.getpid()}).encode())
        try:
            os.makedirs(stage)

            def put(it: _Item) -> FileEntry:
                dst = os.path.join(stage, *it.rel.split("/"))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with it.open() as src, open(dst, "wb", buffering=0) as out:
                    sha, n = copy_hash(src, out, count, it.size)
                return FileEntry(path=it.rel, size=n, sha256=sha)

            def put_all() -> list[FileEntry]:
                if not all(it.local for it in items):
                    return _parallel(put, items, size=lambda it: it.size)
                # local files: one engine over all of them (two files hashed at once per core)
                dsts = [os.path.join(stage, *it.rel.split("/")) for it in items]
                for d in {os.path.dirname(d) for d in dsts}:
                    os.makedirs(d, exist_ok=True)
                got = copy_files([(it.path, d, it.size) for it, d in zip(items, dsts)], count,
                                 _WORKERS)
                return [FileEntry(path=it.rel, size=n, sha256=sha)
                        for it, (sha, n) in zip(items, got)]

            # the version number is claimed while the files copy (its fsync'd exclusive create
            # costs ~4 ms); a reuse gives the claim back
            with ThreadPoolExecutor(1) as ex:
                claiming = ex.submit(self._claim, name, token)
                try:
                    entries = put_all()
                except BaseException:
                    try:
                        os.unlink(self._p(name, "_claims", f"{claiming.result()}.json"))
                    except Exception:  # noqa: BLE001, S110 - the copy's error is reported
                        pass
                    raise
                v = claiming.result()
            _pause_for_tests()
            existing = self._find_content(name, content_sha256(entries))
            if existing is not None:
                os.unlink(self._p(name, "_claims", f"{v}.json"))
                return existing, entries, True
            blob = self._manifest_for(name, v, entries, lineage, metrics, gates, token)
            with open(os.path.join(stage, MANIFEST), "wb") as fh:  # private until the rename
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.makedirs(self._p(name), exist_ok=True)
            os.rename(stage, self.version_path(name, v))  # the commit: one atomic rename
            # (its directory is fsynced by publish() while it records the content and latest)
            return v, entries, False
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            try:
                os.unlink(marker)
            except FileNotFoundError:
                pass

    def _same_shape_as_latest(self, name: str, items: list[_Item]) -> bool:
        """True if ``latest`` holds exactly these paths and sizes (a likely re-publish)."""
        v = self.alias_version(name, LATEST)
        if v is None:
            return False
        try:
            m = self.manifest(name, v)
        except (BadInputError, CheckFailed):
            return False
        return sorted((f.path, f.size) for f in m.files) == sorted((i.rel, i.size) for i in items)

    def _publish_remote(self, name, items, token, count, lineage, metrics, gates):
        """Object stores: claim a version, upload into its prefix, manifest last.

        A likely re-publish (same paths and sizes as ``latest``) or a remote source is hashed
        first, so a reuse uploads nothing; otherwise hashing runs while the upload runs.
        """
        local = [it for it in items if it.local]
        stats = {it.path: _stat_key(it.path) for it in local}

        def digest(it: _Item) -> FileEntry:
            with it.open() as fh:
                sha, n = sha256_stream(fh)
            return FileEntry(path=it.rel, size=n, sha256=sha)

        def digest_all() -> list[FileEntry]:
            if len(local) < len(items):
                return _parallel(digest, items, size=lambda it: it.size)
            # local files: two hashed at once per core (storage.fastcopy)
            got = sha256_files([it.path for it in items])
            return [FileEntry(path=it.rel, size=n, sha256=sha)
                    for it, (sha, n) in zip(items, got)]

        # request round trips dominate small versions: the version is claimed while the
        # re-publish check runs (a reuse gives it back), and the ``latest`` log is read while
        # the files upload (the move's exclusive create re-reads it if it went stale)
        pool = ThreadPoolExecutor(2)
        hashing: Any = None
        entries: list[FileEntry] = []
        claiming = None
        if len(local) == len(items):
            claiming = pool.submit(self._claim, name, token)
        try:
            if claiming is None or self._same_shape_as_latest(name, items):
                entries = digest_all()
                existing = self._find_content(name, content_sha256(entries))
                if existing is not None:
                    if claiming is not None:
                        self.fs.rm(self._p(name, "_claims", f"{claiming.result()}.json"))
                    return existing, entries, True, None
            else:
                hashing = pool.submit(digest_all)
            v = claiming.result() if claiming is not None else self._claim(name, token)
        except BaseException:
            pool.shutdown(wait=True)
            if claiming is not None and claiming.exception() is None:
                try:  # give the claimed number back
                    self.fs.rm(self._p(name, "_claims", f"{claiming.result()}.json"))
                except (OSError, FileNotFoundError):
                    pass
            raise
        prefix = self.version_path(name, v)
        claim = self._p(name, "_claims", f"{v}.json")
        alias_state = pool.submit(self._alias_state, name, LATEST)
        try:
            if local:
                self.fs.put([it.path for it in local], [posixpath.join(prefix, it.rel)
                                                         for it in local])
                count(sum(it.size for it in local))
            if hashing is not None:
                entries = hashing.result()
                # version 1: nothing was published under this name before our claim
                existing = self._find_content(name, content_sha256(entries)) if v > 1 else None
                if existing is not None:  # identical files: drop the upload and our claim
                    self.fs.rm(prefix, recursive=True)
                    self.fs.rm(claim)
                    return existing, entries, True, None
            for it in items:
                if not it.local:
                    with it.open() as src, self.fs.open(posixpath.join(prefix, it.rel), "wb") as d:
                        sha, _ = copy_hash(src, d, count)
                    if sha != next(e.sha256 for e in entries if e.path == it.rel):
                        raise CheckFailed(f"{it.path}: changed while publishing; publish again")
            for it in local:
                if _stat_key(it.path) != stats[it.path]:
                    raise CheckFailed(f"{it.path}: changed while publishing; publish again")
            self.fs.invalidate_cache(prefix)
            sizes = {posixpath.relpath(p, prefix): int(i.get("size") or 0)
                     for p, i in self.fs.find(prefix, detail=True).items()}
            for e in entries:
                if sizes.get(e.path) != e.size:
                    raise CheckFailed(f"{name}@{v}: {e.path}: uploaded size {sizes.get(e.path)} "
                                      f"!= {e.size}; publish again")
            _pause_for_tests()
            blob = self._manifest_for(name, v, entries, lineage, metrics, gates, token)
            if not self._create_exclusive(posixpath.join(prefix, MANIFEST), blob):
                raise CheckFailed(f"{name}@{v}: a manifest appeared under our claimed version; "
                                  "another publisher ignored the claim protocol")
        except BaseException:
            try:
                self.fs.rm(prefix, recursive=True)
            except (OSError, FileNotFoundError):
                pass
            raise
        finally:
            pool.shutdown(wait=True)
        try:
            hint = alias_state.result()
        except Exception:  # noqa: BLE001 - only a hint: the move reads the log itself
            hint = None
        return v, entries, False, hint

    # ---- verify / pull ---------------------------------------------------------------------

    def _checked_manifest(self, name: str, v: int) -> tuple[bytes, VersionManifest]:
        raw = self.manifest_bytes(name, v)
        m = _parse_manifest(raw, f"{name}@{v}")
        _check_manifest_paths(m, f"{name}@{v}")
        return raw, m

    def verify(self, ref: str, progress: Progress = _no_progress) -> VerifyResult:
        """Re-hash every file of a version; problems name the file (also unexpected files)."""
        name, v = self.resolve(ref, check=False)
        raw, m = self._checked_manifest(name, v)
        base = self.version_path(name, v)
        count = _Counter(m.total_bytes, f"verify {name}@{v}", progress)

        def judge(e: FileEntry, got: tuple[str, int] | None) -> VerifyProblem | None:
            if got is None:
                return VerifyProblem(path=e.path, problem="missing")
            sha, n = got
            if n != e.size:
                return VerifyProblem(path=e.path, problem=f"size {n} != {e.size} in manifest")
            if sha != e.sha256:
                return VerifyProblem(path=e.path, problem=f"sha256 {sha} != {e.sha256} in "
                                     "manifest")
            return None

        def check(e: FileEntry) -> VerifyProblem | None:
            try:
                with self.fs.open(posixpath.join(base, e.path), "rb") as fh:
                    got = sha256_stream(fh)
            except FileNotFoundError:
                return judge(e, None)
            count(got[1])
            return judge(e, got)

        if self.local:  # every present file in one engine (two hashed at once per core)
            paths = {e.path: os.path.join(base, *e.path.split("/")) for e in m.files}
            present = [e for e in m.files if os.path.isfile(paths[e.path])]
            try:
                got = dict(zip((e.path for e in present),
                               copy_files([(paths[e.path], None, e.size) for e in present],
                                          count, _WORKERS)))
                found = [judge(e, got.get(e.path)) for e in m.files]
            except FileNotFoundError:  # removed while verifying: file by file
                found = _parallel(check, m.files, size=lambda e: e.size)
        else:
            found = _parallel(check, m.files, size=lambda e: e.size)
        problems = [p for p in found if p is not None]
        listed = {e.path for e in m.files} | {MANIFEST}
        for rel in self._walk(base):
            if rel not in listed:
                problems.append(VerifyProblem(path=rel, problem="not listed in manifest.json"))
        return VerifyResult(ref=f"{name}@{v}", name=name, version=v, ok=not problems,
                            files=len(m.files), bytes=m.total_bytes, problems=problems)

    def _walk(self, base: str) -> list[str]:
        if self.local:
            out = []
            for dp, _, fns in os.walk(base):
                out += [os.path.relpath(os.path.join(dp, f), base).replace(os.sep, "/")
                        for f in fns]
            return sorted(out)
        self.fs.invalidate_cache(base)
        return sorted(posixpath.relpath(p, base) for p in self.fs.find(base))

    def pull(self, ref: str, to: str | os.PathLike[str] | None = None, *, cache: bool = True,
             force: bool = False, progress: Progress = _no_progress) -> PullResult:
        """Copy a verified version into ``to`` (default: the local cache, returned as is).

        Everything lands in a temporary directory beside the target first and is renamed into
        place only when every size and sha256 matched; a mismatch raises CheckFailed naming the
        file and leaves nothing behind.
        """
        t0 = time.perf_counter()
        name, v = self.resolve(ref, check=False)
        raw, m = self._checked_manifest(name, v)
        key = hashlib.sha256(raw).hexdigest()
        cdir = cache_root() / "versions" / key
        target = Path(to).absolute() if to is not None else cdir
        label = f"{name}@{v}"

        def result(path: Path, cached: bool) -> PullResult:
            return PullResult(ref=label, name=name, version=v, path=str(path), files=len(m.files),
                              bytes=m.total_bytes, cached=cached,
                              seconds=round(time.perf_counter() - t0, 3))

        if target.exists() and not target.is_dir():
            raise BadInputError(f"{target}: exists and is not a directory; choose another --to")
        if target.is_dir() and any(target.iterdir()):
            if _dir_matches(target, raw, m):
                return result(target, target == cdir)
            if target != cdir and not force:
                raise BadInputError(f"{target}: directory exists and holds other files; choose "
                                    "an empty or new --to, or pass --force to replace it")
        use_cache = cache and target != cdir and _dir_matches(cdir, raw, m)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.pull-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        count = _Counter(m.total_bytes, f"pull {label}", progress)
        try:
            dsts = {e.path: _inside(tmp, e.path, label) for e in m.files}
            for d in dsts.values():
                d.parent.mkdir(parents=True, exist_ok=True)
            if use_cache or self.local:
                src_base = cdir if use_cache else Path(self.version_path(name, v))

                srcs = [src_base.joinpath(*e.path.split("/")) for e in m.files]
                for e, p in zip(m.files, srcs):
                    if not p.is_file():
                        raise CheckFailed(f"{label}: {e.path}: missing from the registry")
                try:
                    got = copy_files([(p, dsts[e.path], e.size) for e, p in zip(m.files, srcs)],
                                     count, _WORKERS)
                except FileNotFoundError as exc:  # removed since the check above
                    rel = next((e.path for e, p in zip(m.files, srcs) if str(p) == exc.filename),
                               exc.filename)
                    raise CheckFailed(f"{label}: {rel}: missing from the registry") from None
            elif self._s3:
                got = self._s3_fetch_all(self.version_path(name, v), m.files, dsts, label,
                                         count)
            else:
                base = self.version_path(name, v)

                def download(e: FileEntry) -> tuple[str, int]:
                    # each file is hashed as soon as it landed, while others still download
                    try:
                        self.fs.get_file(posixpath.join(base, e.path), str(dsts[e.path]))
                    except FileNotFoundError:
                        raise CheckFailed(f"{label}: {e.path}: missing from the registry") \
                            from None
                    got = sha256_file(dsts[e.path])
                    count(got[1])
                    return got

                got = _parallel(download, m.files, workers=4)
            for e, (sha, n) in zip(m.files, got):
                if n != e.size:
                    raise CheckFailed(f"{label}: {e.path}: size {n} != {e.size} in manifest "
                                      "(corrupted or truncated); nothing was written")
                if sha != e.sha256:
                    raise CheckFailed(f"{label}: {e.path}: sha256 mismatch (got {sha}, manifest "
                                      f"says {e.sha256}); nothing was written")
            (tmp / MANIFEST).write_bytes(raw)
            _swap_into_place(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if cache and target != cdir and not use_cache:
            _fill_cache(target, cdir, m)
        return result(target, use_cache)

    def _s3_fetch_all(self, base: str, files: list[FileEntry], dsts: dict[str, Path],
                      label: str, count: Callable[[int], None]) -> list[tuple[str, int]]:
        """Download every file with one streaming GET each, all at once (as ``fs.get`` does),
        hashing each chunk as it arrives (on two worker threads; hashlib releases the GIL) so
        no second read of the data and no hashing tail after the last byte."""
        import asyncio

        fs = self.fs
        pool = ThreadPoolExecutor(_WORKERS)

        def write(h: Any, fd: int, parts: list[bytes]) -> None:
            for p in parts:  # ~256 KiB each: hashed without joining them
                h.update(p)
            _writev_all(fd, parts)

        async def one(e: FileEntry) -> tuple[str, int]:
            bucket, key, vers = fs.split_path(posixpath.join(base, e.path))
            kw = dict(getattr(fs, "req_kw", {}) or {})
            if vers:
                kw["VersionId"] = vers
            try:
                resp = await fs._call_s3("get_object", Bucket=bucket, Key=key, **kw)
            except FileNotFoundError:
                raise CheckFailed(f"{label}: {e.path}: missing from the registry") from None
            body = resp["Body"]
            h, n = hashlib.sha256(), 0
            loop = asyncio.get_running_loop()
            pending: Any = None
            try:
                with open(dsts[e.path], "wb", buffering=0) as out:  # noqa: ASYNC230 (a local file)
                    preallocate(out.fileno(), e.size)
                    parts: list[bytes] = []
                    held = 0
                    try:
                        while True:  # the body arrives in pieces of ~64 KiB: hand on ~1 MiB
                            chunk = await body.read(_CHUNK)
                            if chunk:
                                parts.append(chunk)
                                held += len(chunk)
                                n += len(chunk)
                                if n > e.size:
                                    raise CheckFailed(
                                        f"{label}: {e.path}: size > {e.size} in manifest "
                                        "(corrupted or tampered); nothing was written")
                            if held >= _CHUNK or len(parts) >= 256 or (not chunk and parts):
                                if pending is not None:
                                    await pending  # one file's chunks are hashed in order
                                pending = loop.run_in_executor(pool, write, h, out.fileno(),
                                                               parts)
                                count(held)
                                parts, held = [], 0
                            if not chunk:
                                break
                        if pending is not None:
                            await pending
                    finally:
                        if pending is not None and not pending.done():
                            await asyncio.wait([pending])  # never close the fd under a write
                    if n < e.size:
                        os.ftruncate(out.fileno(), n)
            finally:
                body.close()
            return h.hexdigest(), n

        async def all_files() -> list[tuple[str, int]]:
            got = await asyncio.gather(*(one(e) for e in files), return_exceptions=True)
            for g in got:  # every download has ended (none still writing) before we raise
                if isinstance(g, BaseException):
                    raise g
            return list(got)

        try:
            return fsspec.asyn.sync(fs.loop, all_files)
        finally:
            pool.shutdown(wait=True)

    # ---- garbage collection ----------------------------------------------------------------

    def gc(self, grace_seconds: float = DEFAULT_GRACE_SECONDS, force: bool = False) -> GcResult:
        """Remove staging left by crashed publishes: older than ``grace_seconds`` (all with
        ``force``; use it only when no publish is running)."""
        now = time.time()
        res = GcResult(registry=self.uri)

        def decide(path: str, kind: str, started: float | None, size: int,
                   remove: Callable[[], None]) -> None:
            age = max(0.0, now - started) if started else float("inf")
            entry = GcEntry(path=self.full_uri(path), kind=kind,
                            age_seconds=round(age, 1) if age != float("inf") else -1.0,
                            bytes=size)
            if force or age > grace_seconds:
                remove()
                res.removed.append(entry)
                res.bytes_freed += size
            else:
                res.kept.append(entry)

        if self.local:
            sroot = self._p(STAGING)
            for fn in self._ls(sroot):
                p = os.path.join(sroot, fn)
                if not os.path.lexists(p):
                    continue  # a marker removed together with its directory just now
                if fn.endswith(".json") or ".tmp-" in fn:
                    if os.path.isdir(p[:-5]) and fn.endswith(".json"):
                        continue  # removed together with its directory
                    decide(p, "staging", os.path.getmtime(p), os.path.getsize(p),
                           lambda p=p: os.unlink(p))
                    continue
                started = None
                try:
                    started = json.loads(self._read(p + ".json"))["started_ts"]
                except (OSError, ValueError, KeyError):
                    started = os.path.getmtime(p)

                def rm(p: str = p) -> None:
                    shutil.rmtree(p, ignore_errors=True)
                    if os.path.exists(p + ".json"):
                        os.unlink(p + ".json")

                decide(p, "staging", started, _du_local(p), rm)
        for name in self.names():
            base = self._p(name)
            for v in self._ls(base):
                if not v.isdigit() or self._exists(posixpath.join(base, v, MANIFEST)):
                    continue
                prefix = posixpath.join(base, v)
                try:
                    started = json.loads(self._read(self._p(name, "_claims", f"{v}.json"))
                                         )["claimed_ts"]
                except (OSError, ValueError, KeyError):
                    started = None
                size = _du_local(prefix) if self.local else sum(
                    int(i.get("size") or 0) for i in self.fs.find(prefix, detail=True).values())
                decide(prefix, "uncommitted-version", started, size,
                       lambda prefix=prefix: (shutil.rmtree(prefix, ignore_errors=True)
                                              if self.local else
                                              self.fs.rm(prefix, recursive=True)))
        return res

    # ---- bundles ---------------------------------------------------------------------------

    def export_bundle(self, ref: str, to: str | os.PathLike[str],
                      progress: Progress = _no_progress) -> ExportResult:
        """Write ``NAME@VERSION`` as a tar.gz: ``<name>-<version>/manifest.json`` + its files,
        every file verified while it is written (a tampered version is not exported)."""
        name, v = self.resolve(ref, check=False)
        raw, m = self._checked_manifest(name, v)
        label = f"{name}@{v}"
        out = Path(to).absolute()
        if not (out.name.endswith(".tar.gz") or out.name.endswith(".tgz")):
            raise BadInputError(f"{out}: bundles are .tar.gz files; name it e.g. "
                                f"{name}-{v}.tar.gz")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
        top = f"{name}-{v}"
        mtime = _epoch(m.created_at)
        count = _Counter(m.total_bytes, f"export {label}", progress)
        base = self.version_path(name, v)
        try:
            with open(tmp, "wb") as raw_fh, \
                    gzip.GzipFile(fileobj=raw_fh, mode="wb", compresslevel=6, mtime=0) as gz, \
                    tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info = _tarinfo(f"{top}/{MANIFEST}", len(raw), mtime)
                tar.addfile(info, io.BytesIO(raw))
                for e in m.files:
                    p = posixpath.join(base, e.path)
                    reader = _HashingReader(open(p, "rb") if self.local else self.fs.open(p, "rb"),
                                            count)
                    with reader:
                        try:
                            tar.addfile(_tarinfo(f"{top}/{e.path}", e.size, mtime), reader)
                        except OSError as err:  # shorter than the manifest says
                            raise CheckFailed(f"{label}: {e.path}: {err}; run `tokenfoundry "
                                              f"registry verify {label}`") from None
                        extra = reader.fh.read(1)
                    if extra or reader.n != e.size or reader.h.hexdigest() != e.sha256:
                        raise CheckFailed(f"{label}: {e.path}: does not match its manifest "
                                          "entry (size or sha256); not exported")
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        sha, size = sha256_file(out)
        return ExportResult(ref=label, name=name, version=v, path=str(out), files=len(m.files),
                            bytes=size, sha256=sha)

    def import_bundle(self, path: str | os.PathLike[str], *, as_new: bool = False,
                      progress: Progress = _no_progress) -> ImportResult:
        """Import a bundle (tar.gz or zip). The whole bundle is checked first - member names,
        member types, the manifest and every checksum - and refused naming the member on any
        problem; only then is the version written (keeping its number unless taken)."""
        bundle = read_bundle(path)  # raises before anything is written
        m, raw = bundle.manifest, bundle.manifest_raw
        name = m.name
        fp = m.content_sha256
        existing = self._find_content(name, fp)
        if existing is not None:
            return ImportResult(ref=f"{name}@{existing}", name=name, version=existing,
                                registry=self.uri, reused=True, files=len(m.files),
                                bytes=m.total_bytes, bundle=str(path))
        token = uuid.uuid4().hex
        taken = self._exists(posixpath.join(self.version_path(name, m.version), MANIFEST)) or \
            self._exists(self._p(name, "_claims", f"{m.version}.json"))
        if taken and not as_new:
            raise BadInputError(f"{path}: {name}@{m.version} already exists in {self.uri} with "
                                "different files; pass --as-new to import it as the next "
                                "version")
        v = self._claim(name, token, None if taken else m.version)
        if v != m.version:
            d = json.loads(raw)
            d["version"] = v
            d["imported_from"] = {"version": m.version,
                                  "manifest_sha256": hashlib.sha256(raw).hexdigest()}
            raw = (json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode()
        count = _Counter(m.total_bytes, f"import {name}@{v}", progress)
        if self.local:
            stage = self._p(STAGING, f"{name}.{token}")
            os.makedirs(stage)
            try:
                for e, fh in bundle.open_members():
                    dst = os.path.join(stage, *e.path.split("/"))
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    with fh, open(dst, "wb") as out:
                        sha, n = copy_hash(fh, out, count)
                    if sha != e.sha256 or n != e.size:
                        raise CheckFailed(f"{path}: member {e.path}: changed while importing")
                self._write(os.path.join(stage, MANIFEST), raw)
                os.makedirs(self._p(name), exist_ok=True)
                os.rename(stage, self.version_path(name, v))
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        else:
            prefix = self.version_path(name, v)
            try:
                for e, fh in bundle.open_members():
                    with fh, self.fs.open(posixpath.join(prefix, e.path), "wb") as out:
                        sha, n = copy_hash(fh, out, count)
                    if sha != e.sha256 or n != e.size:
                        raise CheckFailed(f"{path}: member {e.path}: changed while importing")
                if not self._create_exclusive(posixpath.join(prefix, MANIFEST), raw):
                    raise CheckFailed(f"{name}@{v}: a manifest appeared under our claim")
            except BaseException:
                try:
                    self.fs.rm(prefix, recursive=True)
                except (OSError, FileNotFoundError):
                    pass
                raise
        self._write(self._p(name, "_content", f"{fp}.json"), json.dumps({"version": v}).encode())
        cur = self.alias_version(name, LATEST)
        if cur is None or cur < v:
            self._move_alias(name, LATEST, v, "import", note=f"bundle {Path(path).name}",
                             forward_only=True)
        return ImportResult(ref=f"{name}@{v}", name=name, version=v, registry=self.uri,
                            reused=False, files=len(m.files), bytes=m.total_bytes,
                            bundle=str(path))


# ---- bundles: reading and checking ---------------------------------------------------------------


@dataclass
class Bundle:
    """A checked bundle: every member name, type and checksum has been verified."""

    path: str
    kind: str  # "tar" | "zip"
    top: str
    manifest: VersionManifest
    manifest_raw: bytes

    def open_members(self) -> Iterator[tuple[FileEntry, IO[bytes]]]:
        """(entry, readable) in manifest order (re-verified by the writer while copying)."""
        by_path = {e.path: e for e in self.manifest.files}
        if self.kind == "zip":
            with zipfile.ZipFile(self.path) as zf:
                for e in self.manifest.files:
                    yield e, zf.open(self.top + e.path)
        else:
            with tarfile.open(self.path, mode="r:*") as tf:
                for mem in tf:
                    rel = mem.name[len(self.top):]
                    if mem.isfile() and rel in by_path:
                        yield by_path[rel], tf.extractfile(mem)


def _member_problem(name: str, kind: str) -> str | None:
    if "\\" in name:
        return "backslash in member name (Windows path separators are refused)"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute member name"
    if ".." in name.split("/"):
        return "'..' in member name (climbs out of the target)"
    if kind != "file" and kind != "dir":
        return f"{kind} members are refused (only regular files)"
    return None


def read_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Open and fully check a bundle without writing anything; CheckFailed names the member."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such bundle file; pass a .tar.gz or .zip made by "
                            "`tokenfoundry registry export`")
    members: list[tuple[str, str, int]] = []  # (name, kind, size)
    if zipfile.is_zipfile(p):
        kind = "zip"
        with zipfile.ZipFile(p) as zf:
            for zi in zf.infolist():
                mode = (zi.external_attr >> 16) & 0xFFFF
                fmt = stat.S_IFMT(mode)
                if zi.is_dir():
                    mk = "dir"
                elif fmt in (0, stat.S_IFREG):
                    mk = "file"
                elif fmt == stat.S_IFLNK:
                    mk = "symlink"
                else:
                    mk = "special file"
                members.append((zi.filename, mk, zi.file_size))
    else:
        kind = "tar"
        try:
            with tarfile.open(p, mode="r:*") as tf:
                for ti in tf:
                    mk = ("file" if ti.isreg() else "dir" if ti.isdir() else
                          "symlink" if ti.issym() else "hard link" if ti.islnk() else
                          "device file" if (ti.ischr() or ti.isblk()) else
                          "fifo" if ti.isfifo() else "special file")
                    members.append((ti.name, mk, ti.size))
        except (tarfile.TarError, EOFError, OSError) as err:
            raise BadInputError(f"{p}: not a readable tar.gz or zip bundle: {err}") from None
    for name, mk, _ in members:
        why = _member_problem(name, mk)
        if why:
            raise CheckFailed(f"{p}: bundle refused, member {name!r}: {why}; nothing was written")
    files = {n.rstrip("/"): size for n, mk, size in members if mk == "file"}
    seen: set[str] = set()
    for n, mk, _ in members:
        if mk == "file":
            if n in seen:
                raise CheckFailed(f"{p}: bundle refused, member {n!r} appears twice")
            seen.add(n)
    if MANIFEST in files:
        top = ""
    else:
        tops = {n.split("/", 1)[0] for n in files}
        top = (next(iter(tops)) + "/") if len(tops) == 1 else None
        if top is None or top + MANIFEST not in files:
            raise CheckFailed(f"{p}: bundle refused: no manifest.json at its top level")
    raw = _read_member(p, kind, top + MANIFEST)
    m = _parse_manifest(raw, f"{p}:{top}{MANIFEST}")
    for e in m.files:
        why = path_problem(e.path)
        if why or e.path == MANIFEST:
            raise CheckFailed(f"{p}: bundle refused, manifest entry {e.path!r}: "
                              f"{why or 'reserved name'}")
        if top + e.path not in files:
            raise CheckFailed(f"{p}: bundle refused, member {top + e.path!r} listed in the "
                              "manifest is missing")
    listed = {top + e.path for e in m.files} | {top + MANIFEST}
    for n in files:
        if n not in listed:
            raise CheckFailed(f"{p}: bundle refused, member {n!r} is not listed in its "
                              "manifest.json")
    want = {top + e.path: e for e in m.files}
    b = Bundle(str(p), kind, top, m, raw)
    for e, fh in b.open_members():
        with fh:
            sha, n = sha256_stream(fh)
        if n != e.size or sha != e.sha256:
            raise CheckFailed(f"{p}: bundle refused, member {top + e.path!r}: "
                              f"{'size' if n != e.size else 'sha256'} does not match its "
                              "manifest entry; nothing was written")
        want.pop(top + e.path, None)
    if want:
        raise CheckFailed(f"{p}: bundle refused, member {next(iter(want))!r} unreadable")
    return b


def _read_member(p: Path, kind: str, name: str, limit: int = 64 << 20) -> bytes:
    if kind == "zip":
        with zipfile.ZipFile(p) as zf, zf.open(name) as fh:
            return fh.read(limit)
    with tarfile.open(p, mode="r:*") as tf:
        fh = tf.extractfile(tf.getmember(name))
        assert fh is not None
        return fh.read(limit)


# ---- module-level consumer API -------------------------------------------------------------


def pull(ref: str, to: str | os.PathLike[str] | None = None,
         registry: str | Registry | None = None) -> Path:
    """A verified local directory of ``ref`` (``NAME``, ``NAME@VERSION``, ``NAME@ALIAS``).

    ``to=None`` returns the cached copy (re-verified on every call). The directory holds
    ``manifest.json`` and the version's files; when it holds an HF tokenizer directory,
    ``transformers.AutoTokenizer.from_pretrained(path)`` loads it.
    """
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    return Path(reg.pull(ref, to).path)


def load_tokenizer(ref: str, registry: str | Registry | None = None):
    """A ``tokenizers.Tokenizer`` for ``ref`` (from its ``tokenizer.json``), e.g.
    ``load_tokenizer("legal-bpe@production")``. A sentencepiece-only version returns a
    ``sentencepiece.SentencePieceProcessor``."""
    d = pull(ref, None, registry)
    tj = d / "tokenizer.json"
    if tj.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(tj))
    models = sorted(d.glob("*.model"))
    if models:
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_file=str(models[0]))
    raise BadInputError(f"{ref}: the version holds no tokenizer.json and no sentencepiece "
                        f".model; use pull() and load its files yourself")


# ---- small helpers -------------------------------------------------------------------------------


def _parse_manifest(raw: bytes, where: str) -> VersionManifest:
    try:
        m = VersionManifest.model_validate_json(raw)
    except ValueError as err:
        raise CheckFailed(f"{where}: manifest.json is not a valid registry manifest: "
                          f"{str(err).splitlines()[0]}") from None
    if m.format != MANIFEST_FORMAT:
        raise CheckFailed(f"{where}: manifest.json has format {m.format!r}, expected "
                          f"{MANIFEST_FORMAT!r}")
    return m


def _check_manifest_paths(m: VersionManifest, where: str) -> None:
    seen: set[str] = set()
    for e in m.files:
        why = path_problem(e.path)
        if why is None and e.path == MANIFEST:
            why = "reserved name"
        if why is None and e.path in seen:
            why = "listed twice"
        if why:
            raise CheckFailed(f"{where}: manifest entry {e.path!r} refused: {why}")
        seen.add(e.path)


def _inside(base: Path, rel: str, where: str) -> Path:
    """``base/rel`` if it resolves inside ``base``; else CheckFailed naming ``rel``."""
    dst = base.joinpath(*rel.split("/"))
    root = os.path.realpath(base)
    if os.path.commonpath([root, os.path.realpath(dst)]) != root:
        raise CheckFailed(f"{where}: manifest entry {rel!r} resolves outside the target; refused")
    return dst


def _dir_matches(d: Path, raw: bytes, m: VersionManifest) -> bool:
    """``d`` holds exactly this manifest and files whose sizes and sha256 match it."""
    try:
        if (d / MANIFEST).read_bytes() != raw:
            return False
        for e in m.files:
            p = d.joinpath(*e.path.split("/"))
            if p.is_symlink() or not p.is_file() or p.stat().st_size != e.size:
                return False
        got = sha256_files([d.joinpath(*e.path.split("/")) for e in m.files])
        return all(sha == e.sha256 for (sha, _), e in zip(got, m.files))
    except OSError:
        return False


def _swap_into_place(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fill_cache(src: Path, cdir: Path, m: VersionManifest) -> None:
    """Add a verified pulled directory to the cache (hard links when possible; entries are
    re-verified on every use, so a later edit of the pulled copy cannot leak through)."""
    tmp = cdir.parent / f".{cdir.name}.fill-{uuid.uuid4().hex[:12]}"
    try:
        cdir.parent.mkdir(parents=True, exist_ok=True)
        for rel in [MANIFEST, *(e.path for e in m.files)]:
            s = src.joinpath(*rel.split("/"))
            d = tmp.joinpath(*rel.split("/"))
            d.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(s, d)
            except OSError:
                shutil.copyfile(s, d)
        if cdir.exists():
            shutil.rmtree(cdir, ignore_errors=True)
        os.rename(tmp, cdir)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # the cache is an optimisation only


class _HashingReader:
    def __init__(self, fh: IO[bytes], count: Callable[[int], None]):
        self.fh, self.h, self.n, self.count = fh, hashlib.sha256(), 0, count

    def read(self, size: int = -1) -> bytes:
        b = self.fh.read(size)
        self.h.update(b)
        self.n += len(b)
        self.count(len(b))
        return b

    def __enter__(self) -> _HashingReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.fh.close()


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.type = size, int(mtime), 0o644, tarfile.REGTYPE
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def _epoch(iso: str) -> float:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def _stat_key(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _du_local(path: str) -> int:
    total = 0
    for dp, _, fns in os.walk(path):
        for f in fns:
            try:
                total += os.path.getsize(os.path.join(dp, f))
            except OSError:
                pass
    return total


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _pause_for_tests() -> None:
    """``TOKENFOUNDRY_REGISTRY_PAUSE_AFTER_STAGING=S`` sleeps S seconds; ``=@T`` sleeps until the
    epoch time T (two test processes then race for a version number at the same instant)."""
    s = os.environ.get(ENV_PAUSE)
    if s:
        time.sleep(max(0.0, float(s[1:]) - time.time()) if s.startswith("@") else float(s))


__all__ = [
    "BUNDLE_FORMAT", "Bundle", "Registry", "cache_root", "check_alias", "collect_source",
    "content_sha256", "load_tokenizer", "parse_ref", "path_problem", "pull", "read_bundle",
    "resolve_registry_uri",
]
