"""Quality benchmark: our trained tokenizers vs reference tokenizers on held-out text.

Three measurements, each ours vs a named baseline measured in the same run:

1. legal: the examples' legal spec (examples/legal.yaml: licences + every package's copyright
   file, split into paragraphs, near-duplicates removed, SuperBPE 64,000), stage by stage through
   the pipeline's cores, and the same spec with plain BPE as an ablation. Evaluated on the
   held-out paragraphs of its train corpora (``storage.splits.is_heldout(doc_id, 0.05)``, never
   trained on). Target: >= 10% fewer tokens than o200k_base and than Llama-3 (NSL <= 0.90).
2. multilingual: a byte-level BPE (<= 64k vocab) trained on gettext catalogs of 27 languages +
   English, temperature-sampled over languages (p_i ∝ n_i^0.3). Segments are split by alignment
   key (seg_id): held-out segments in every language are removed from the training data, and
   their aligned translations are the parallel evaluation set. Target: lower parity
   (max/min token premium) than o200k_base, cl100k_base and Llama-3.
3. throughput: every metric derived by the evaluator vs bare ``encode_batch`` of the same text
   (same tokenizer, same run): benchmarks/evaluate_throughput.py. Ceiling: <= 3x.

Run: ``python benchmarks/quality.py`` (about 10 minutes on 2 cores; ``--only legal`` etc.).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from tokenfoundry.schemas.evaluate import EvaluateSpec
from tokenfoundry.storage.splits import is_heldout
from tokenfoundry.tasks.evaluate.core import evaluate

ML_LANGS = ["fr", "de", "es", "it", "sv", "uk", "ru", "zh_CN", "tr", "id", "pl", "ja", "ko", "vi",
            "sr", "ca", "nl", "cs", "pt_BR", "fi", "bg", "el", "ka", "he", "ta", "mr", "pa"]


def _train(work: Path, name: str, corpus: Path, **kw) -> Path:
    """Train with our train core; fall back to HF tokenizers with the same settings."""
    out = work / name
    if (out / "tokenizer.json").is_file():
        return out / "tokenizer.json"
    try:
        from tokenfoundry.schemas.train import TrainSpec
        from tokenfoundry.storage.workspace import Workspace
        from tokenfoundry.tasks.train.core import train
    except ImportError:
        return _train_hf(out, corpus, kw["vocab_size"])
    spec = TrainSpec(corpora=[str(corpus)], **kw)
    t0 = time.perf_counter()
    res = train(Workspace(work / "ws"), spec, str(out))
    print(f"  trained {name}: vocab {res.vocab_size}, {res.bytes / 1e6:.1f} MB fed, "
          f"held out {res.heldout_docs} docs, {time.perf_counter() - t0:.0f} s")
    return Path(res.tokenizer_json or out / "tokenizer.json")


def _train_hf(out: Path, corpus: Path, vocab_size: int) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = pq.read_table(corpus, columns=["text"]).column("text").to_pylist()
    tok.train_from_iterator(texts, trainer=trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    return out / "tokenizer.json"


# ---------------------------------------------------------------------------------------------


def legal_data(work: Path, fraction: float) -> tuple[Path, Path]:
    paths = sorted(p for p in Path("/usr/share/common-licenses").iterdir() if p.is_file())
    paths += sorted(Path("/usr/share/doc").glob("*/copyright"))
    seen: set[str] = set()
    rows = []
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        h = xxhash.xxh3_128_hexdigest(text.encode())
        if not text.strip() or h in seen:
            continue
        seen.add(h)
        rows.append({"doc_id": str(p), "lang": "en", "text": text})
    work.mkdir(parents=True, exist_ok=True)
    corpus, held = work / "legal.parquet", work / "legal_heldout.parquet"
    pq.write_table(pa.Table.from_pylist(rows), corpus)
    pq.write_table(pa.Table.from_pylist([r for r in rows if is_heldout(r["doc_id"], fraction)]),
                   held)
    return corpus, held


def bench_legal(work: Path, spec_path: Path, ngram: int = 8) -> dict:
    """The examples' legal pipeline spec, stage by stage through the same cores the pipeline
    calls (ingest -> dedup -> train -> evaluate on the held-out paragraphs of the train corpora,
    never seen by the trainer), plus an ablation: the same spec with plain BPE."""
    from tokenfoundry.schemas.pipeline import load_pipeline
    from tokenfoundry.storage.workspace import Workspace
    from tokenfoundry.tasks.dedup.core import dedup
    from tokenfoundry.tasks.ingest.core import ingest
    from tokenfoundry.tasks.train.core import train

    pipe = load_pipeline(str(spec_path))
    ws = Workspace(work / "legal-spec" / "ws")
    print(f"[legal] {spec_path}: {pipe.train.model} {pipe.train.vocab_size:,}, held-out fraction "
          f"{pipe.train.holdout_fraction}")
    for c in pipe.corpora:
        t0 = time.perf_counter()
        ing = ingest(ws, c)
        ded = dedup(ws, pipe.dedup_spec(c.corpus, snapshot=ing.snapshot_id))
        ws.set_ref(c.corpus, "latest", ded.snapshot_id)
        print(f"  {c.corpus}: {ing.kept:,} paragraphs ingested, {ded.kept:,} after dedup "
              f"(threshold {pipe.dedup.threshold}), {time.perf_counter() - t0:.0f} s")
    toks: dict[str, Path] = {}
    for label, spec in (("superbpe", pipe.train),
                        ("bpe", pipe.train.model_copy(update={"model": "bpe"}))):
        out = work / "legal-spec" / label
        t0 = time.perf_counter()
        res = train(ws, spec, str(out))
        toks[label] = Path(res.tokenizer_json or out / "tokenizer.json")
        extra = res.extra.get("superbpe") or {}
        print(f"  trained {label}: vocab {res.vocab_size:,}, {res.bytes / 1e6:.1f} MB fed, "
              f"{res.heldout_docs:,} paragraphs held out, {time.perf_counter() - t0:.0f} s"
              + (f"; {extra.get('superword_tokens', 0):,} superword tokens of at most "
                 f"{extra.get('max_token_words')} words" if extra else ""))
    espec = pipe.evaluate_spec(f"legal-superbpe={toks['superbpe']}", ws.uri)
    espec = espec.model_copy(update={
        "tokenizers": [f"legal-superbpe={toks['superbpe']}", f"legal-bpe={toks['bpe']}"],
        "references": ["o200k", "llama3", "cl100k"]})
    res = evaluate(espec, str(work / "legal-spec" / "report"))
    t = res.tokenizers
    held = sum(d.bytes for d in res.datasets)
    out: dict = {"spec": str(spec_path), "heldout_docs": sum(d.docs for d in res.datasets),
                 "heldout_bytes": held, "report": res.report_path,
                 "gates": [{"expr": g.expr, "value": g.value, "passed": g.passed}
                           for g in res.gates]}
    overlap, per_doc = _ngram_overlap(ws, pipe, ngram)
    out[f"heldout_{ngram}gram_overlap"] = overlap
    print(f"  held-out: {out['heldout_docs']:,} paragraphs, {held:,} bytes; "
          f"{overlap:.1%} of their word {ngram}-grams also occur in training paragraphs")
    novel = [{"text": t} for t, o in per_doc if o < 0.2]
    pq.write_table(pa.Table.from_pylist(novel), work / "legal-spec" / "novel.parquet")
    nres = evaluate(espec.model_copy(update={"corpora": [], "texts": [
        str(work / "legal-spec" / "novel.parquet")], "gates": []}),
        str(work / "legal-spec" / "report-novel"))
    nt = nres.tokenizers
    out["novel"] = {"docs": len(novel), "bytes": nres.datasets[0].bytes, **{
        f"{c}_fewer_than_{r}": 1 - nt[c].n_tokens / nt[r].n_tokens
        for c in ("legal-superbpe", "legal-bpe") for r in ("o200k", "llama3")}}
    print(f"  novel held-out paragraphs (>= {ngram} words, < 20% of their word {ngram}-grams seen in training): "
          f"{len(novel)}, {nres.datasets[0].bytes:,} bytes: " + ", ".join(
              f"{c} {out['novel'][f'{c}_fewer_than_o200k']:+.1%} fewer than o200k, "
              f"{out['novel'][f'{c}_fewer_than_llama3']:+.1%} than llama3"
              for c in ("legal-superbpe", "legal-bpe")))
    for cand in ("legal-superbpe", "legal-bpe"):
        m = t[cand]
        r = {"vocab_size": m.vocab_size, "tokens": m.n_tokens,
             "bytes_per_token": m.bytes_per_token, "roundtrip_errors": m.roundtrip_errors,
             "max_token_bytes": int(max(load_len(toks[cand.removeprefix("legal-")])))}
        for ref in ("o200k", "llama3", "cl100k"):
            r[f"fewer_than_{ref}"] = 1 - m.n_tokens / t[ref].n_tokens
        r["target_met"] = r["fewer_than_o200k"] >= 0.10 and r["fewer_than_llama3"] >= 0.10 \
            and m.vocab_size <= 65536
        out[cand] = r
        print(f"    {cand:15s} vocab {m.vocab_size:6,}: {m.n_tokens:8,} tokens "
              f"({m.bytes_per_token:.2f} B/tok) vs o200k {t['o200k'].n_tokens:,} "
              f"({r['fewer_than_o200k']:+.1%} fewer), llama3 {t['llama3'].n_tokens:,} "
              f"({r['fewer_than_llama3']:+.1%} fewer), cl100k {t['cl100k'].n_tokens:,} "
              f"({r['fewer_than_cl100k']:+.1%}) -> target "
              f"{'MET' if r['target_met'] else 'NOT met'}")
    print("  gates of the spec: " + ", ".join(
        f"{g['expr']} ({g['value']:.3f}) {'PASS' if g['passed'] else 'FAIL'}"
        for g in out["gates"]))
    return out


def _ngram_overlap(ws, pipe, n: int) -> tuple[float, list[tuple[str, float]]]:
    """Share of held-out word n-grams that also occur in a training paragraph (how much of the
    held-out text is boilerplate the trainer saw in other words, after near-duplicate removal),
    and each held-out paragraph with its own share."""
    from tokenfoundry.storage.splits import is_heldout as held

    f = pipe.train.holdout_fraction
    train_grams: set[str] = set()
    test: list[tuple[str, list[str]]] = []
    for corpus in pipe.train.corpora:
        snap = ws.resolve(corpus, "latest")
        for batch in snap.iter_batches(columns=["doc_id", "text"]):
            for doc_id, text in zip(batch.column("doc_id").to_pylist(),
                                    batch.column("text").to_pylist()):
                w = text.split()
                grams = [" ".join(w[i:i + n]) for i in range(len(w) - n + 1)]
                if held(doc_id, f):
                    test.append((text, grams))
                else:
                    train_grams.update(grams)
    hits = [sum(g in train_grams for g in grams) for _, grams in test]
    total = sum(len(grams) for _, grams in test)
    per_doc = [(text, h / len(grams) if grams else 1.0)  # under n words: not "novel"
               for (text, grams), h in zip(test, hits)]
    return sum(hits) / max(total, 1), per_doc


def load_len(path: Path) -> list[int]:
    """Byte lengths of a tokenizer's tokens (to show how long superwords get)."""
    from tokenfoundry.tasks.evaluate.adapters import load_tokenizer

    return [int(x) for x in load_tokenizer(str(path)).token_bytes_len]


