"""Code and library versions recorded in manifests and reports."""

from __future__ import annotations

import datetime as _dt
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

_LIBRARIES = (
    "tokenfoundry", "pyarrow", "duckdb", "polars", "tokenizers", "sentencepiece",
    "transformers", "prefect", "py3langid", "rensa", "xxhash", "numpy",
)


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def code_version() -> str:
    """``tokenfoundry==X`` plus the git commit when running from a checkout."""
    try:
        version = metadata.version("tokenfoundry")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"{version}+g{sha}" if sha else version
    except (OSError, subprocess.SubprocessError):
        return version


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
