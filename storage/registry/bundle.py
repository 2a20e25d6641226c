"""Bundles: one version as a single ``.tar.gz`` (or ``.zip``) for another registry.

A bundle is hostile input. ``read_bundle`` checks it completely before anything is written:
member names (no absolute, ``..`` or backslash names), member types (regular files only), the
manifest (every field validated like a CLI argument, the content identity recomputed), that
members and manifest entries match one to one with the declared sizes, and the size caps
(``TOKENFOUNDRY_REGISTRY_IMPORT_MAX_BYTES``, default 64 GiB, and the free disk space). Import
then extracts into a private temporary directory, hashing every member and stopping at its
declared size (a compression bomb ends there; a first pass does the same without writing, so a refused
bundle writes nothing), and commits through the publish protocol.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tokenfoundry.schemas.errors import BadInputError, CheckFailed
from tokenfoundry.schemas.registry import ExportResult, ImportResult, VersionManifest
from tokenfoundry.storage.registry import publish as pub
from tokenfoundry.storage.registry.manifest import (
    parse_manifest,
    renumbered,
    sha256_file,
    sha256_stream,
)
from tokenfoundry.storage.registry.retrieve import read_manifest
from tokenfoundry.storage.registry.refs import MANIFEST
from tokenfoundry.storage.registry.store import Progress, Store, disk_errors, need_space

ENV_MAX_IMPORT = "TOKENFOUNDRY_REGISTRY_IMPORT_MAX_BYTES"
DEFAULT_MAX_IMPORT = 64 << 30
_MAX_MANIFEST = 64 << 20


def max_import_bytes() -> int:
    env = os.environ.get(ENV_MAX_IMPORT)
    return int(env) if env else DEFAULT_MAX_IMPORT


# ---- export ------------------------------------------------------------------------------------


def export_bundle(store: Store, name: str, v: int, to: str | os.PathLike[str],
                  progress: Progress = pub.no_progress) -> ExportResult:
    """Write ``name@v`` as a tar.gz: ``<name>-<v>/manifest.json`` + its files, every file
    verified while it is written (a tampered version is not exported)."""
    raw, m = read_manifest(store, name, v)
    label, out = f"{name}@{v}", Path(to).absolute()
    if not out.name.endswith((".tar.gz", ".tgz")):
        raise BadInputError(f"{out}: bundles are .tar.gz files; name it e.g. {name}-{v}.tar.gz")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    top, mtime = f"{name}-{v}", _epoch(m.created_at)
    try:
        with disk_errors(f"export {label} to {out}", m.total_bytes), open(tmp, "wb") as fh, \
                gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_tarinfo(f"{top}/{MANIFEST}", len(raw), mtime), io.BytesIO(raw))
            for e in m.files:
                with _Hashing(store.open_read(posixpath.join(name, str(v), e.path))) as r:
                    try:
                        tar.addfile(_tarinfo(f"{top}/{e.path}", e.size, mtime), r)
                    except OSError as err:  # shorter than the manifest says
                        raise CheckFailed(f"{label}: {e.path}: {err}; run `tokenfoundry "
                                          f"registry verify {label}`") from None
                    extra = r.fh.read(1)
                if extra or r.n != e.size or r.h.hexdigest() != e.sha256:
                    raise CheckFailed(f"{label}: {e.path}: does not match its manifest entry "
                                      "(size or sha256); not exported")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    progress(m.total_bytes, m.total_bytes, f"export {label}")
    sha, size = sha256_file(out)
    return ExportResult(ref=label, name=name, version=v, path=str(out), files=len(m.files),
                        bytes=size, sha256=sha)


class _Hashing:
    """A reader that hashes what ``tarfile`` reads through it."""

    def __init__(self, fh: IO[bytes]):
        self.fh, self.h, self.n = fh, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        b = self.fh.read(size)
        self.h.update(b)
        self.n += len(b)
        return b

    def __enter__(self) -> _Hashing:
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
    try:
        return dt.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


# ---- reading and checking ----------------------------------------------------------------------


@dataclass
class Member:
    name: str
    kind: str  # file | dir | symlink | hard link | device file | fifo | special file
    size: int


@dataclass
class Bundle:
    """A checked bundle: names, types, manifest and declared sizes verified (the bytes are
    verified while they are extracted)."""

    path: str
    kind: str  # "tar" | "zip"
    top: str
    manifest: VersionManifest
    manifest_raw: bytes

    def open_members(self) -> Iterator[tuple[str, IO[bytes]]]:
        """(path in the version, readable) for every listed file."""
        listed = {e.path for e in self.manifest.files}
        if self.kind == "zip":
            with zipfile.ZipFile(self.path) as zf:
                for e in self.manifest.files:
                    yield e.path, zf.open(self.top + e.path)
            return
        with tarfile.open(self.path, mode="r:*") as tf:
            for mem in tf:
                rel = mem.name[len(self.top):]
                if mem.isreg() and rel in listed:
                    yield rel, tf.extractfile(mem)


def read_bundle(path: str | os.PathLike[str], max_bytes: int | None = None) -> Bundle:
    """Open and check a bundle without writing anything; CheckFailed names the member/field."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such bundle file; pass a .tar.gz or .zip made by "
                            "`tokenfoundry registry export`")
    kind, members = _list_members(p)
    for mem in members:
        why = _member_problem(mem)
        if why:
            raise CheckFailed(f"{p}: bundle refused, member {mem.name!r}: {why}; nothing was "
                              "written")
    files = _files_once(p, members)
    top = _top(p, files)
    raw = _read_member(p, kind, top + MANIFEST)
    m = parse_manifest(raw, f"{p}: bundle refused, {top}{MANIFEST}")
    _match_members(p, top, files, m)
    cap = max_import_bytes() if max_bytes is None else max_bytes
    if m.total_bytes > cap:
        raise CheckFailed(f"{p}: bundle refused: it declares {m.total_bytes} bytes, more than "
                          f"the import limit {cap} (raise {ENV_MAX_IMPORT} to import it)")
    bundle = Bundle(str(p), kind, top, m, raw)
    _check_bytes(bundle)
    return bundle