# ---------------------------------------------------------------------------------------------


def multilingual_data(work: Path, fraction: float) -> tuple[Path, Path]:
    from tokenfoundry.tasks.evaluate.parallel import build_parallel_from_mo

    work.mkdir(parents=True, exist_ok=True)
    corpus, held = work / "ml_train.parquet", work / "ml_heldout_parallel.parquet"
    if corpus.is_file() and held.is_file():
        return corpus, held
    tab = build_parallel_from_mo("/usr/share/locale", langs=ML_LANGS + ["en"])
    seg = tab.column("seg_id").to_pylist()
    hold = np.array([is_heldout(s, fraction) for s in seg])
    train_rows = tab.filter(pa.array(~hold))
    doc_ids = [f"{lg}:{s}" for lg, s in zip(train_rows.column("lang").to_pylist(),
                                             train_rows.column("seg_id").to_pylist())]
    train_tab = pa.table({"doc_id": doc_ids, "lang": train_rows.column("lang"),
                          "text": train_rows.column("text")})
    pq.write_table(train_tab, corpus)
    pq.write_table(tab.filter(pa.array(hold)), held)
    return corpus, held


def bench_multilingual(work: Path, vocab: int, fraction: float = 0.1, alpha: float = 0.3,
                       parity_aware: bool = False) -> dict:
    print(f"[multilingual] building data: {len(ML_LANGS)} languages + en from gettext catalogs")
    corpus, held = multilingual_data(work / "ml", fraction)
    held_tab = pq.read_table(held)
    print(f"  train {pq.read_metadata(corpus).num_rows:,} segments; held-out parallel "
          f"{held_tab.num_rows:,} segments in {len(set(held_tab.column('lang').to_pylist()))} "
          "languages")
    name = f"ml-bpe-{vocab}" + ("-parity" if parity_aware else "")
    kw = dict(model="bpe", vocab_size=vocab, holdout_fraction=0.0, mix_by="lang",
              mix_alpha=alpha, pretokenizer="o200k", min_frequency=2)
    if parity_aware:
        kw["parity_aware"] = True
    tok = _train(work / "ml", name, corpus, **kw)
    spec = EvaluateSpec(tokenizers=[f"multilingual={tok}"], parallel=str(held),
                        references=["o200k", "cl100k", "llama3", "qwen3", "gpt2"],
                        gates=["roundtrip_errors == 0"])
    res = evaluate(spec, str(work / "ml" / f"report-{name}"))
    out: dict = {"languages": len(res.tokenizers["multilingual"].premium),
                 "vocab_size": res.tokenizers["multilingual"].vocab_size}
    for n, m in res.tokenizers.items():
        out[n] = {"parity": m.parity, "premium_max": m.premium_max, "premium_min": m.premium_min,
                  "premium_std": m.premium_std, "bytes_per_token": m.bytes_per_token,
                  "worst": max(m.premium, key=m.premium.get) if m.premium else None}
    ours = out["multilingual"]["parity"]
    out["target_met"] = all(ours < out[r]["parity"] for r in ("o200k", "cl100k", "llama3"))
    out["report"] = res.report_path
    print("  parity (max/min premium) on held-out parallel segments:")
    for n in res.tokenizers:
        o = out[n]
        print(f"    {n:13s} parity {o['parity']:.3f}  max {o['premium_max']:.3f} ({o['worst']})"
              f"  min {o['premium_min']:.3f}  std {o['premium_std']:.3f}")
    print(f"  -> target {'MET' if out['target_met'] else 'NOT met'}")
    return out


