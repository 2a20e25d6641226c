"""Per-vocabulary facts, computed once per tokenizer and kept on disk between evaluations.

What the evaluator derives from a vocabulary alone - token byte lengths, the round-trip hash of
every token, the special and byte-fallback masks, and the unreachable-token check (every token's
own string encoded once) - does not depend on the evaluation text. It is computed on the first
evaluation of a tokenizer and stored as one safetensors file named by the sha256 of what
determines it: the tokenizer's serialised definition (``tokenizer.json`` as loaded, the
sentencepiece model bytes, or the quicktok encoding name) plus the backend library's version and
this module's ``FORMAT``. Any change to the tokenizer or the library gives a new key; a file
that cannot be read is recomputed.

Location: ``$TOKENFOUNDRY_CACHE_DIR/vocab`` (default ``$XDG_CACHE_HOME/tokenfoundry`` or
``~/.cache/tokenfoundry``); ``TOKENFOUNDRY_CACHE_DIR=none`` turns the disk cache off.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

#: Bump when what is stored, or how it is computed, changes.
FORMAT = 1
KEYS = ("token_len", "token_hash", "special", "byte_fallback", "unreachable", "partial_utf8")


def cache_dir() -> Path | None:
    """The vocabulary cache directory, or None when caching is off."""
    root = os.environ.get("TOKENFOUNDRY_CACHE_DIR")
    if root is not None and root.strip().lower() in ("", "none", "off", "0"):
        return None
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "tokenfoundry")
    return Path(root) / "vocab"


def cache_key(identity: str) -> str:
    """sha256 hex of the identity string (already includes the library version)."""
    return hashlib.sha256(f"tokenfoundry-vocab-{FORMAT}\n{identity}".encode()).hexdigest()


def load(identity: str | None) -> dict[str, np.ndarray] | None:
    """The stored facts for ``identity``, or None (no identity, caching off, missing, unreadable)."""
    d = cache_dir()
    if identity is None or d is None:
        return None
    path = d / f"{cache_key(identity)}.safetensors"
    if not path.is_file():
        return None
    try:
        from safetensors.numpy import load_file

        data = load_file(str(path))
    except Exception:  # noqa: BLE001 - a damaged cache file is recomputed, never trusted
        return None
    if set(data) != set(KEYS):
        return None
    return {"token_len": data["token_len"].astype(np.int32, copy=False),
            "token_hash": data["token_hash"].astype(np.uint64, copy=False),
            "special": data["special"].astype(bool),
            "byte_fallback": data["byte_fallback"].astype(bool),
            "unreachable": data["unreachable"].astype(np.int64, copy=False),
            "partial_utf8": data["partial_utf8"].astype(np.int64, copy=False)}


def save(identity: str | None, facts: dict[str, np.ndarray]) -> Path | None:
    """Store ``facts`` (the ``KEYS`` arrays) atomically; returns the path, None if not stored."""
    d = cache_dir()
    if identity is None or d is None:
        return None
    from safetensors.numpy import save_file

    arrays = {"token_len": np.ascontiguousarray(facts["token_len"], dtype=np.int32),
              "token_hash": np.ascontiguousarray(facts["token_hash"], dtype=np.uint64),
              "special": np.ascontiguousarray(facts["special"], dtype=np.uint8),
              "byte_fallback": np.ascontiguousarray(facts["byte_fallback"], dtype=np.uint8),
              "unreachable": np.ascontiguousarray(facts["unreachable"], dtype=np.int64),
              "partial_utf8": np.asarray([int(facts["partial_utf8"])], dtype=np.int64)}
    path = d / f"{cache_key(identity)}.safetensors"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        d.mkdir(parents=True, exist_ok=True)
        save_file(arrays, str(tmp), metadata={"identity": identity[:200], "format": str(FORMAT)})
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache directory only costs the next run time
        tmp.unlink(missing_ok=True)
        return None
    return path
