"""Small real tokenizers and texts for the evaluate tests (trained in a second on licence text)."""

from __future__ import annotations

from pathlib import Path

LICENCES = Path("/usr/share/common-licenses")


def licence_texts(names=("GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1", "Artistic")) -> list[str]:
    return [(LICENCES / n).read_text(encoding="utf-8") for n in names if (LICENCES / n).is_file()]


def train_bytelevel_bpe(out: Path, vocab_size: int = 600, nfc: bool = False) -> Path:
    """A byte-level BPE (GPT-2 style) trained on licence text; returns its tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if nfc:
        tok.normalizer = normalizers.NFC()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(licence_texts(), trainer=trainer)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out))
    return out


def train_wordpiece(out: Path, vocab_size: int = 400) -> Path:
    """A WordPiece with [UNK], trained on English licence text only (CJK becomes UNK)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"],
                                        limit_alphabet=80, show_progress=False)
    tok.train_from_iterator(licence_texts(), trainer=trainer)
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out))
    return out


def train_spm(out: Path, vocab_size: int = 400) -> Path:
    """A sentencepiece BPE with byte fallback, trained on licence text."""
    import io

    import sentencepiece as spm

    lines = [ln for t in licence_texts() for ln in t.splitlines() if ln.strip()]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf,
                                   vocab_size=vocab_size, model_type="bpe", byte_fallback=True,
                                   character_coverage=1.0, minloglevel=2, num_threads=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    return out


def continued_word_flags(pool, adapter, enc) -> list[bool]:
    """Per word of ``pool``: a token of ``enc`` starts strictly inside it - checked directly,
    word by word, against token start offsets summed from each token's own bytes (the slow,
    obvious reference for the evaluator's passes)."""
    import bisect

    surfaces = adapter.surfaces
    flags: list[bool] = []
    for d in range(pool.n_docs):
        starts, pos = [], int(pool.doc_byte_start[d])
        for t in enc.doc(d).tolist():
            starts.append(pos)
            pos += len(surfaces[t])
        in_doc = pool.word_doc == d
        for s, e in zip(pool.word_byte_start[in_doc], pool.word_byte_end[in_doc]):
            i = bisect.bisect_right(starts, s)  # the first start after s is before e
            flags.append(i < len(starts) and starts[i] < e)
    return flags


# ---------------------------------------------------------------------------------------------
# Golden evaluations (tests/golden/evaluate/): the metrics of fixed tokenizers on fixed text,
# saved from the evaluator before its rewrite and recomputed by test_evaluate_golden.py.

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "evaluate"
GOLDEN_REFERENCES = ["o200k", "cl100k", "llama3", "qwen3", "gpt2"]
#: Fields that measure time, not the tokenization (never compared).
GOLDEN_VOLATILE = {"encode_mb_per_s", "encode_seconds", "metrics_seconds"}


def golden_tokenizers() -> dict[str, Path]:
    """The trained test tokenizers, stored once under tests/golden (training is not part of
    what the golden files pin down)."""
    d = GOLDEN / "tokenizers"
    made = {"bpe": d / "bpe" / "tokenizer.json", "bpe_nfc": d / "bpe_nfc" / "tokenizer.json",
            "wordpiece": d / "wordpiece" / "tokenizer.json", "spm": d / "spm" / "spm.model"}
    if not made["bpe"].is_file():
        train_bytelevel_bpe(made["bpe"])
    if not made["bpe_nfc"].is_file():
        train_bytelevel_bpe(made["bpe_nfc"], nfc=True)
    if not made["wordpiece"].is_file():
        train_wordpiece(made["wordpiece"])
    if not made["spm"].is_file():
        train_spm(made["spm"])
    return made


def golden_pools() -> dict[str, list[tuple[str, str]]]:
    """(text, lang) documents of each golden case: the tests' pools and the quality
    benchmark's licence text (every licence file of /usr/share/common-licenses)."""
    lic = licence_texts()
    mixed = lic + ["", "日本語のテキスト、中文文本。", "Cafe\u0301 re\u0301sume\u0301 " * 50]
    langs = ["en"] * len(lic) + ["und", "ja", "fr"]
    quality = sorted({p.read_text(encoding="utf-8") for p in LICENCES.iterdir() if p.is_file()})
    return {
        "licences_mixed": list(zip(mixed, langs)),
        "roundtrip": [("Licence terms: ünïcode, 日本語, emoji 🙂 and\ttabs  double  spaces.",
                       "und")],
        "hello": [("Hello, world!", "en")],
        "empty_docs": [(t, "und") for t in ["", "The licence.", "", "日本語", ""]],
        "nfd": [("Cafe\u0301 and re\u0301sume\u0301", "en"), ("plain text", "en")],
        "unicode": [(t, "en") for t in lic[:2] + ["Ünïcödé façade naïve 日本語 text"]],
        "quality_legal": [(t, "en") for t in quality],
    }


def golden_parallel() -> Path:
    """The quality benchmark's kind of parallel set, reduced: three gettext domains in five
    languages + English, stored as Parquet (built once from /usr/share/locale)."""
    p = GOLDEN / "data" / "parallel.parquet"
    if not p.is_file():
        from tokenfoundry.tasks.evaluate.parallel import build_parallel_from_mo, write_parallel

        write_parallel(build_parallel_from_mo(
            "/usr/share/locale", langs=["de", "fr", "ja", "ru", "zh_CN", "en"],
            domains=["coreutils", "dpkg", "glib20"]), p)
    return p


def golden_metrics(case: str, work: Path) -> dict:
    """Every tokenizer's metrics for ``case`` (a golden_pools() name or "parallel") through
    the evaluate core, without the timing fields."""
    import json

    from tokenfoundry.schemas.evaluate import EvaluateSpec
    from tokenfoundry.tasks.evaluate.core import evaluate

    toks = [f"{k}={v}" for k, v in golden_tokenizers().items()]
    work.mkdir(parents=True, exist_ok=True)
    if case == "parallel":
        spec = EvaluateSpec(tokenizers=toks, parallel=str(golden_parallel()),
                            references=GOLDEN_REFERENCES)
    else:
        src = work / f"{case}.jsonl"
        src.write_text("".join(json.dumps({"text": t, "lang": lg}, ensure_ascii=False) + "\n"
                               for t, lg in golden_pools()[case]), encoding="utf-8")
        spec = EvaluateSpec(tokenizers=toks, texts=[str(src)], references=GOLDEN_REFERENCES)
    res = evaluate(spec, str(work / f"out-{case}")).model_dump(mode="json")
    return {name: {k: v for k, v in m.items() if k not in GOLDEN_VOLATILE}
            for name, m in sorted(res["tokenizers"].items())}


def golden_cases() -> list[str]:
    return [*golden_pools(), "parallel"]
