"""Static (fastText-style) vectors trained here with gensim, for WECHSEL and FOCUS.

Both methods need subword-aware static embeddings: WECHSEL (CPJKU/wechsel ``train_embeddings``)
trains fastText CBOW, dim 100, neg 10, char n-grams 5-5, 20 epochs on word-tokenised text; FOCUS
(konstantinjdobler/focus ``deepfocus/fasttext_embs.py``) trains fastText CBOW, dim 100, neg 10,
3 epochs, minCount 10 (n-grams 3-6, fastText's default) on text tokenised into the *target
tokenizer's* tokens. The fastText binary is not installable here; gensim's ``FastText`` is the same
algorithm (CBOW with character n-gram buckets, negative sampling) and is used instead.

Text is written once to a temporary line-per-sentence file and trained with gensim's
``corpus_file`` mode (no Python in the inner loop). With ``workers=1`` training is deterministic
for a seed; more workers are faster but Hogwild-ordered, so rows then differ run to run.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

WORD = re.compile(r"\w+(?:['’-]\w+)*")
"""A word for the word-level models: letters/digits, inner apostrophes and hyphens kept."""

MAX_LINE_WORDS = 10_000  # gensim's corpus_file reader cuts longer lines (MAX_WORDS_IN_BATCH)


def words(text: str) -> list[str]:
    """Word tokenisation for WECHSEL's word vectors (the paper uses NLTK's Punkt word tokenizer)."""
    return WORD.findall(text)


def capped(texts: Iterable[str], max_bytes: int | None) -> Iterator[str]:
    """The texts until ``max_bytes`` UTF-8 bytes have been yielded (None: all)."""
    total = 0
    for t in texts:
        if max_bytes is not None and total >= max_bytes:
            return
        total += len(t.encode("utf-8"))
        yield t


def write_corpus(sentences: Iterable[list[str]], path: Path) -> tuple[int, int]:
    """Space-joined sentences, one a line (long ones split): (lines, words) written."""
    n_lines = n_words = 0
    with open(path, "w", encoding="utf-8") as fh:
        for sent in sentences:
            for i in range(0, len(sent), MAX_LINE_WORDS):
                part = sent[i:i + MAX_LINE_WORDS]
                if part:
                    fh.write(" ".join(part))
                    fh.write("\n")
                    n_lines += 1
                    n_words += len(part)
    return n_lines, n_words


def train_fasttext(sentences: Iterable[list[str]], *, dim: int = 100, min_n: int = 5,
                   max_n: int = 5, epochs: int = 20, min_count: int = 5, window: int = 5,
                   negative: int = 10, seed: int = 0, workers: int = 1, bucket: int = 2_000_000,
                   tmp_dir: str | None = None):
    """gensim FastText CBOW on ``sentences`` (lists of words); returns (keyed vectors, facts).

    Defaults are WECHSEL's ``train_embeddings`` (fastText CLI defaults for the rest: window 5,
    minCount 5, lr 0.05, sampling 1e-4). ``bucket`` is fastText's n-gram hash table size.
    """
    from gensim.models import FastText

    with tempfile.TemporaryDirectory(dir=tmp_dir) as d:
        path = Path(d) / "corpus.txt"
        n_lines, n_words = write_corpus(sentences, path)
        if n_words == 0:
            raise ValueError("no words to train static vectors on")
        model = FastText(vector_size=dim, sg=0, min_n=min_n, max_n=max_n, window=window,
                         negative=negative, min_count=min_count, sample=1e-4, alpha=0.05,
                         seed=seed, workers=workers, bucket=bucket, epochs=epochs)
        model.build_vocab(corpus_file=str(path))
        if len(model.wv) == 0:
            raise ValueError(f"no word occurs min_count={min_count} times: too little text")
        model.train(corpus_file=str(path), epochs=epochs, total_examples=model.corpus_count,
                    total_words=model.corpus_total_words)
    wv = model.wv
    del model  # drops the output layer (syn1neg) and training buffers
    return wv, {"lines": n_lines, "words": n_words, "vocab": len(wv), "dim": dim,
                "epochs": epochs, "min_count": min_count, "char_ngrams": [min_n, max_n],
                "negative": negative, "window": window, "workers": workers}


def token_text(token_bytes: bytes) -> str | None:
    """The text a token stands for, as WECHSEL looks it up (``tokenizer.decode(i).strip()``).

    None for a partial UTF-8 sequence (a byte-fallback piece of a character): it has no text.
    """
    try:
        return token_bytes.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def text_vectors(wv, texts: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 fastText vectors of ``texts`` (in-vocabulary or from char n-grams) and a
    mask of the ones that got a vector; None, empty and n-gram-less texts get no vector."""
    out = np.zeros((len(texts), wv.vector_size), dtype=np.float32)
    ok = np.zeros(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        if not t or (t not in wv.key_to_index and len(t) + 2 < wv.min_n):
            continue  # OOV and shorter than one char n-gram of "<t>": fastText gives zeros
        v = wv.get_vector(t)  # OOV: sum of its n-gram buckets; zeros when it has none
        if np.any(v):
            out[i], ok[i] = v, True
    return out, ok


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), for cosine similarity by dot product."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-8)).astype(np.float32)


def texts_of(source: Callable[[], Iterator[str]] | Iterable[str]) -> Iterator[str]:
    """Iterate a re-iterable text source given as a callable (InitContext.target_texts) or list."""
    return iter(source()) if callable(source) else iter(source)


def encode_target(tokenizer_path: Path, texts: Iterable[str],
                  batch: int = 1000) -> list[np.ndarray]:
    """Token ids (int32, one array per text) of ``texts`` under the extended tokenizer.json."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    out: list[np.ndarray] = []
    buf: list[str] = []

    def flush() -> None:
        out.extend(np.asarray(e.ids, dtype=np.int32)
                   for e in tok.encode_batch(buf, add_special_tokens=False))
        buf.clear()

    for t in texts:
        buf.append(t)
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    return [a for a in out if a.size]
