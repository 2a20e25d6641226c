"""Train benchmarks: ours vs the bare trainer, memory under a budget, SuperBPE vs BPE.

1. overhead — ``tokenfoundry train`` from a snapshot vs the bare trainer (HF ``tokenizers`` /
   ``sentencepiece``) fed the same documents from an in-memory Python list, same settings and
   vocabulary size, each timed as a whole process (start-up and imports included; peak RSS of
   that process from ``wait4``). Targets: wall <= 1.10x, peak RSS <= 1.2x the bare trainer's.
   Byte-level BPE 32k and sentencepiece Unigram 32k on >= 100 MB of real text (Python sources
   of this machine's site-packages).
2. memory — a ~2 GB snapshot (real text, repeated under distinct doc ids), ``--max-bytes 500MB``:
   peak RSS must stay under 4 GB.
3. superbpe — SuperBPE vs plain byte-level BPE at the same vocabulary size on English prose
   (licences, copyright files, markdown docs); token counts on the held-out documents.

    python benchmarks/train.py --part all --work /tmp/trainbench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

from tokenfoundry.schemas.tables import CORPUS_SCHEMA
from tokenfoundry.storage.workspace import Workspace

SITE = Path(os.__file__).parent  # the stdlib, with site-packages under it
TF = shutil.which("tokenfoundry") or "tokenfoundry"


def run_process(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` under /usr/bin/time; its wall time and peak RSS (MB).

    Linux carries a parent's peak RSS into a forked child's ``ru_maxrss``, so the child is
    started from the tiny ``time`` process, never straight from this (large) one.
    """
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf.name, *cmd],
                              capture_output=True, text=True, env={**os.environ, **(env or {})})
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        _elapsed, max_kb = tf.read().split()[-2:]
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(int(max_kb) / 1024, 1),
            "stdout": proc.stdout}


def _row(corpus: str, i: int, text: str, source: str, lang: str | None = None) -> dict:
    import xxhash

    doc_id = xxhash.xxh3_128_hexdigest(f"{corpus}\x00{source}\x00{i}".encode())
    return {"doc_id": doc_id, "corpus": corpus, "source": source, "source_id": None,
            "location": f"copy:{i}", "lang": lang, "lang_score": None, "align_key": None,
            "text": text, "n_bytes": len(text.encode()), "n_chars": len(text),
            "content_hash": xxhash.xxh3_128_hexdigest(text.encode()), "flags": []}


def python_files(root: Path = SITE) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if p.is_file())


def write_snapshot_from_files(ws: Workspace, corpus: str, files: list[Path],
                              target_bytes: int | None, lang: str | None = None
                              ) -> tuple[str, int]:
    """Stream files (cycled, each pass with new doc ids) into a snapshot of ~target_bytes
    (None: one pass over the files)."""
    sid = f"bench-{corpus}-{target_bytes}"
    if ws.has_snapshot(corpus, sid):
        return sid, ws.snapshot(corpus, sid).manifest.stats["bytes"]
    total, i, rows = 0, 0, []
    with ws.writer(corpus, sid, schema=CORPUS_SCHEMA, stage="ingest") as w:
        one_pass = target_bytes is None
        target_bytes = target_bytes or 1 << 62
        while total < target_bytes:
            for f in files:
                try:
                    text = f.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                if not text.strip():
                    continue
                rows.append(_row(corpus, i, text, str(f), lang))
                i += 1
                total += len(text.encode())
                if len(rows) >= 2000:
                    w.write(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA))
                    rows = []
                if total >= target_bytes:
                    break
            if one_pass:
                break
        if rows:
            w.write(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA))
        w.commit(counts={"kept": i}, stats={"bytes": total})
    ws.set_ref(corpus, "latest", sid)
    return sid, total


BARE_HF = r'''
import sys, pyarrow.parquet as pq
from tokenizers import Tokenizer, Regex, models, trainers, pre_tokenizers, decoders
paths, regex, vocab, out = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), sys.argv[4]
texts = []
for p in paths:
    texts.extend(pq.read_table(p, columns=["text"]).column("text").to_pylist())
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(regex), behavior="isolated"),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok.decoder = decoders.ByteLevel()
tr = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, show_progress=False,
                         special_tokens=["<|endoftext|>", "<|pad|>"],
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(texts, tr)
tok.save(out)
'''

