"""The registry's store: the only code that differs between a local directory and an object store.

Every other module speaks in paths relative to the registry root and calls ``read``, ``write``
(atomic replace), ``create`` (exclusive create: True only for the one caller that made it),
``ls``, ``files``, ``sha256``, ``get`` and ``remove``, plus a ``Staging`` per publish:

- local: files are copied into ``_staging/<name>.<token>/`` and hashed there; the commit writes
  the manifest into that directory and renames it onto ``<name>/<version>`` (``rename(2)`` is
  atomic and fails if the version exists). Exclusive create is ``link(2)`` of a complete temp
  file. A path that resolves through a symlink is refused, so a link planted in a version
  never makes a pull read outside the registry.
- object store (public fsspec only): files are hashed where they are, uploaded into
  ``<name>/<version>/`` at the commit, and the manifest - the commit point - is created with a
  conditional put (``If-None-Match: *``). Stores without conditional puts fall back to
  write-then-read-back (``TOKENFOUNDRY_REGISTRY_CLAIM=verify`` forces it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import fsspec

from tokenfoundry.schemas.errors import BadInputError, CheckFailed
from tokenfoundry.schemas.registry import FileEntry
from tokenfoundry.storage.provenance import utc_now
from tokenfoundry.storage.registry.manifest import parallel, sha256_file, sha256_stream
from tokenfoundry.storage.registry.refs import MANIFEST

STAGING = "_staging"
ENV_CLAIM = "TOKENFOUNDRY_REGISTRY_CLAIM"
#: Test hook: a publisher sleeps this many seconds (or until the epoch time ``@T``) with its
#: files staged (local) or uploaded (object store), right before its commit.
ENV_PAUSE = "TOKENFOUNDRY_REGISTRY_PAUSE_AFTER_STAGING"
Progress = Callable[[float, "float | None", str], None]


def is_local_fs(fs: Any) -> bool:
    protos = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protos or "local" in protos


@dataclass
class Item:
    """One file to store: its path in the version and where to read it."""

    rel: str
    fs: Any
    path: str
    size: int
    local: bool
    private: bool = False  # a temporary copy of our own: may be hard-linked into a stage

    def open(self) -> IO[bytes]:
        return open(self.path, "rb") if self.local else self.fs.open(self.path, "rb")

    def stat_key(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_size, st.st_mtime_ns, st.st_ino


# ---- the disk ----------------------------------------------------------------------------------


def need_space(directory: str | os.PathLike[str], needed: int, where: str) -> None:
    """CheckFailed naming ``where`` and the space needed if the disk under ``directory`` has
    less than ``needed`` bytes free (checked before anything is written)."""
    d = Path(directory)
    while not d.exists() and d != d.parent:
        d = d.parent
    free = shutil.disk_usage(d).free
    if free < needed:
        raise CheckFailed(f"{where}: not enough disk space at {d}: needs {_mb(needed)}, "
                          f"{_mb(free)} free; free some space or choose another location")


@contextlib.contextmanager
def disk_errors(where: str, needed: int) -> Iterator[None]:
    """A full disk (ENOSPC/EDQUOT) becomes CheckFailed naming ``where`` and the space needed."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckFailed(f"{where}: no space left on device ({err.filename or 'disk'}): "
                              f"needs {_mb(needed)}; free some space and retry "
                              "(temporary files were removed)") from None
        raise


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# ---- stores ------------------------------------------------------------------------------------


