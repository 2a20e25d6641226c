"""Ingest throughput and memory, against a bare baseline measured in the same run.

Input: JSONL built from real text on this machine - licence and copyright files
(/usr/share/common-licenses, /usr/share/doc/*/copyright) cut into paragraph groups, and gettext
catalog messages (/usr/share/locale/*/LC_MESSAGES/*.mo, many languages) grouped per catalog -
shuffled, with distinct ids, repeated until the size is reached.

1. Throughput on >= 200 MB: baseline = ``pyarrow.json.read_json`` + ``pq.write_table(zstd)`` of
   the same file (multi-threaded C++, no per-record work); ours = ``tokenfoundry ingest`` core
   (decode, NFC, control chars, length/quality filters, xxh3 hashes, Parquet shards, rejects,
   manifest) with language id off (default worker threads, and 1 thread) and on. Every line
   goes through the stdlib's json (pyarrow's reader is the baseline only: it segfaults on
   deeply nested lines, so untrusted input never reaches it). Runs are interleaved and the best
   of ``--repeat`` kept, and CPU seconds are printed too, because other work on a shared
   machine slows both sides.
2. Peak RSS of a child process ingesting a >= 1 GB file (bound: 1 GB), polled every 20 ms
   with psutil (the process tree summed, and its largest process).
3. Peak RSS of a child process ingesting a .jsonl.gz holding one ``--huge-mb`` line (bound:
   1 GB whatever the line length: the line is skipped to its end as ``too_long``).

Run: ``python benchmarks/ingest.py [--mb 200] [--rss-gb 1.0] [--huge-mb 1024] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import glob
import gzip
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


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its reaped children (worker processes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def baseline(src: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of pyarrow read_json + write_table(zstd)."""
    c, t = _cpu(), time.perf_counter()
    table = pj.read_json(src)
    pq.write_table(table, out, compression="zstd")
    return time.perf_counter() - t, _cpu() - c