def _check_bytes(bundle: Bundle) -> None:
    """Hash every member, reading at most its declared size + 1 byte (nothing is written)."""
    want = {e.path: e for e in bundle.manifest.files}
    seen = set()
    for rel, fh in bundle.open_members():
        with fh:
            sha, n = sha256_stream(fh, limit=want[rel].size)
        _refuse_mismatch(bundle, rel, sha, n)
        seen.add(rel)
    if set(want) - seen:
        missing = bundle.top + sorted(set(want) - seen)[0]
        raise CheckFailed(f"{bundle.path}: bundle refused, member {missing!r} unreadable")


def _refuse_mismatch(bundle: Bundle, rel: str, sha: str, n: int) -> None:
    e = next(e for e in bundle.manifest.files if e.path == rel)
    if n != e.size or sha != e.sha256:
        raise CheckFailed(f"{bundle.path}: bundle refused, member {bundle.top + rel!r}: "
                          f"{'size' if n != e.size else 'sha256'} does not match its manifest "
                          "entry; nothing was written")


def _list_members(p: Path) -> tuple[str, list[Member]]:
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            return "zip", [Member(zi.filename, _zip_kind(zi), zi.file_size)
                           for zi in zf.infolist()]
    try:
        with tarfile.open(p, mode="r:*") as tf:
            return "tar", [Member(ti.name, _tar_kind(ti), ti.size) for ti in tf]
    except (tarfile.TarError, EOFError, OSError) as err:
        raise BadInputError(f"{p}: not a readable tar.gz or zip bundle: {err}") from None


def _zip_kind(zi: zipfile.ZipInfo) -> str:
    fmt = stat.S_IFMT((zi.external_attr >> 16) & 0xFFFF)
    if zi.is_dir():
        return "dir"
    return {0: "file", stat.S_IFREG: "file", stat.S_IFLNK: "symlink"}.get(fmt, "special file")


def _tar_kind(ti: tarfile.TarInfo) -> str:
    if ti.isreg():
        return "file"
    if ti.isdir():
        return "dir"
    if ti.issym():
        return "symlink"
    if ti.islnk():
        return "hard link"
    if ti.ischr() or ti.isblk():
        return "device file"
    return "fifo" if ti.isfifo() else "special file"


def _member_problem(mem: Member) -> str | None:
    if "\\" in mem.name:
        return "backslash in member name (Windows path separators are refused)"
    if mem.name.startswith("/") or re.match(r"^[A-Za-z]:", mem.name):
        return "absolute member name"
    if ".." in mem.name.split("/"):
        return "'..' in member name (climbs out of the target)"
    if mem.kind not in ("file", "dir"):
        return f"{mem.kind} members are refused (only regular files)"
    return None


def _files_once(p: Path, members: list[Member]) -> dict[str, int]:
    files: dict[str, int] = {}
    for mem in members:
        if mem.kind == "file":
            if mem.name in files:
                raise CheckFailed(f"{p}: bundle refused, member {mem.name!r} appears twice")
            files[mem.name] = mem.size
    return files


def _top(p: Path, files: dict[str, int]) -> str:
    if MANIFEST in files:
        return ""
    tops = {n.split("/", 1)[0] for n in files}
    top = (next(iter(tops)) + "/") if len(tops) == 1 else None
    if top is None or top + MANIFEST not in files:
        raise CheckFailed(f"{p}: bundle refused: no manifest.json at its top level")
    if files[top + MANIFEST] > _MAX_MANIFEST:
        raise CheckFailed(f"{p}: bundle refused: {top}{MANIFEST} is over {_MAX_MANIFEST} bytes")
    return top