class Store:
    """A registry root on one fsspec filesystem (see the module docstring)."""

    local = False

    def __init__(self, uri: str, fs: Any, root: str):
        self.uri, self.fs, self.root = uri, fs, root.rstrip("/")

    @staticmethod
    def open(uri: str, storage_options: dict[str, Any] | None = None) -> Store:
        fs, root = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        if is_local_fs(fs):
            root = os.path.abspath(root)
            return LocalStore(root, fs, root)
        store = ObjectStore(uri, fs, root)
        bucket = store.root.split("/")[0]
        if not fs.exists(bucket):
            raise BadInputError(f"registry {uri}: bucket {bucket!r} does not exist or is not "
                                "reachable; create it or fix --registry")
        return store

    def p(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def full_uri(self, rel: str) -> str:
        return self.p(rel)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalStore(Store):
    local = True

    def read(self, rel: str) -> bytes:
        with open(self.p(rel), "rb") as fh:
            return fh.read()

    def write(self, rel: str, data: bytes) -> None:
        path = self.p(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = self._complete_temp(path, data)
        os.replace(tmp, path)

    def create(self, rel: str, data: bytes) -> bool:
        path = self.p(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = self._complete_temp(path, data)
        try:
            os.link(tmp, path)  # fails with EEXIST; the file appears complete
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    @staticmethod
    def _complete_temp(path: str, data: bytes) -> str:
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def ls(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.p(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.p(rel))

    def remove(self, rel: str) -> None:
        path = self.p(rel)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def versions(self, name: str) -> list[int]:
        """Committed versions of ``name`` (those with a manifest), ascending."""
        return sorted(int(v) for v in self.ls(name)
                      if v.isdigit() and os.path.isfile(self.p(name, v, MANIFEST)))

    def files(self, rel: str) -> dict[str, int]:
        """{path under ``rel``: size} of every non-directory entry (links included, unfollowed)."""
        base, out = self.p(rel), {}
        for dp, dns, fns in os.walk(base):
            for fn in fns + [d for d in dns if os.path.islink(os.path.join(dp, d))]:
                full = os.path.join(dp, fn)
                out[os.path.relpath(full, base).replace(os.sep, "/")] = os.lstat(full).st_size
        return dict(sorted(out.items()))

    def safe(self, rel: str) -> str:
        """The local path of ``rel``, refused (CheckFailed) if it resolves through a symlink."""
        want = os.path.join(os.path.realpath(self.root), *rel.split("/"))
        got = os.path.realpath(self.p(rel))
        if got != want:
            raise CheckFailed(f"{self.uri}: {rel}: resolves through a symlink (to {got}); "
                              "refused: a stored version holds regular files only")
        return got

    def sha256(self, rel: str) -> tuple[str, int]:
        return sha256_file(self.safe(rel))

    def get(self, rel: str, dst: Path) -> None:
        shutil.copyfile(self.safe(rel), dst)

    def open_read(self, rel: str) -> IO[bytes]:
        return open(self.safe(rel), "rb")

    def staging(self, name: str, token: str) -> Staging:
        return LocalStaging(self, name, token)


class ObjectStore(Store):
    def full_uri(self, rel: str) -> str:
        proto = self.fs.protocol[0] if isinstance(self.fs.protocol, tuple) else self.fs.protocol
        return f"{proto}://{self.p(rel)}"

    def read(self, rel: str) -> bytes:
        return self.fs.cat_file(self.p(rel))

    def write(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self.p(rel), data)  # one PUT is atomic

    def create(self, rel: str, data: bytes) -> bool:
        if os.environ.get(ENV_CLAIM, "").lower() != "verify":
            try:
                self.fs.pipe_file(self.p(rel), data, mode="create")  # If-None-Match: *
                return True
            except FileExistsError:
                return False
            except (NotImplementedError, TypeError, ValueError):
                pass  # no conditional puts here: fall back to write + read-back
        return self._create_verified(rel, data)

    def _create_verified(self, rel: str, data: bytes, settle: float = 0.5) -> bool:
        """Write-then-read-back for stores without ``If-None-Match``: last writer wins; each
        contender reads after a settle delay and only the one whose bytes stayed wins."""
        if self.exists(rel):
            return False
        self.fs.pipe_file(self.p(rel), data)
        time.sleep(settle)
        try:
            return self.fs.cat_file(self.p(rel)) == data
        except FileNotFoundError:
            return False

    def ls(self, rel: str) -> list[str]:
        path = self.p(rel)
        self.fs.invalidate_cache(path)
        try:
            return sorted(posixpath.basename(p.rstrip("/"))
                          for p in self.fs.ls(path, detail=False, refresh=True))
        except FileNotFoundError:
            return []

    def exists(self, rel: str) -> bool:
        self.fs.invalidate_cache(posixpath.dirname(self.p(rel)))
        return self.fs.exists(self.p(rel))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.p(rel), recursive=True)

    def versions(self, name: str) -> list[int]:
        self.fs.invalidate_cache()
        found = self.fs.glob(self.p(name, "*", MANIFEST))
        return sorted(int(v) for v in (posixpath.basename(posixpath.dirname(p)) for p in found)
                      if v.isdigit())

    def files(self, rel: str) -> dict[str, int]:
        base = self.p(rel)
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        return {posixpath.relpath(p, base): int(i.get("size") or 0)
                for p, i in sorted(found.items())}

    def sha256(self, rel: str) -> tuple[str, int]:
        with self.fs.open(self.p(rel), "rb") as fh:
            return sha256_stream(fh)

    def get(self, rel: str, dst: Path) -> None:
        self.fs.get_file(self.p(rel), str(dst))

    def open_read(self, rel: str) -> IO[bytes]:
        return self.fs.open(self.p(rel), "rb")

    def staging(self, name: str, token: str) -> Staging:
        return ObjectStaging(self, name, token)


# ---- staging: the files of one publish until its commit ----------------------------------------


class Staging:
    """Holds one publish's files; ``entries`` are their sizes and sha256 once ``add`` ran."""

    def __init__(self, store: Any, name: str, token: str):
        self.store, self.name, self.token = store, name, token
        self.entries: list[FileEntry] = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Remove what the publish staged (a committed version is never touched)."""


class LocalStaging(Staging):
    def __init__(self, store: LocalStore, name: str, token: str):
        super().__init__(store, name, token)
        self.rel = posixpath.join(STAGING, f"{name}.{token}")
        self.dir = store.p(self.rel)

    def add(self, items: list[Item], progress: Progress) -> list[FileEntry]:
        total = sum(i.size for i in items)
        where = f"registry {self.store.uri}: publishing {self.name}"
        need_space(self.store.root, total, where)
        marker = {"name": self.name, "token": self.token, "started_at": utc_now(),
                  "started_ts": time.time(), "pid": os.getpid()}
        with disk_errors(where, total):
            os.makedirs(self.dir)
            self.store.write(self.rel + ".json", json.dumps(marker).encode())
            self.entries = parallel(self._copy, items)
        progress(total, total, f"publish {self.name}")
        return self.entries

    def _copy(self, it: Item) -> FileEntry:
        """Copy into the private stage and hash the copy: the digest is of the stored bytes."""
        dst = os.path.join(self.dir, *it.rel.split("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if it.private:
            try:
                os.link(it.path, dst)
            except OSError:
                shutil.copyfile(it.path, dst)
        elif it.local:
            shutil.copyfile(it.path, dst)
        else:
            with it.open() as src, open(dst, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        sha, n = sha256_file(dst)
        return FileEntry(path=it.rel, size=n, sha256=sha)

    def commit(self, version: int, manifest: bytes) -> bool:
        """Rename the stage onto ``<name>/<version>``; False if that version exists."""
        with open(os.path.join(self.dir, MANIFEST), "wb") as fh:  # private until the rename
            fh.write(manifest)
            fh.flush()
            os.fsync(fh.fileno())
        os.makedirs(self.store.p(self.name), exist_ok=True)
        pause()
        try:
            os.rename(self.dir, self.store.p(self.name, str(version)))
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                return False
            raise
        _fsync_dir(self.store.p(self.name))
        return True

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.store.remove(self.rel + ".json")


class ObjectStaging(Staging):
    def add(self, items: list[Item], progress: Progress) -> list[FileEntry]:
        self.items = items
        self.stats = {it.rel: it.stat_key() for it in items if it.local}

        def digest(it: Item) -> FileEntry:
            if it.local:
                sha, n = sha256_file(it.path)
            else:
                with it.open() as fh:
                    sha, n = sha256_stream(fh)
            return FileEntry(path=it.rel, size=n, sha256=sha)

        self.entries = parallel(digest, items)
        progress(sum(e.size for e in self.entries), None, f"hashed {self.name}")
        return self.entries

    def commit(self, version: int, manifest: bytes) -> bool:
        """Upload into ``<name>/<version>/``, check what landed, create the manifest last."""
        prefix = posixpath.join(self.name, str(version))
        if self.store.exists(posixpath.join(prefix, MANIFEST)):
            return False
        want = {e.path: e for e in self.entries}
        parallel(lambda it: self._upload(it, prefix, want[it.rel]), self.items)
        for it in self.items:
            if it.local and it.stat_key() != self.stats[it.rel]:
                raise CheckFailed(f"{it.path}: changed while publishing; publish again")
        landed = self.store.files(prefix)
        for rel, size in landed.items():
            if rel != MANIFEST and (rel not in want or want[rel].size != size):
                raise CheckFailed(f"{self.store.uri}: {prefix}/{rel}: uploaded size {size} does "
                                  f"not match the version's files; publish again")
        missing = sorted(set(want) - set(landed))
        if missing:
            raise CheckFailed(f"{self.store.uri}: {prefix}/{missing[0]}: upload missing")
        pause()
        return self.store.create(posixpath.join(prefix, MANIFEST), manifest)

    def _upload(self, it: Item, prefix: str, entry: FileEntry) -> None:
        dst = self.store.p(prefix, it.rel)
        if it.local:
            self.store.fs.put_file(it.path, dst)
            return
        with it.open() as src, self.store.fs.open(dst, "wb") as out:
            sha, _ = _copy_hashing(src, out)
        if sha != entry.sha256:
            raise CheckFailed(f"{it.path}: changed while publishing; publish again")


def _copy_hashing(src: IO[bytes], dst: IO[bytes]) -> tuple[str, int]:
    import hashlib

    h, n = hashlib.sha256(), 0
    while b := src.read(1 << 20):
        h.update(b)
        dst.write(b)
        n += len(b)
    return h.hexdigest(), n


def pause() -> None:
    """ENV_PAUSE (failure tests only; unset: nothing)."""
    s = os.environ.get(ENV_PAUSE)
    if s:
        time.sleep(max(0.0, float(s[1:]) - time.time()) if s.startswith("@") else float(s))


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
