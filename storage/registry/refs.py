"""Names, references and paths of the registry: the grammar every input is checked against.

A reference is ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``; a path inside a version is relative
POSIX without ``..``. These checks run on CLI arguments and, identically, on every field of a
manifest read from a registry or a bundle (a bundle is hostile input).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.registry import MAX_VERSION
from tokenfoundry.storage.workspace import DEFAULT_WORKSPACE, Workspace, check_name

MANIFEST = "manifest.json"
LATEST = "latest"
ENV_REGISTRY = "TOKENFOUNDRY_REGISTRY"
#: The one cache root (pulled versions under ``versions/``); default ``~/.cache/tokenfoundry``.
ENV_CACHE = "TOKENFOUNDRY_CACHE"
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def parse_ref(ref: str) -> tuple[str, str]:
    """``"legal-bpe@3"`` -> ("legal-bpe", "3"); ``"legal-bpe@production"``; ``"legal-bpe"`` ->
    ("legal-bpe", "latest")."""
    if not isinstance(ref, str) or not ref:
        raise BadInputError(f"invalid registry reference {ref!r}: use NAME, NAME@VERSION or "
                            "NAME@ALIAS, e.g. legal-bpe@production")
    name, _, sel = ref.partition("@")
    check_name(name, "registry")
    sel = sel or LATEST
    if sel.isascii() and sel.isdigit():
        check_version(int(sel), f"version in {ref!r}")
        return name, str(int(sel))
    if not _ALIAS_RE.fullmatch(sel):
        raise BadInputError(f"invalid version or alias {sel!r} in {ref!r}: a version is a "
                            "positive integer, an alias starts with a letter")
    return name, sel


def check_version(v: Any, what: str = "version") -> int:
    """A version number: a positive integer up to MAX_VERSION (never a bool or a string)."""
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_VERSION:
        raise BadInputError(f"invalid {what} {v!r}: a positive integer <= {MAX_VERSION}")
    return v


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
    if path.startswith("/") or _DRIVE_RE.match(path):
        return "absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "'..' in path (climbs out of the target)"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    return None


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
    """``$TOKENFOUNDRY_CACHE``, else ``~/.cache/tokenfoundry``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env) if env else Path.home() / ".cache" / "tokenfoundry"