BARE_SPM = r'''
import sys, io, pyarrow.parquet as pq, sentencepiece as spm
paths, vocab, out, n = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
lines = []
for p in paths:
    for doc in pq.read_table(p, columns=["text"]).column("text").to_pylist():
        lines.extend(l[:4096] for l in doc.split("\n") if l.strip())
m = io.BytesIO()
spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=m, model_type="unigram",
    vocab_size=vocab, character_coverage=0.9995, input_sentence_size=n,
    shuffle_input_sentence=True, max_sentence_length=16384, remove_extra_whitespaces=False,
    hard_vocab_limit=False, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
    user_defined_symbols=["<|endoftext|>", "<|pad|>"], num_threads=2, minloglevel=2)
open(out, "wb").write(m.getvalue())
'''


def overhead(work: Path, mb: int, results: dict) -> None:
    from tokenfoundry.tasks.train.presets import PRESET_REGEX

    ws = Workspace(work / "ws")
    sid, nbytes = write_snapshot_from_files(ws, "code", python_files(), mb * 10**6)
    paths = ",".join(ws.snapshot("code", sid).paths)
    print(f"overhead corpus: {nbytes / 1e6:.1f} MB of Python sources, snapshot {sid}",
          flush=True)
    tf = [TF, "train", "--corpus", "code",
          "--workspace", str(work / "ws"), "--holdout-fraction", "0", "--json"]
    env = {"TOKENIZERS_PARALLELISM": "true"}
    # byte-level BPE 32k
    bare = run_process([sys.executable, "-c", BARE_HF, paths, PRESET_REGEX["cl100k"], "32000",
                        str(work / "bare-bpe.json")], env)
    ours = run_process(tf + ["--model", "bpe", "--vocab-size", "32000", "--out",
                             str(work / "ours-bpe")], env)
    same = (work / "bare-bpe.json").read_bytes() == (work / "ours-bpe" / "tokenizer.json"
                                                     ).read_bytes()
    _ratio(results, "bpe_32k", ours, bare, nbytes, extra={"identical_vocab": _same_vocab(
        work / "bare-bpe.json", work / "ours-bpe" / "tokenizer.json"), "same_bytes": same})
    # sentencepiece unigram 32k
    n = 2_000_000
    bare = run_process([sys.executable, "-c", BARE_SPM, paths, "32000",
                        str(work / "bare-unigram.model"), str(n)], env)
    ours = run_process(tf + ["--model", "unigram", "--backend", "spm", "--vocab-size", "32000",
                             "--input-sentence-size", str(n), "--no-deterministic",
                             "--out", str(work / "ours-unigram")], env)
    _ratio(results, "spm_unigram_32k", ours, bare, nbytes)


def _same_vocab(a: Path, b: Path) -> bool:
    ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
    return ja["model"]["vocab"] == jb["model"]["vocab"] and \
        ja["model"]["merges"] == jb["model"]["merges"]


def _ratio(results: dict, name: str, ours: dict, bare: dict, nbytes: int, extra=None) -> None:
    r = {"text_mb": round(nbytes / 1e6, 1),
         "ours": {k: v for k, v in ours.items() if k != "stdout"},
         "bare": {k: v for k, v in bare.items() if k != "stdout"},
         "wall_ratio": round(ours["wall_s"] / bare["wall_s"], 3),
         "rss_ratio": round(ours["peak_rss_mb"] / bare["peak_rss_mb"], 3)}
    r["pass"] = r["wall_ratio"] <= 1.10 and r["rss_ratio"] <= 1.2
    r.update(extra or {})
    results[name] = r
    print(f"{name}: ours {ours['wall_s']} s / {ours['peak_rss_mb']} MB vs bare "
          f"{bare['wall_s']} s / {bare['peak_rss_mb']} MB -> wall x{r['wall_ratio']}, "
          f"RSS x{r['rss_ratio']} ({'PASS' if r['pass'] else 'FAIL'})", flush=True)


def memory(work: Path, gb: float, budget_mb: int, results: dict) -> None:
    ws = Workspace(work / "ws")
    files = python_files() + sorted(Path("/usr/share/doc").rglob("copyright"))
    t0 = time.perf_counter()
    sid, nbytes = write_snapshot_from_files(ws, "big", files, int(gb * 10**9))
    print(f"memory corpus: {nbytes / 1e9:.2f} GB snapshot {sid} "
          f"({time.perf_counter() - t0:.0f} s to write)", flush=True)
    r = run_process([TF, "train", "--corpus", "big",
                     "--workspace", str(work / "ws"), "--model", "bpe", "--vocab-size", "32000",
                     "--max-bytes", f"{budget_mb}MB", "--out", str(work / "ours-big"), "--json"])
    res = json.loads(r["stdout"])
    results["memory_2gb_budget"] = {
        "snapshot_gb": round(nbytes / 1e9, 2), "max_bytes_mb": budget_mb,
        "bytes_trained_mb": round(res["bytes"] / 1e6, 1), "wall_s": r["wall_s"],
        "peak_rss_mb": r["peak_rss_mb"], "pass": r["peak_rss_mb"] < 4096}
    print(f"memory: {nbytes / 1e9:.2f} GB snapshot, max_bytes {budget_mb} MB -> trained on "
          f"{res['bytes'] / 1e6:.1f} MB, peak RSS {r['peak_rss_mb']} MB, {r['wall_s']} s "
          f"({'PASS' if r['peak_rss_mb'] < 4096 else 'FAIL'} < 4096 MB)", flush=True)


