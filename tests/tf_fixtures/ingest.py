"""Real-text inputs for the ingest tests (licences and gettext catalogs of this machine)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

LICENCES = Path("/usr/share/common-licenses")
LOCALE = Path("/usr/share/locale")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path}")
    return path


def licence_paragraphs(names=("GPL-3", "Apache-2.0", "MPL-2.0")) -> list[str]:
    """Blank-line separated paragraphs of real licences (a few hundred)."""
    out = []
    for n in names:
        text = need(LICENCES / n).read_text(encoding="utf-8")
        out += [p.strip() for p in text.split("\n\n") if p.strip()]
    return out


def write_jsonl(path: Path, texts: list[str], compress: str | None = None) -> Path:
    lines = b"".join(json.dumps({"id": f"p{i}", "text": t}).encode() + b"\n"
                     for i, t in enumerate(texts))
    if compress == "gzip":
        lines = gzip.compress(lines)
    elif compress == "zstd":  # a streaming writer: one block per 16 KiB, as log shippers do
        cobj = zstandard.ZstdCompressor().compressobj()
        parts = []
        for i in range(0, len(lines), 16384):
            parts.append(cobj.compress(lines[i:i + 16384]))
            parts.append(cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
        parts.append(cobj.flush())
        lines = b"".join(parts)
    path.write_bytes(lines)
    return path


def write_csv(path: Path, texts: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "body", "lang"])
        for i, t in enumerate(texts):
            w.writerow([f"c{i}", t, "en"])
    return path


def write_parquet(path: Path, texts: list[str], field: str = "text") -> Path:
    pq.write_table(pa.table({"id": list(range(len(texts))), field: texts}), path,
                   row_group_size=50)
    return path