def _match_members(p: Path, top: str, files: dict[str, int], m: VersionManifest) -> None:
    """Members and manifest entries correspond one to one, with the declared sizes."""
    for e in m.files:
        if top + e.path not in files:
            raise CheckFailed(f"{p}: bundle refused, member {top + e.path!r} listed in the "
                              "manifest is missing")
        if files[top + e.path] != e.size:
            raise CheckFailed(f"{p}: bundle refused, member {top + e.path!r}: size "
                              f"{files[top + e.path]} does not match its manifest entry "
                              f"({e.size}); nothing was written")
    listed = {top + e.path for e in m.files} | {top + MANIFEST}
    for n in files:
        if n not in listed:
            raise CheckFailed(f"{p}: bundle refused, member {n!r} is not listed in its "
                              "manifest.json")


def _read_member(p: Path, kind: str, name: str) -> bytes:
    if kind == "zip":
        with zipfile.ZipFile(p) as zf, zf.open(name) as fh:
            return fh.read(_MAX_MANIFEST)
    with tarfile.open(p, mode="r:*") as tf:
        fh = tf.extractfile(tf.getmember(name))
        assert fh is not None
        return fh.read(_MAX_MANIFEST)


def extract(bundle: Bundle, into: Path) -> None:
    """Write every listed member under ``into``, hashing it and reading at most its declared
    size + 1 byte; a member whose bytes differ from its entry refuses the bundle."""
    want = {e.path: e for e in bundle.manifest.files}
    for rel, fh in bundle.open_members():
        e = want[rel]
        dst = into.joinpath(*rel.split("/"))
        dst.parent.mkdir(parents=True, exist_ok=True)
        with fh, open(dst, "wb") as out:
            h, n = hashlib.sha256(), 0
            while n <= e.size and (b := fh.read(min(1 << 20, e.size + 1 - n))):
                h.update(b)
                out.write(b)
                n += len(b)
        _refuse_mismatch(bundle, rel, h.hexdigest(), n)


# ---- import ------------------------------------------------------------------------------------


def import_bundle(store: Store, path: str | os.PathLike[str], *, as_new: bool = False,
                  max_bytes: int | None = None, progress: Progress = pub.no_progress
                  ) -> ImportResult:
    """Import a bundle: checked completely first, then committed like a publish (keeping its
    version number unless taken: then BadInputError, or the next number with ``as_new``)."""
    bundle = read_bundle(path, max_bytes)
    m, raw, name = bundle.manifest, bundle.manifest_raw, bundle.manifest.name

    def result(v: int, reused: bool) -> ImportResult:
        return ImportResult(ref=f"{name}@{v}", name=name, version=v, registry=store.uri,
                            reused=reused, files=len(m.files), bytes=m.total_bytes,
                            bundle=str(path))

    found = pub.find_content(store, name, m.content_sha256)
    if found.state == "committed":
        return result(found.version, True)
    taken = store.exists(posixpath.join(name, str(m.version))) or \
        store.exists(pub.claim_path(name, m.version))
    if taken and not as_new:
        raise BadInputError(f"{path}: {name}@{m.version} already exists in {store.uri} with "
                            "different files; pass --as-new to import it as the next version")
    v, reused = _commit_bundle(store, bundle, None if taken else m.version, progress)
    pub.move_latest(store, name, v, "import", note=f"bundle {Path(path).name}")
    return result(v, reused)


def _commit_bundle(store: Store, bundle: Bundle, want: int | None,
                   progress: Progress) -> tuple[int, bool]:
    m, raw = bundle.manifest, bundle.manifest_raw
    where = f"import {bundle.path} into registry {store.uri}"
    scratch = store.p("_staging") if store.local else None
    need_space(scratch or tempfile.gettempdir(), m.total_bytes, where)
    if scratch:
        os.makedirs(scratch, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=scratch))
    try:
        with disk_errors(where, m.total_bytes):
            extract(bundle, tmp)
        token = uuid.uuid4().hex
        with store.staging(m.name, token) as staging:
            items = pub.collect_source(tmp)
            for it in items:
                it.private = True  # our own extracted copy: the stage may hard-link it
            entries = staging.add(items, progress)
            if sorted(entries, key=lambda e: e.path) != sorted(m.files, key=lambda e: e.path):
                raise CheckFailed(f"{bundle.path}: bundle refused: the extracted files do not "
                                  "match the manifest's 'files'")
            return pub.commit(store, m.name, staging,
                              lambda v: raw if v == m.version else renumbered(raw, v), token,
                              want=want)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
