"""Time and peak RSS of the WECHSEL / CW2V / FOCUS initialisations on real data (2 cores).

    python benchmarks/extend_inits.py --text uk.txt --base-tokenizer base/tokenizer.json \
        --embeddings E.npy --new-tokens 4000 --method wechsel --out /tmp/inits_bench

The extension stage's own merge learner lives in tasks/extend (helper "extend"); to time the
initialisations before it exists this script learns a *stand-in* list of new merges the same way
(continue BPE on the base tokenizer's segmentation, pairs with non-ASCII bytes only). The stand-in
is benchmark-only code. ``E.npy`` is SmolLM2's token_embd (dequantised from the GGUF with ``gguf``).
Each method runs in its own process so its peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import resource
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np


def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: printable stand-in char -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def stand_in_extension(text_path: Path, base_json: Path, n_new: int, out: Path) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base_json))
    j = json.loads(base_json.read_text())
    vocab: dict[str, int] = j["model"]["vocab"]
    inv = {i: s for s, i in vocab.items()}
    dec = byte_decoder()
    tb = {i: bytes(dec[c] for c in s) for i, s in inv.items() if all(c in dec for c in s)}
    counts: Counter = Counter()
    for line in text_path.read_text(encoding="utf-8").splitlines():
        for w, _ in tok.pre_tokenizer.pre_tokenize_str(line):
            counts[w] += 1
    words, freq = [], []
    for w, c in counts.items():
        words.append([t.id for t in tok.model.tokenize(w)])
        freq.append(c)
    pair_count: dict = defaultdict(int)
    where: dict = defaultdict(set)
    for wi, ids in enumerate(words):
        for a, b in zip(ids, ids[1:]):
            pair_count[(a, b)] += freq[wi]
            where[(a, b)].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    leaves = {i: [i] for i in inv}
    merges, new = [], []
    nxt = len(vocab)
    while len(new) < n_new and heap:
        c, p = heapq.heappop(heap)
        if -c != pair_count.get(p, 0) or -c <= 0:
            continue
        a, b = p
        bts = tb[a] + tb[b]
        if max(bts) < 0x80:  # script filter: a new token must carry non-ASCII bytes
            pair_count[p] = 0
            continue
        nid = nxt
        nxt += 1
        inv[nid], tb[nid], leaves[nid] = inv[a] + inv[b], bts, leaves[a] + leaves[b]
        merges.append([inv[a], inv[b]])
        new.append(nid)
        touched = set()
        for wi in list(where[p]):
            ids, f = words[wi], freq[wi]
            for x, y in zip(ids, ids[1:]):
                pair_count[(x, y)] -= f
                touched.add((x, y))
            out_ids, k = [], 0
            while k < len(ids):
                if k + 1 < len(ids) and ids[k] == a and ids[k + 1] == b:
                    out_ids.append(nid)
                    k += 2
                else:
                    out_ids.append(ids[k])
                    k += 1
            words[wi] = out_ids
            for x, y in zip(out_ids, out_ids[1:]):
                pair_count[(x, y)] += f
                where[(x, y)].add(wi)
                touched.add((x, y))
        for q in touched:
            if pair_count[q] > 0:
                heapq.heappush(heap, (-pair_count[q], q))
    for nid in new:
        vocab[inv[nid]] = nid
    j["model"]["merges"] = j["model"]["merges"] + merges
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False))
    info = {"new_tokens": [inv[i] for i in new], "new_token_bytes": [tb[i].hex() for i in new],
            "leaves": [leaves[i] for i in new]}
    (out / "stand_in.json").write_text(json.dumps(info))
    return info


def context(args, info):
    from tokenfoundry.tasks.extend.init import InitContext
    j = json.loads(Path(args.base_tokenizer).read_text())
    vocab = j["model"]["vocab"]
    old = [None] * len(vocab)
    for s, i in vocab.items():
        old[i] = s
    dec = byte_decoder()
    old_b = [bytes(dec[c] for c in s) if all(c in dec for c in s) else s.encode() for s in old]
    E = np.load(args.embeddings)
    lines = Path(args.text).read_text(encoding="utf-8").splitlines()
    return InitContext(
        embeddings=E, output_embeddings=None, old_tokens=old, old_token_bytes=old_b,
        new_tokens=info["new_tokens"], new_token_bytes=[bytes.fromhex(h) for h in
                                                        info["new_token_bytes"]],
        leaves=info["leaves"], target_texts=lambda: iter(lines),
        tokenizer_path=Path(args.out) / "tokenizer.json",
        base_tokenizer_path=Path(args.base_tokenizer), init_std=0.02, seed=args.seed,
        params=dict(kv.split("=", 1) for kv in args.param))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--base-tokenizer", required=True)
    ap.add_argument("--embeddings", required=True)
    ap.add_argument("--new-tokens", type=int, default=4000)
    ap.add_argument("--method", choices=["wechsel", "cw2v", "cw2v-fvt", "focus", "none"],
                    default="none")
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-rows", help="write the new rows to this .npy file")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    stand_in = Path(args.out) / "stand_in.json"
    if stand_in.exists():
        info = json.loads(stand_in.read_text())
    else:
        t = time.perf_counter()
        info = stand_in_extension(Path(args.text), Path(args.base_tokenizer), args.new_tokens,
                                  Path(args.out))
        print(f"stand-in merges: {len(info['new_tokens'])} in {time.perf_counter() - t:.1f} s")
    if args.method == "none":
        return
    from tokenfoundry.tasks.extend.init import initialise
    ctx = context(args, info)
    t, cpu = time.perf_counter(), time.process_time()
    res = initialise(args.method, ctx)
    sec, cpu = time.perf_counter() - t, time.process_time() - cpu
    if args.save_rows:
        np.save(args.save_rows, res.rows)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(json.dumps({"method": args.method, "seconds": round(sec, 1),
                      "cpu_seconds": round(cpu, 1), "load_avg_1min": os.getloadavg()[0],
                      "peak_rss_gb": round(rss, 2), "fallbacks": res.fallbacks,
                      "details": res.details}, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
