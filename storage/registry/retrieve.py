"""Reading versions back: ``verify`` in place, and ``pull`` into a directory through the cache.

A pull fetches every file into a temporary directory beside the target, hashes what landed and
renames the directory into place only when every size and sha256 matched, so a mismatch leaves
nothing behind. Verified versions are cached under ``<cache root>/versions/<sha256 of the
manifest>`` and re-verified on every use; the cache is an optimisation only.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import time
import uuid
from pathlib import Path

from tokenfoundry.schemas.errors import BadInputError, CheckFailed
from tokenfoundry.schemas.registry import (
    FileEntry,
    PullResult,
    VerifyProblem,
    VerifyResult,
    VersionManifest,
)
from tokenfoundry.storage.registry.manifest import parallel, parse_manifest, sha256_file
from tokenfoundry.storage.registry.publish import no_progress
from tokenfoundry.storage.registry.refs import MANIFEST, cache_root
from tokenfoundry.storage.registry.store import Progress, Store, disk_errors, need_space


def read_manifest(store: Store, name: str, v: int) -> tuple[bytes, VersionManifest]:
    """The raw bytes and the checked manifest of ``name@v`` (BadInputError if absent)."""
    try:
        raw = store.read(posixpath.join(name, str(v), MANIFEST))
    except FileNotFoundError:
        known = store.versions(name)
        raise BadInputError(f"{name}@{v}: no such version in registry {store.uri} "
                            f"(versions: {', '.join(map(str, known)) or 'none'})") from None
    return raw, parse_manifest(raw, f"{name}@{v}")


def verify(store: Store, name: str, v: int, progress: Progress = no_progress) -> VerifyResult:
    """Re-hash every file of a version; problems name the file (also unexpected files)."""
    _, m = read_manifest(store, name, v)
    base = posixpath.join(name, str(v))
    present = store.files(base)

    def check(e: FileEntry) -> VerifyProblem | None:
        if e.path not in present:
            return VerifyProblem(path=e.path, problem="missing")
        try:
            sha, n = store.sha256(posixpath.join(base, e.path))
        except CheckFailed as err:
            return VerifyProblem(path=e.path, problem=str(err))
        except FileNotFoundError:
            return VerifyProblem(path=e.path, problem="missing")
        return _mismatch(e, sha, n)

    problems = [p for p in parallel(check, m.files) if p is not None]
    listed = {e.path for e in m.files} | {MANIFEST}
    problems += [VerifyProblem(path=rel, problem="not listed in manifest.json")
                 for rel in present if rel not in listed]
    progress(m.total_bytes, m.total_bytes, f"verify {name}@{v}")
    return VerifyResult(ref=f"{name}@{v}", name=name, version=v, ok=not problems,
                        files=len(m.files), bytes=m.total_bytes, problems=problems)


def _mismatch(e: FileEntry, sha: str, n: int) -> VerifyProblem | None:
    if n != e.size:
        return VerifyProblem(path=e.path, problem=f"size {n} != {e.size} in manifest")
    if sha != e.sha256:
        return VerifyProblem(path=e.path, problem=f"sha256 {sha} != {e.sha256} in manifest")
    return None


def pull(store: Store, name: str, v: int, to: str | os.PathLike[str] | None = None, *,
         cache: bool = True, force: bool = False, progress: Progress = no_progress
         ) -> PullResult:
    """Copy a verified version into ``to`` (default: the cache directory, returned as is)."""
    t0 = time.perf_counter()
    raw, m = read_manifest(store, name, v)
    cdir = cache_root() / "versions" / hashlib.sha256(raw).hexdigest()
    target = Path(to).absolute() if to is not None else cdir
    label = f"{name}@{v}"

    def result(path: Path, cached: bool) -> PullResult:
        return PullResult(ref=label, name=name, version=v, path=str(path), files=len(m.files),
                          bytes=m.total_bytes, cached=cached,
                          seconds=round(time.perf_counter() - t0, 3))

    if target.exists() and not target.is_dir():
        raise BadInputError(f"{target}: exists and is not a directory; choose another --to")
    if target.is_dir() and any(target.iterdir()):
        if dir_matches(target, raw, m):
            return result(target, target == cdir)
        if target != cdir and not force:
            raise BadInputError(f"{target}: directory exists and holds other files; choose "
                                "an empty or new --to, or pass --force to replace it")
    from_cache = cache and target != cdir and dir_matches(cdir, raw, m)
    fetch = _from_dir(cdir) if from_cache else _from_store(store, posixpath.join(name, str(v)))
    _fetch_verified(m, raw, target, fetch, label)
    progress(m.total_bytes, m.total_bytes, f"pull {label}")
    if cache and target != cdir and not from_cache:
        fill_cache(target, cdir, m)
    return result(target, from_cache)


def _from_store(store: Store, base: str):
    def fetch(e: FileEntry, dst: Path) -> None:
        store.get(posixpath.join(base, e.path), dst)
    return fetch


def _from_dir(d: Path):
    def fetch(e: FileEntry, dst: Path) -> None:
        shutil.copyfile(d.joinpath(*e.path.split("/")), dst)
    return fetch


def _fetch_verified(m: VersionManifest, raw: bytes, target: Path, fetch, label: str) -> None:
    """Fetch every file into a temporary directory beside ``target``, check each size and
    sha256, then swap it into place; on any problem the temporary directory is removed."""
    where = f"pull {label} into {target}"
    need_space(target.parent, m.total_bytes, where)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.pull-{uuid.uuid4().hex[:12]}"
    try:
        with disk_errors(where, m.total_bytes):
            tmp.mkdir()
            dsts = {e.path: _inside(tmp, e.path, label) for e in m.files}

            def one(e: FileEntry) -> None:
                dsts[e.path].parent.mkdir(parents=True, exist_ok=True)
                try:
                    fetch(e, dsts[e.path])
                except FileNotFoundError:
                    raise CheckFailed(f"{label}: {e.path}: missing from the registry") from None
                sha, n = sha256_file(dsts[e.path])
                if n != e.size:
                    raise CheckFailed(f"{label}: {e.path}: size {n} != {e.size} in manifest "
                                      "(corrupted or truncated); nothing was written")
                if sha != e.sha256:
                    raise CheckFailed(f"{label}: {e.path}: sha256 mismatch (got {sha}, "
                                      f"manifest says {e.sha256}); nothing was written")

            parallel(one, m.files)
            (tmp / MANIFEST).write_bytes(raw)
            _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _inside(base: Path, rel: str, where: str) -> Path:
    """``base/rel`` if it resolves inside ``base``; else CheckFailed naming ``rel``."""
    dst = base.joinpath(*rel.split("/"))
    root = os.path.realpath(base)
    if os.path.commonpath([root, os.path.realpath(dst)]) != root:
        raise CheckFailed(f"{where}: manifest entry {rel!r} resolves outside the target; refused")
    return dst


def dir_matches(d: Path, raw: bytes, m: VersionManifest) -> bool:
    """``d`` holds exactly this manifest and regular files whose sizes and sha256 match it."""
    try:
        if (d / MANIFEST).read_bytes() != raw:
            return False
        paths = [d.joinpath(*e.path.split("/")) for e in m.files]
        for e, p in zip(m.files, paths):
            if os.path.realpath(p) != os.path.join(os.path.realpath(d), *e.path.split("/")) \
                    or not p.is_file() or p.stat().st_size != e.size:
                return False
        got = parallel(sha256_file, paths)
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


def fill_cache(src: Path, cdir: Path, m: VersionManifest) -> None:
    """Add a verified pulled directory to the cache (hard links when possible; entries are
    re-verified on every use, so a later edit of the pulled copy cannot leak through)."""
    tmp = cdir.parent / f".{cdir.name}.fill-{uuid.uuid4().hex[:12]}"
    try:
        for rel in [MANIFEST, *(e.path for e in m.files)]:
            s, d = src.joinpath(*rel.split("/")), tmp.joinpath(*rel.split("/"))
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
