"""Evaluate throughput: every metric together vs a bare ``encode_batch`` of the same text.

Ours: ``tasks.evaluate.core.measure`` (encode + every text metric: bytes/chars per token,
fertility, continued words, exact round trip by ``decode_batch``, vocabulary utilisation, Rényi
efficiency, token lengths, UNK/byte-fallback rates, never-produced tokens; on parallel text also
the token premium and parity). "first": a fresh adapter, so it includes the vocabulary checks
that do not depend on the text (every token's bytes; the unreachable-token check encodes every
token's own string: ~1 s for a 200k vocabulary); "again": the same adapter on the same text
(what every further text of an evaluation costs). Baseline: the same tokenizer's own batch
encode of all the documents in one call, in the same run. Ratio = median(ours) /
median(baseline) over ``--repeats`` (>= 3). Ceiling (issue 14): every metric together <= 3x the
bare encode for each reference tokenizer.

Texts: the licence corpus of the legal benchmark (/usr/share/common-licenses and every
package's copyright file, exact duplicates removed) and the held-out parallel gettext segments
of the multilingual benchmark (benchmarks/quality.py builds both). The text statistics (words,
offsets) are computed once per text and shared by every tokenizer; reported separately.

Run: ``python benchmarks/evaluate_throughput.py [--repeats 5] [--text legal|parallel]
[--scale N]`` (``--scale 10``: the documents ten times, where the vocabulary checks amortise).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

REFERENCES = ("o200k", "cl100k", "llama3", "qwen3", "gpt2")


def bare(ad, docs: list[str]) -> None:
    """The tokenizer's own batch encode of all documents in one call, every core."""
    if ad.kind == "quicktok":
        ad.enc.encode_batch(docs, os.cpu_count() or 1, False)
    elif ad.kind == "hf":
        ad.tok.encode_batch_fast(docs, add_special_tokens=False)
    else:
        ad.sp.encode(docs, num_threads=os.cpu_count() or 1)


def texts(work: Path) -> list[tuple[str, list[str], tuple | None]]:
    """(name, docs, parallel (seg, lang, text) or None) for the legal and multilingual texts."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import quality  # the benchmarks' data builders

    from tokenfoundry.tasks.evaluate.parallel import read_parallel

    corpus, _ = quality.legal_data(work / "legal", 0.1)
    legal = pq.read_table(corpus, columns=["text"]).column("text").to_pylist()
    _, held = quality.multilingual_data(work / "ml", 0.1)
    par = read_parallel(held)
    return [("legal", legal, None), ("parallel", par[2], par)]


def run(work: Path, candidates: dict[str, str], repeats: int = 5, only: str | None = None,
        scale: int = 1) -> dict:
    from tokenfoundry.schemas.evaluate import EvaluateSpec
    from tokenfoundry.tasks.evaluate import metrics as M
    from tokenfoundry.tasks.evaluate.adapters import load_tokenizer
    from tokenfoundry.tasks.evaluate.core import measure, measure_parallel
    from tokenfoundry.tasks.evaluate.parallel import segment_codes

    repeats = max(3, repeats)
    sources = {**candidates, **{r: r for r in REFERENCES}}
    out: dict = {"repeats": repeats}
    for name, docs, par in texts(work):
        if only and name != only:
            continue
        if scale > 1:  # the same documents N times: the vocabulary checks amortise
            docs, par = docs * scale, None if par is None else tuple(x * scale for x in par)
            name = f"{name} x{scale}"
        nbytes = sum(len(d.encode("utf-8")) for d in docs)
        t0 = time.perf_counter()
        pool = M.build_pool(docs, par[1] if par else None)
        codes = segment_codes(par[0], par[1]) if par else None
        stats_s = time.perf_counter() - t0
        spec = EvaluateSpec(tokenizers=["gpt2"], texts=["-"], references=[])
        print(f"[throughput] {name}: {len(docs):,} documents, {nbytes / 1e6:.1f} MB; text "
              f"statistics (once, shared) {stats_s:.2f} s; median of {repeats}")
        print(f"  {'tokenizer':16s} {'bare s':>7s} {'first s':>8s} {'ratio':>6s} {'again s':>8s} "
              f"{'ratio':>6s}")
        res: dict = {"docs": len(docs), "mb": nbytes / 1e6, "text_stats_s": stats_s}

        def ours(ad) -> float:
            t = time.perf_counter()
            m = measure(ad, pool, spec)
            if par is not None:
                measure_parallel(ad, par, spec, counts=m.doc_tokens, codes=codes)
            return time.perf_counter() - t

        for tname, src in sources.items():
            bares, first, again = [], [], []
            for _ in range(repeats):
                ad = load_tokenizer(src)
                t = time.perf_counter()
                bare(ad, docs)
                bares.append(time.perf_counter() - t)
                ad = load_tokenizer(src)
                first.append(ours(ad))
                again.append(ours(ad))
            b, f, a = (statistics.median(x) for x in (bares, first, again))
            res[tname] = {"bare_s": b, "first_s": f, "first_ratio": f / b, "again_s": a,
                          "again_ratio": a / b}
            print(f"  {tname:16s} {b:7.3f} {f:8.3f} {f / b:5.2f}x {a:8.3f} {a / b:5.2f}x")
        out[name] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/tokenfoundry-bench-quality",
                    help="work directory of benchmarks/quality.py (texts, trained tokenizers)")
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=PATH",
                    help="a trained tokenizer to include (repeatable)")
    ap.add_argument("--repeats", type=int, default=5, help="repetitions (>= 3); medians")
    ap.add_argument("--text", choices=["legal", "parallel"], help="only this text")
    ap.add_argument("--scale", type=int, default=1, help="repeat the text's documents N times")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    cands = dict(c.split("=", 1) for c in args.candidate)
    res = run(Path(args.work), cands, args.repeats, args.text, args.scale)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
