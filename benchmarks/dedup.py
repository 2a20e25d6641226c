"""Dedup benchmark: quality on a labelled real-text set, signature throughput, 1M-doc scale.

    python benchmarks/dedup.py                      # all three parts (10k labelled, 1M scale)
    python benchmarks/dedup.py --scale 0            # skip the 1M-document run
    python benchmarks/dedup.py --labelled-cache /tmp/labelled.parquet   # reuse a generated set

1. Quality. ``dedup_corpus.labelled_set`` (>= 10,000 real documents, ~17% derived by realistic
   edits at known word 5-gram Jaccard, ~4% exact copies) goes through the dedup core at
   thresholds 0.5 ... 0.9. Predicted pairs = pairs of documents in one cluster; true pairs at
   threshold t = pairs whose exact Jaccard >= t. Pairwise precision and recall per threshold.
2. Throughput. MinHash signatures (128 permutations, word 5-grams) of the same documents in the
   same run: ours (``minhash.signatures``, tokenising included) vs datasketch ``MinHash`` with
   ``update_batch`` (its fast path) and with ``update`` per shingle, and rensa's ``RMinHash``
   (Rust) for reference; the baselines' shingling (Python) is timed with them.
3. Scale. N documents (default 1,000,000) of real paragraphs with 10% exact and 10% lightly
   edited copies are written as an ingest snapshot (separate process), then ``tokenfoundry
   dedup`` (exact + near, 2 signature processes) runs in a child process; wall time and peak RSS
   of its whole process tree (sampled every 0.2 s with psutil).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dedup_corpus  # noqa: E402

from tokenfoundry.schemas.dedup import DedupSpec  # noqa: E402
from tokenfoundry.schemas.tables import CORPUS_SCHEMA  # noqa: E402
from tokenfoundry.storage.workspace import Workspace  # noqa: E402
from tokenfoundry.tasks.dedup.core import dedup  # noqa: E402
from tokenfoundry.tasks.dedup.minhash import (  # noqa: E402
    Permutations, jaccard, shingle_set, signatures,
)

THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.9]


def write_snapshot(ws: Workspace, corpus: str, texts_batches, sid: str = "bench-ingest") -> int:
    n = 0
    with ws.writer(corpus, sid, schema=CORPUS_SCHEMA, stage="ingest") as w:
        for texts in texts_batches:
            enc = [t.encode("utf-8") for t in texts]
            w.write(pa.table({
                "doc_id": [xxhash.xxh3_128_hexdigest(f"{corpus}/{n + i}".encode())
                           for i in range(len(texts))],
                "corpus": [corpus] * len(texts), "source": ["benchmark"] * len(texts),
                "source_id": pa.nulls(len(texts), pa.string()),
                "location": [f"doc:{n + i:08d}" for i in range(len(texts))],
                "lang": ["und"] * len(texts), "lang_score": pa.nulls(len(texts), pa.float32()),
                "align_key": pa.nulls(len(texts), pa.string()),
                "text": pa.array(texts, pa.large_string()),
                "n_bytes": [len(e) for e in enc], "n_chars": [len(t) for t in texts],
                "content_hash": [xxhash.xxh3_128_hexdigest(e) for e in enc],
                "flags": pa.nulls(len(texts), pa.list_(pa.string())),
            }, schema=CORPUS_SCHEMA))
            n += len(texts)
        w.commit(counts={"read": n, "kept": n, "rejected": 0})
    ws.set_ref(corpus, "ingest", sid)
    return n


# ---- 1. quality ---------------------------------------------------------------------------------


def load_labelled(n_docs: int, cache: str | None) -> dedup_corpus.LabelledSet:
    """Generate the labelled set, or reuse ``cache`` (Parquet + ``.pairs.json`` beside it)."""
    if cache and os.path.exists(cache) and os.path.exists(cache + ".pairs.json"):
        t = pq.read_table(cache).to_pydict()
        pairs = {(a, b): j for a, b, j in json.loads(Path(cache + ".pairs.json").read_text())}
        return dedup_corpus.LabelledSet(t["text"], t["family"], t["kind"], t["target"], pairs)
    ls = dedup_corpus.labelled_set(n_docs)
    if cache:
        pq.write_table(pa.table({"text": ls.texts, "family": ls.family, "kind": ls.kind,
                                 "target": ls.target}), cache)
        Path(cache + ".pairs.json").write_text(json.dumps([[a, b, j] for (a, b), j in
                                                           ls.pairs.items()]))
    return ls


def cluster_pairs(clusters_path: str, ids: list[str]) -> set[tuple[int, int]]:
    t = pq.read_table(clusters_path)
    pos = {d: i for i, d in enumerate(ids)}
    groups: dict[str, list[int]] = defaultdict(list)
    for d, c in zip(t.column("doc_id").to_pylist(), t.column("cluster_id").to_pylist()):
        groups[c].append(pos[d])
    return {tuple(sorted(p)) for g in groups.values() if len(g) > 1 for p in combinations(g, 2)}


def quality(ls: dedup_corpus.LabelledSet, workdir: str) -> list[dict]:
    ws = Workspace(os.path.join(workdir, "quality"))
    write_snapshot(ws, "labelled", [ls.texts])
    ids = [xxhash.xxh3_128_hexdigest(f"labelled/{i}".encode()) for i in range(len(ls.texts))]
    sets: dict[int, set[int]] = {}

    def exact_j(a: int, b: int) -> float:
        for x in (a, b):
            if x not in sets:
                sets[x] = shingle_set(ls.texts[x])
        return jaccard(sets[a], sets[b])

    rows = []
    for verify in (True, False):
        for t in THRESHOLDS if verify else [0.8]:
            t0 = time.perf_counter()
            r = dedup(ws, DedupSpec(corpus="labelled", threshold=t, verify="jaccard" if verify else "none"), workers=1)
            secs = time.perf_counter() - t0
            pred = cluster_pairs(r.clusters_path, ids)
            truth = ls.truth(t)
            # pairs across families are below 0.3 by construction; check the predicted ones
            cross = [p for p in pred if p not in ls.pairs]
            truth |= {p for p in cross if exact_j(*p) >= t}
            tp = len(pred & truth)
            rows.append({"threshold": t, "verify": verify, "bands": r.bands, "rows": r.rows,
                         "pred_pairs": len(pred), "true_pairs": len(truth), "tp": tp,
                         "precision": tp / len(pred) if pred else 1.0,
                         "recall": tp / len(truth) if truth else 1.0,
                         "exact": r.exact_duplicates, "near": r.near_duplicates,
                         "seconds": round(secs, 2)})
    return rows


# ---- 2. throughput --------------------------------------------------------------------------


def _py_shingles(text: str, n: int = 5) -> list[bytes]:
    w = re.findall(r"\w+", text.lower())
    if len(w) < n:
        return [" ".join(w).encode()] if w else []
    return list({" ".join(w[i:i + n]).encode() for i in range(len(w) - n + 1)})


def throughput(texts: list[str], num_perm: int = 128) -> dict:
    from datasketch import MinHash

    arr = pa.array(texts, pa.large_string())
    perms = Permutations.make(num_perm)
    signatures(arr.slice(0, 100), perms)  # warm-up
    t0 = time.perf_counter()
    for s in range(0, len(arr), 8192):
        signatures(arr.slice(s, 8192), perms)
    ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    for t in texts:
        m = MinHash(num_perm=num_perm)
        m.update_batch(_py_shingles(t))
        m.digest()
    ds_batch = time.perf_counter() - t0

    sub = texts[: max(1, len(texts) // 10)]
    t0 = time.perf_counter()
    for t in sub:
        m = MinHash(num_perm=num_perm)
        for sh in _py_shingles(t):
            m.update(sh)
        m.digest()
    ds_update = (time.perf_counter() - t0) * len(texts) / len(sub)

    rensa_s = None
    try:
        from rensa import RMinHash

        t0 = time.perf_counter()
        for t in texts:
            m = RMinHash(num_perm=num_perm, seed=42)
            m.update([s.decode() for s in _py_shingles(t)])
            m.digest()
        rensa_s = time.perf_counter() - t0
    except ImportError:
        pass
    n = len(texts)
    return {"docs": n, "num_perm": num_perm,
            "ours_docs_per_s": n / ours, "datasketch_update_batch_docs_per_s": n / ds_batch,
            "datasketch_update_docs_per_s": n / ds_update,
            "rensa_docs_per_s": (n / rensa_s) if rensa_s else None,
            "speedup_vs_update_batch": ds_batch / ours, "speedup_vs_update": ds_update / ours,
            "speedup_vs_rensa": (rensa_s / ours) if rensa_s else None}


# ---- 3. scale ---------------------------------------------------------------------------------


def scale_generate(workspace: str, n: int, seed: int = 0) -> None:
    units = dedup_corpus.real_units(seed)
    ws = Workspace(workspace)
    gen = dedup_corpus.scale_docs(n, units, seed)

    def batches():
        while True:
            b = [d for _, d in zip(range(50_000), gen)]
            if not b:
                return
            yield b

    write_snapshot(ws, "scale", batches())


def _tree_rss(p) -> int:
    import psutil

    total = 0
    try:
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def scale(n: int, workdir: str, workers: int) -> dict:
    import psutil

    ws_dir = os.path.join(workdir, "scale")
    ws = Workspace(ws_dir)
    gen_s = 0.0
    if ws.has_snapshot("scale", "bench-ingest") and ws.snapshot("scale", "bench-ingest").rows == n:
        for m in ws.list_snapshots("scale"):  # keep the generated corpus, time dedup afresh
            if m.stage == "dedup":
                ws.fs.rm(ws.snapshot_dir("scale", m.snapshot_id), recursive=True)
    else:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--scale-generate", str(n), "--workspace",
                        ws_dir], check=True)
        gen_s = time.perf_counter() - t0
    cmd = [sys.executable, "-c", "from tokenfoundry.flows.cli import main; main()", "dedup",
           "--corpus", "scale", "--workspace", ws_dir, "--workers", str(workers), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(ps))
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    stop.set()
    th.join()
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"dedup failed with exit code {proc.returncode}")
    res = json.loads(out)
    return {"docs": n, "generate_seconds": round(gen_s, 1), "dedup_seconds": round(secs, 1),
            "peak_rss_mb": round(peak / 2**20), "workers": workers,
            "exact_duplicates": res["exact_duplicates"], "near_duplicates": res["near_duplicates"],
            "kept": res["kept"], "docs_per_s": round(n / secs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docs", type=int, default=10_000, help="labelled set size")
    ap.add_argument("--labelled-cache", help="Parquet file to reuse/keep the labelled set")
    ap.add_argument("--scale", type=int, default=1_000_000, help="0 skips the scale run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--scale-generate", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workspace", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scale_generate:
        scale_generate(args.workspace, args.scale_generate)
        return
    workdir = args.workdir or tempfile.mkdtemp(prefix="tokenfoundry-bench-dedup-")
    report: dict = {}
    if not args.skip_quality:
        t0 = time.perf_counter()
        ls = load_labelled(args.docs, args.labelled_cache)
        kinds = {k: ls.kind.count(k) for k in ("base", "near", "exact")}
        print(f"labelled set: {len(ls.texts)} docs {kinds} ({time.perf_counter() - t0:.0f} s); "
              f"family pairs {len(ls.pairs)}, with J >= 0.8: {len(ls.truth(0.8))}")
        rows = quality(ls, workdir)
        report["quality"] = rows
        print("\nthreshold verify bands x rows  pred  true    TP  precision  recall  seconds")
        for r in rows:
            print(f"  {r['threshold']:.1f}     {'yes' if r['verify'] else 'no ':3}   "
                  f"{r['bands']:3d} x {r['rows']:2d}  {r['pred_pairs']:5d} {r['true_pairs']:5d} "
                  f"{r['tp']:5d}    {r['precision']:.4f}  {r['recall']:.4f}  {r['seconds']:6.1f}")
        tp = throughput(ls.texts)
        report["throughput"] = tp
        print(f"\nsignatures, {tp['docs']} docs, {tp['num_perm']} permutations:")
        print(f"  ours (numpy, vectorised)       {tp['ours_docs_per_s']:10.0f} docs/s")
        print(f"  datasketch update_batch        {tp['datasketch_update_batch_docs_per_s']:10.0f} "
              f"docs/s   ours x{tp['speedup_vs_update_batch']:.1f}")
        print(f"  datasketch update per shingle  {tp['datasketch_update_docs_per_s']:10.0f} "
              f"docs/s   ours x{tp['speedup_vs_update']:.1f}")
        if tp["rensa_docs_per_s"]:
            print(f"  rensa RMinHash (Rust)          {tp['rensa_docs_per_s']:10.0f} docs/s   "
                  f"ours x{tp['speedup_vs_rensa']:.1f}")
    if args.scale:
        sc = scale(args.scale, workdir, args.workers)
        report["scale"] = sc
        print(f"\nscale: {sc['docs']:,} docs, exact + near, {sc['workers']} signature processes: "
              f"{sc['dedup_seconds']} s ({sc['docs_per_s']:,} docs/s), peak RSS "
              f"{sc['peak_rss_mb']} MB (process tree); exact {sc['exact_duplicates']:,}, "
              f"near {sc['near_duplicates']:,}, kept {sc['kept']:,}; corpus generation "
              f"{sc['generate_seconds']} s")
    print("\n" + json.dumps(report, default=float))


if __name__ == "__main__":
    main()
