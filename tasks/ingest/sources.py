"""Sources -> input files: directory walks, glob patterns, format detection, and what was skipped.

A walk reads regular files only. It never follows a directory symlink (so a symlink loop cannot
make it walk forever or read a file twice), reads a file symlink once (deduplicated by real
path), and never opens a FIFO, socket or device (opening a FIFO blocks until a writer comes).
Every entry it does not read is listed with its reason (:class:`SkippedFile`): hidden names,
directory symlinks, non-regular files, names that are not valid UTF-8 (they could not be
written to the UTF-8 ``source`` column: rename them), binary files with an unknown ending.

Format by name (``format: auto``): a known ending picks the reader (``.jsonl.gz`` = jsonl in
gzip); any other name - no ending (``LICENSE``), a version-like one (``Apache-2.0``,
``GFDL-1.3``) or an unknown one (``notes.rst``) - is read as plain text when its first 8 KiB
(decompressed, for ``.gz``/``.zst``) sniff as text, and skipped as binary otherwise.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import posixpath
import re
import stat

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.ingest import (
    COMPRESSIBLE,
    COMPRESSIONS,
    EXTENSIONS,
    IngestSpec,
    SkippedFile,
)
from tokenfoundry.tasks.ingest.readers import open_raw, sniff

_GLOB = re.compile(r"[*?\[]")
_KINDS = [(stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]

Found = tuple[str, str, str | None]  # (path or URI, format, compression)


def supported(option: str = "--source") -> str:
    exts = ", ".join(sorted(EXTENSIONS))
    return (f"{exts} (txt, md, jsonl, csv and po may end in .gz or .zst; other names are read "
            "as plain text when they are text)" + (", or pass --format" if option == "--source"
                                                   else ""))


def detect_format(path: str, forced: str = "auto") -> tuple[str | None, str | None]:
    """(format, compression) by the file's name; format None when the ending is not a known one
    (the caller sniffs the bytes)."""
    name = posixpath.basename(path.rstrip("/")).lower()
    compression = None
    for suffix, comp in COMPRESSIONS.items():
        if name.endswith(suffix):
            compression, name = comp, name[: -len(suffix)]
            break
    if forced != "auto":
        return forced, compression
    stem, dot, ext = name.rpartition(".")
    if dot and stem and f".{ext}" in EXTENSIONS:
        return EXTENSIONS[f".{ext}"], compression
    return None, compression


def _ending(path: str) -> str:
    name = posixpath.basename(path)
    return "." + name.rsplit(".", 1)[-1] if "." in name.lstrip(".") else "(none)"


def sniff_file(path: str, compression: str | None) -> str:
    """'' when the file's first 8 KiB are text, else why not."""
    try:
        with open_raw(path) as raw:
            if compression == "gzip":
                head = gzip.GzipFile(fileobj=raw).read(8192)
            elif compression == "zstd":
                import zstandard

                head = zstandard.ZstdDecompressor().stream_reader(raw).read(8192)
            else:
                head = raw.read(8192)
    except (OSError, EOFError, ValueError) as e:
        return f"cannot read it as {compression or 'a file'}: {type(e).__name__}: {e}"
    enc, _bom, why = sniff(head)
    return "" if enc is not None else why