# ---------------------------------------------------------------------------------------------


def bench_throughput(work: Path, tokenizer: Path | None, repeats: int = 5) -> dict:
    """Every metric vs bare encode_batch of the same text, per tokenizer, on the legal corpus
    and the held-out parallel segments: benchmarks/evaluate_throughput.py."""
    from evaluate_throughput import run

    return run(work, {"legal-superbpe": str(tokenizer)} if tokenizer else {}, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/tokenfoundry-bench-quality")
    ap.add_argument("--only", default="legal,multilingual,throughput")
    ap.add_argument("--legal-spec", default=str(Path(__file__).resolve().parents[1] / "examples"
                                                / "legal.yaml"),
                    help="pipeline spec whose train section is measured (default: the example)")
    ap.add_argument("--ml-vocab", type=int, default=65536)
    ap.add_argument("--ml-alpha", type=float, default=0.3)
    ap.add_argument("--parity-aware", action="store_true")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    work = Path(args.work)
    only = set(args.only.split(","))
    results: dict = {}
    if "legal" in only:
        results["legal"] = bench_legal(work, Path(args.legal_spec))
    if "multilingual" in only:
        results["multilingual"] = bench_multilingual(work, args.ml_vocab, alpha=args.ml_alpha,
                                                     parity_aware=args.parity_aware)
    if "throughput" in only:
        tok = work / "legal-spec" / "superbpe" / "tokenizer.json"  # the legal run's SuperBPE
        results["throughput"] = bench_throughput(work, tok if tok.is_file() else None)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
