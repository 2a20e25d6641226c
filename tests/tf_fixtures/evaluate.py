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

    surfaces = adapter.table[0]
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