def display(path: str) -> str:
    """A path as valid UTF-8: undecodable bytes (surrogate-escaped) shown as \\xNN."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _utf8_name(path: str) -> bool:
    return display(path) == path


# ---- local walks ------------------------------------------------------------------------------

def _match(pp: list[str], parts: list[str]) -> bool:
    """Does the relative path ``parts`` match the pattern parts (``**`` = any depth)?"""
    if not pp:
        return not parts
    if pp[0] == "**":
        return _match(pp[1:], parts) or (bool(parts) and not parts[0].startswith(".")
                                         and _match(pp, parts[1:]))
    return bool(parts) and _part(pp[0], parts[0]) and _match(pp[1:], parts[1:])


def _could(pp: list[str], parts: list[str]) -> bool:
    """Can a file under the relative directory ``parts`` match the pattern parts?"""
    if not parts:
        return True
    if not pp:
        return False
    if pp[0] == "**":
        return not parts[0].startswith(".") or _could(pp[1:], parts)
    return _part(pp[0], parts[0]) and _could(pp[1:], parts[1:])


def _part(pat: str, name: str) -> bool:
    if name.startswith(".") and not pat.startswith("."):
        return False  # as glob: hidden names match only patterns that start with a dot
    return fnmatch.fnmatchcase(name, pat)


def walk(root: str, skipped: list[SkippedFile], pattern: list[str] | None = None) -> list[str]:
    """Regular files under ``root`` (sorted; with ``pattern`` only matching ones); everything
    else met on the way goes to ``skipped`` with its reason."""
    found: list[str] = []
    stack = [(root, [])]
    while stack:
        d, rel = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            skipped.append(SkippedFile(path=display(d), reason=f"cannot list it: {e.strerror}"))
            continue
        for entry in entries:
            parts = [*rel, entry.name]
            path = entry.path
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_link = entry.is_symlink()
            except OSError as e:
                skipped.append(SkippedFile(path=display(path), reason=f"cannot stat: {e}"))
                continue
            wanted = (_could(pattern, parts) if is_dir or is_link else _match(pattern, parts)) \
                if pattern is not None else True
            if not wanted:
                continue
            if not _utf8_name(path):
                skipped.append(SkippedFile(path=display(path), reason=(
                    "the name is not valid UTF-8 (the source column is UTF-8); rename it, "
                    "e.g. convmv -f latin1 -t utf-8 --notest")))
                continue
            if is_dir:
                if entry.name.startswith("."):
                    skipped.append(SkippedFile(path=path, reason="hidden directory, not walked"))
                else:
                    stack.append((path, parts))
                continue
            if is_link:
                try:
                    st = os.stat(path)
                except OSError:
                    skipped.append(SkippedFile(path=path, reason="broken symlink"))
                    continue
                if stat.S_ISDIR(st.st_mode):
                    skipped.append(SkippedFile(path=path, reason=(
                        f"directory symlink, not followed (-> {display(os.readlink(path))}); "
                        "pass its target itself to read it")))
                    continue
                if pattern is not None and not _match(pattern, parts):
                    continue
            else:
                st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                kind = next((k for f, k in _KINDS if f(st.st_mode)), "not a regular file")
                skipped.append(SkippedFile(path=path, reason=f"{kind}, not read"))
                continue
            if entry.name.startswith(".") and pattern is None:
                skipped.append(SkippedFile(path=path, reason="hidden file"))
                continue
            found.append(path)
    return sorted(found)


def _split_pattern(pattern: str) -> tuple[str, list[str]]:
    """(the directory before the first glob character, the pattern parts after it)."""
    parts = pattern.split(os.sep)
    k = next(i for i, p in enumerate(parts) if _GLOB.search(p))
    root = os.sep.join(parts[:k]) or os.sep
    return root, [p for p in parts[k:] if p]


# ---- expansion --------------------------------------------------------------------------------

def expand_sources(spec: IngestSpec, option: str = "--source"
                   ) -> tuple[list[Found], list[SkippedFile]]:
    """Every input file as (path or URI, format, compression), sorted; and what was skipped.

    ``option`` is the command-line option the sources came from (errors name it)."""
    files: dict[str, tuple[str, str | None]] = {}
    real: dict[str, str] = {}
    skipped: list[SkippedFile] = []
    for src in spec.sources:
        remote = "://" in src
        pattern = bool(_GLOB.search(src))
        is_dir = True  # a directory or pattern: unreadable files are skipped, not fatal
        if remote:
            found = _remote(src, pattern, option)
            is_dir = pattern or found != [src]
        elif pattern:
            root, parts = _split_pattern(os.path.abspath(os.path.expanduser(src)))
            found = walk(root, skipped, parts) if os.path.isdir(root) else []
            if not found:
                raise BadInputError(f"{src}: the pattern matches no file; check the {option} "
                                    "pattern")
        else:
            p = os.path.abspath(os.path.expanduser(src))
            if not os.path.exists(p):
                raise BadInputError(f"{src}: no such file or directory; check the {option} path "
                                    "(a file or a directory of text files)")
            if not _utf8_name(p):
                raise BadInputError(f"{display(src)}: the name is not valid UTF-8; rename it")
            if os.path.isdir(p):
                found = walk(p, skipped)
            else:
                if not stat.S_ISREG(os.stat(p).st_mode):
                    raise BadInputError(f"{src}: not a regular file (a FIFO or device); "
                                        "ingest reads files")
                found, is_dir = [p], False
        n_before = len(files)
        n_skipped = len(skipped)
        # real files before symlinks to them, so a symlink (GPL -> GPL-3) is the one skipped
        for f in sorted(found, key=lambda f: (not remote and os.path.islink(f), f)):
            if not remote:
                rp = os.path.realpath(f)
                if rp in real and real[rp] != f:
                    skipped.append(SkippedFile(path=f, reason=f"same file as {real[rp]}"))
                    continue
                real[rp] = f
            fmt, comp = detect_format(f, spec.format)
            why = ""
            if fmt is None:
                why = sniff_file(f, comp)
                fmt = "txt"
                if why:
                    why = f"unknown ending {_ending(f)!r} and not text: {why}"
            elif comp and fmt not in COMPRESSIBLE:
                why = f"{fmt} cannot be read {comp}-compressed; decompress it"
            if why:
                if not is_dir:
                    raise BadInputError(f"{src}: {why}; supported: {supported(option)}")
                skipped.append(SkippedFile(path=f, reason=why))
                continue
            files[f] = (fmt, comp)
        if is_dir and len(files) == n_before:
            what = "the pattern matches" if pattern else "the directory holds"
            reasons = "; ".join(f"{display(s.path)}: {s.reason}" for s in skipped[n_skipped:][:3])
            raise BadInputError(f"{src}: {what} no file ingest can read"
                                + (f" ({reasons})" if reasons else "") + f"; supported: "
                                f"{supported(option)}")
    return [(p, *files[p]) for p in sorted(files)], skipped


def _remote(src: str, pattern: bool, option: str) -> list[str]:
    """Files of an fsspec URI (a file, a directory, or a pattern), sorted."""
    import fsspec

    fs, p = fsspec.core.url_to_fs(src)
    proto = src.split("://", 1)[0]
    if pattern:
        hits = [f"{proto}://{f}" for f in sorted(fs.glob(p)) if fs.isfile(f)]
        if not hits:
            raise BadInputError(f"{src}: the pattern matches no file; check the {option} pattern")
        return hits
    if not fs.exists(p):
        raise BadInputError(f"{src}: no such file or directory; check the {option} path")
    if fs.isdir(p):
        return [f"{proto}://{f}" for f in sorted(fs.find(p))]
    return [src]