def superbpe(work: Path, vocab: int, results: dict) -> None:
    from tokenizers import Tokenizer

    from tokenfoundry.storage.splits import heldout_threshold, is_heldout, split_key

    ws = Workspace(work / "ws")
    files = sorted(Path("/usr/share/common-licenses").iterdir()) + \
        sorted(Path("/usr/share/doc").rglob("copyright")) + \
        sorted(p for p in Path("/").glob("usr/**/*.md") if p.is_file())
    files += sorted(p for p in SITE.rglob("*.md") if p.is_file())
    files += sorted(p for p in SITE.rglob("*.rst") if p.is_file())
    seen, uniq = set(), []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            uniq.append(f)
    sid, nbytes = write_snapshot_from_files(ws, "english", uniq, None)
    print(f"superbpe corpus: {nbytes / 1e6:.1f} MB of English prose, snapshot {sid}", flush=True)
    cli = [TF, "train", "--corpus", "english",
           "--workspace", str(work / "ws"), "--vocab-size", str(vocab), "--json"]
    runs = {}
    for model in ("bpe", "superbpe"):
        r = run_process(cli + ["--model", model, "--out", str(work / f"en-{model}")])
        runs[model] = r
    docs = ws.snapshot("english", sid).dataset().to_table(
        columns=["content_hash", "text"]).to_pylist()
    below = heldout_threshold([split_key(d["content_hash"]) for d in docs], 0.05)
    held = [d["text"] for d in docs if is_heldout(d["content_hash"], 0.05, below)]
    counts = {}
    for model in ("bpe", "superbpe"):
        tok = Tokenizer.from_file(str(work / f"en-{model}" / "tokenizer.json"))
        encs = tok.encode_batch(held, add_special_tokens=False)
        counts[model] = sum(len(e.ids) for e in encs)
        bad = sum(1 for t, e in zip(held, encs) if tok.decode(e.ids) != t)
        counts[f"{model}_roundtrip_errors"] = bad
    held_bytes = sum(len(t.encode()) for t in held)
    red = 1 - counts["superbpe"] / counts["bpe"]
    results["superbpe_vs_bpe"] = {
        "vocab_size": vocab, "train_mb": round(nbytes / 1e6, 1),
        "heldout_docs": len(held), "heldout_mb": round(held_bytes / 1e6, 2),
        "tokens_bpe": counts["bpe"], "tokens_superbpe": counts["superbpe"],
        "bytes_per_token_bpe": round(held_bytes / counts["bpe"], 3),
        "bytes_per_token_superbpe": round(held_bytes / counts["superbpe"], 3),
        "token_reduction": round(red, 4),
        "roundtrip_errors": {m: counts[f"{m}_roundtrip_errors"] for m in ("bpe", "superbpe")},
        "train_wall_s": {m: runs[m]["wall_s"] for m in runs}, "pass": red >= 0.10}
    print(f"superbpe: {len(held)} held-out docs ({held_bytes / 1e6:.2f} MB): BPE "
          f"{counts['bpe']} tokens, SuperBPE {counts['superbpe']} tokens -> "
          f"{100 * red:.1f}% fewer ({'PASS' if red >= 0.10 else 'below'} the 10% aim)",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["overhead", "memory", "superbpe", "all"], default="all")
    ap.add_argument("--work", default="/tmp/tokenfoundry-train-bench")
    ap.add_argument("--mb", type=int, default=100, help="overhead: MB of text")
    ap.add_argument("--gb", type=float, default=2.0, help="memory: snapshot size (GB)")
    ap.add_argument("--budget-mb", type=int, default=500, help="memory: --max-bytes (MB)")
    ap.add_argument("--vocab", type=int, default=32768, help="superbpe: vocabulary size")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    if args.part in ("superbpe", "all"):
        superbpe(work, args.vocab, results)
    if args.part in ("overhead", "all"):
        overhead(work, args.mb, results)
    if args.part in ("memory", "all"):
        memory(work, args.gb, args.budget_mb, results)
    print(json.dumps(results, indent=2))
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if not args.keep:
        shutil.rmtree(work / "ws", ignore_errors=True)


if __name__ == "__main__":
    main()