def ours(src: Path, ws: Path, lang_id: bool, workers: int | None = None
         ) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds, result) of the ingest core on ``src`` into a fresh workspace."""
    from tokenfoundry.schemas.ingest import IngestSpec
    from tokenfoundry.storage.workspace import Workspace
    from tokenfoundry.tasks.ingest.core import ingest

    if ws.exists():
        shutil.rmtree(ws)
    spec = IngestSpec(corpus="bench", sources=[str(src)], lang_id=lang_id)
    c, t = _cpu(), time.perf_counter()
    r = ingest(Workspace(ws), spec, workers=workers)
    return time.perf_counter() - t, _cpu() - c, r.model_dump(mode="json")


CHILD = """
import sys
from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.ingest.core import ingest
r = ingest(Workspace(sys.argv[1]), IngestSpec(corpus="rss", sources=[sys.argv[2]], lang_id=False))
print(r.read, r.kept, r.rejected)
"""


def child_peak_rss(src: Path, ws: Path) -> tuple[float, float, float, str]:
    """(peak RSS MiB of the ingest process tree - the child plus its worker processes, summed -,
    peak RSS MiB of its largest single process, seconds, output); psutil polls every 20 ms."""
    import psutil

    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(ws), str(src)],
                         stdout=subprocess.PIPE, text=True)
    proc = psutil.Process(p.pid)
    peak = single = 0
    while p.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            break
        total = 0
        for q in tree:
            try:
                rss = q.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            single = max(single, rss)
        peak = max(peak, total)
        time.sleep(0.02)
    out = p.stdout.read().strip()
    p.wait()
    if p.returncode != 0:
        raise SystemExit(f"the ingest child failed with exit code {p.returncode}")
    return peak / 2**20, single / 2**20, time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="throughput input size (MB)")
    ap.add_argument("--rss-gb", type=float, default=1.0, help="memory test input size (GB); 0 skips")
    ap.add_argument("--huge-mb", type=int, default=1024,
                    help="length of the one-line .jsonl.gz (MB); 0 skips")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--skip-lang-id", action="store_true", help="skip the language-id-on run")
    ap.add_argument("--repeat", type=int, default=2, help="interleaved repetitions (best kept)")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="tf-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    docs = real_documents()
    src = work / "bench.jsonl"
    size = build_jsonl(src, docs, int(a.mb * 1e6))
    mb = size / 1e6
    print(f"input: {src} {mb:.1f} MB, {len(docs)} distinct real-text documents per repetition")

    # Interleaved repetitions, best of each: other work on the machine slows both sides.
    best_b = (float("inf"), float("inf"))
    best_o = (float("inf"), float("inf"))
    best_1 = (float("inf"), float("inf"))
    r: dict = {}
    for _ in range(a.repeat):
        best_b = min(best_b, baseline(src, work / "baseline.parquet"))
        w, c, r = ours(src, work / "ws-off", lang_id=False)
        best_o = min(best_o, (w, c))
        w1, c1, _r = ours(src, work / "ws-off", lang_id=False, workers=1)
        best_1 = min(best_1, (w1, c1))
    (tb, cb), (to, co), (t1, c1) = best_b, best_o, best_1
    print(f"baseline pyarrow read_json + write_table(zstd): {tb:6.2f} s  {mb / tb:7.1f} MB/s  "
          f"(CPU {cb:.2f} s)")
    print(f"ours, language id off (default workers):       {to:6.2f} s  {mb / to:7.1f} MB/s  "
          f"(CPU {co:.2f} s; read {r['read']} kept {r['kept']} rejected {r['rejected']})")
    print(f"ours, language id off, 1 thread:               {t1:6.2f} s  {mb / t1:7.1f} MB/s  "
          f"(CPU {c1:.2f} s)")
    print(f"ratio ours/baseline, language id off: wall {tb / to:.2f}x (1 thread {tb / t1:.2f}x), "
          f"CPU {cb / co:.2f}x  (best of {a.repeat})")
    if not a.skip_lang_id:
        tl, cl, r2 = ours(src, work / "ws-on", lang_id=True)
        top = ", ".join(f"{k} {v}" for k, v in list(r2["langs"].items())[:6])
        print(f"ours, language id on:                          {tl:6.2f} s  {mb / tl:7.1f} MB/s  "
              f"wall ratio {tb / tl:.2f}x, CPU {cl:.2f} s  (langs: {top}, ...)")
    shutil.rmtree(work / "ws-off", ignore_errors=True)
    shutil.rmtree(work / "ws-on", ignore_errors=True)

    if a.rss_gb > 0:
        big = work / "big.jsonl"
        bsize = build_jsonl(big, docs, int(a.rss_gb * 1e9))
        peak, single, secs, outp = child_peak_rss(big, work / "ws-rss")
        print(f"peak RSS ingesting {bsize / 1e9:.2f} GB: {peak:.0f} MiB for the whole process "
              f"tree (largest single process {single:.0f} MiB) in {secs:.1f} s "
              f"({bsize / 1e6 / secs:.1f} MB/s; read kept rejected = {outp})  (target < 1024 MiB)")
        big.unlink()
    if a.huge_mb > 0:
        huge = work / "huge.jsonl.gz"
        with gzip.open(huge, "wb", compresslevel=1) as fh:
            fh.write(b'{"text": "')
            block = b"licence " * (1 << 17)
            for _ in range(a.huge_mb):
                fh.write(block)
            fh.write(b'"}\n{"text": "a good line after it"}\n')
        peak, single, secs, outp = child_peak_rss(huge, work / "ws-huge")
        print(f"peak RSS ingesting one {a.huge_mb} MB line (.jsonl.gz): {peak:.0f} MiB in "
              f"{secs:.1f} s (read kept rejected = {outp})  (bound 1024 MiB)")
        huge.unlink()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
