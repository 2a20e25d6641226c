"""Ingest throughput and memory, against a bare baseline measured in the same run.

Input: JSONL built from real text on this machine - licence and copyright files
(/usr/share/common-licenses, /usr/share/doc/*/copyright) cut into paragraph groups, and gettext
catalog messages (/usr/share/locale/*/LC_MESSAGES/*.mo, many languages) grouped per catalog -
shuffled, with distinct ids, repeated until the size is reached.

1. Throughput on >= 200 MB: baseline = ``pyarrow.json.read_json`` + ``pq.write_table(zstd)`` of
   the same file (multi-threaded C++, no per-record work); ours = ``tokenfoundry ingest`` core
   (decode, NFC, control chars, length/quality filters, xxh3 hashes, Parquet shards, rejects,
   manifest) with language id off and on. Target: ours/baseline >= 0.4 with language id off.
2. Peak RSS of a child process ingesting a >= 1 GB file (target < 1 GB), measured with
   ``resource.getrusage(RUSAGE_CHILDREN)``.

Run: ``python benchmarks/ingest.py [--mb 200] [--rss-gb 1.0] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.json as pj
import pyarrow.parquet as pq


def real_documents(seed: int = 0) -> list[str]:
    """Documents of real text: licence/copyright paragraph groups and catalog message groups."""
    rng = random.Random(seed)
    docs: list[str] = []
    files = sorted(glob.glob("/usr/share/common-licenses/*")) + \
        sorted(glob.glob("/usr/share/doc/*/copyright"))
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError, IsADirectoryError):
            continue
        paras = [p for p in text.split("\n\n") if p.strip()]
        i = 0
        while i < len(paras):
            k = rng.randint(1, 8)
            docs.append("\n\n".join(paras[i:i + k]))
            i += k
    from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
    from tokenfoundry.tasks.ingest.readers import read_unit

    mos = sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo"))
    rng.shuffle(mos)
    spec = IngestSpec(corpus="b", sources=["x"])
    for f in mos[:600]:
        unit = IngestUnit(name="00000-0000", path=f, format="mo", size=os.path.getsize(f))
        msgs = [t for b, _ in read_unit(unit, spec) for t in b.text]
        i = 0
        while i < len(msgs):
            k = rng.randint(5, 30)
            docs.append("\n".join(msgs[i:i + k]))
            i += k
    rng.shuffle(docs)
    return docs


def build_jsonl(path: Path, docs: list[str], target_bytes: int) -> int:
    written = 0
    rep = 0
    with open(path, "wb") as fh:
        while written < target_bytes:
            lines = b"".join(json.dumps({"id": f"{rep}-{i}", "text": d}, ensure_ascii=False)
                             .encode() + b"\n" for i, d in enumerate(docs))
            fh.write(lines)
            written += len(lines)
            rep += 1
    return written


def baseline(src: Path, out: Path) -> float:
    t = time.perf_counter()
    table = pj.read_json(src)
    pq.write_table(table, out, compression="zstd")
    return time.perf_counter() - t


def ours(src: Path, ws: Path, lang_id: bool) -> tuple[float, dict]:
    from tokenfoundry.schemas.ingest import IngestSpec
    from tokenfoundry.storage.workspace import Workspace
    from tokenfoundry.tasks.ingest.core import ingest

    if ws.exists():
        shutil.rmtree(ws)
    spec = IngestSpec(corpus="bench", sources=[str(src)], lang_id=lang_id)
    t = time.perf_counter()
    r = ingest(Workspace(ws), spec)
    return time.perf_counter() - t, r.model_dump(mode="json")


CHILD = """
import sys
from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.ingest.core import ingest
r = ingest(Workspace(sys.argv[1]), IngestSpec(corpus="rss", sources=[sys.argv[2]], lang_id=False))
print(r.read, r.kept, r.rejected)
"""


def child_peak_rss(src: Path, ws: Path) -> tuple[float, float, str]:
    """(peak RSS MB of a child ingesting ``src``, seconds, its output)."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, str(ws), str(src)], capture_output=True,
                       text=True, check=True)
    secs = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak_kb / 1024, secs, p.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="throughput input size (MB)")
    ap.add_argument("--rss-gb", type=float, default=1.0, help="memory test input size (GB); 0 skips")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--skip-lang-id", action="store_true", help="skip the language-id-on run")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="tf-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    docs = real_documents()
    src = work / "bench.jsonl"
    size = build_jsonl(src, docs, int(a.mb * 1e6))
    mb = size / 1e6
    print(f"input: {src} {mb:.1f} MB, {len(docs)} distinct real-text documents per repetition")

    tb = baseline(src, work / "baseline.parquet")
    print(f"baseline pyarrow read_json + write_table(zstd): {tb:6.2f} s  {mb / tb:7.1f} MB/s")
    to, r = ours(src, work / "ws-off", lang_id=False)
    print(f"ours, language id off:                         {to:6.2f} s  {mb / to:7.1f} MB/s  "
          f"(read {r['read']} kept {r['kept']} rejected {r['rejected']})")
    print(f"ratio ours/baseline (language id off): {tb / to:.2f}x  (target >= 0.40x)")
    if not a.skip_lang_id:
        tl, r2 = ours(src, work / "ws-on", lang_id=True)
        top = ", ".join(f"{k} {v}" for k, v in list(r2["langs"].items())[:6])
        print(f"ours, language id on:                          {tl:6.2f} s  {mb / tl:7.1f} MB/s  "
              f"ratio {tb / tl:.2f}x  (langs: {top}, ...)")
    shutil.rmtree(work / "ws-off", ignore_errors=True)
    shutil.rmtree(work / "ws-on", ignore_errors=True)

    if a.rss_gb > 0:
        big = work / "big.jsonl"
        bsize = build_jsonl(big, docs, int(a.rss_gb * 1e9))
        peak, secs, outp = child_peak_rss(big, work / "ws-rss")
        print(f"peak RSS ingesting {bsize / 1e9:.2f} GB: {peak:.0f} MB in {secs:.1f} s "
              f"({bsize / 1e6 / secs:.1f} MB/s; read kept rejected = {outp})  (target < 1024 MB)")
        big.unlink()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
