"""WECHSEL initialisation (Minixhofer, Paischer & Rekabsaz, NAACL 2022, "WECHSEL: Effective
initialization of subword embeddings for cross-lingual transfer of monolingual language models";
code: CPJKU/wechsel, ``wechsel/__init__.py``).

Recipe, as in the repository:

1. Static subword-aware word vectors for the source language (English, the base model's) and the
   target language: fastText CBOW, dim 100, neg 10, char n-grams 5-5, 20 epochs
   (``train_embeddings``; the paper's main runs use the public ``cc.xx.300.bin`` vectors, which
   cannot be downloaded here, so both spaces are trained on this machine's text).
2. Alignment: orthogonal Procrustes ``W = argmin_{W^T W = I} ||X_src W - X_trg||_F`` over the
   bilingual-dictionary pairs, trying the (original, lower, title) case variants of both words
   (``_compute_align_matrix_from_dictionary``); ``W = U V^T`` from ``svd(X_src^T X_trg)``.
3. Token vectors: the fastText vector of each token's text (``tokenizer.decode(i).strip()``: here
   the token's UTF-8 bytes decoded, byte-level space marker gone); old tokens in the aligned
   source space (``x W``), new tokens in the target space; all L2-normalised.
4. New row: ``e_t = sum_{s in N_k(t)} softmax(cos(t, s) / T) * E[s]`` over the k = 10 most similar
   old tokens, T = 0.1 (``create_target_embeddings``).

Deviations (also in ``InitResult.details["deviations"]``): gensim FastText instead of the fastText
binary (same CBOW/n-gram algorithm); vectors trained here on what this machine has instead of
Common Crawl; only the new tokens are initialised (old rows are kept, the paper re-initialises a
whole new vocabulary); a token with no vector (partial UTF-8 byte token, no char n-gram) falls back
to FVT instead of N(mean, std) and is counted in ``fallbacks``.

Options (``ctx.params``; defaults in brackets):

- ``dictionary`` ["auto"]: "freedict-eng-XXX", "gettext:LL", a path to "english<TAB>target" lines,
  or "auto" (by the target text's identified language; see ``dictionaries.py``).
- ``dictd_dir`` ["/usr/share/dictd"], ``locale_dir`` ["/usr/share/locale"]: where dictionaries live.
- ``source_texts`` ["machine"]: English text for the source vectors: a file or a directory of
  .txt files, or "machine" (gettext msgids of every installed catalog domain, Debian's
  common-licenses and /usr/share/doc/*/copyright; no reserved data).
- ``max_source_bytes`` [12_000_000], ``max_target_bytes`` [16_000_000]: text caps.
- ``k`` [10], ``temperature`` [0.1]: neighbours and softmax temperature.
- ``dim`` [100], ``min_n`` [5], ``max_n`` [5], ``epochs`` [20], ``min_count`` [5],
  ``negative`` [10], ``window`` [5]: fastText training (WECHSEL's); ``workers`` [1]: training threads (1 keeps the rows
  identical for a seed; more is faster but not reproducible).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokenfoundry.tasks.extend import dictionaries as dicts
from tokenfoundry.tasks.extend import static_vectors as sv
from tokenfoundry.tasks.extend.fvt import fvt_rows
from tokenfoundry.tasks.extend.init import InitContext, InitError, InitResult

DEVIATIONS = [
    "gensim FastText (same CBOW + char n-gram algorithm) instead of the fastText binary",
    "source and target vectors trained on this machine's text, not Common Crawl cc.xx.300.bin",
    "only the new tokens are initialised; old rows are kept",
    "tokens without a vector fall back to FVT instead of N(mean, std)",
]


def machine_english_texts(locale_dir: Path = dicts.LOCALE_DIR) -> Iterator[str]:
    """English text installed on a Debian machine: gettext msgids (one catalog per domain, the
    largest), /usr/share/common-licenses/* and /usr/share/doc/*/copyright."""
    from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
    from tokenfoundry.tasks.ingest.readers import read_unit

    best: dict[str, Path] = {}
    for p in sorted(locale_dir.glob("*/LC_MESSAGES/*.mo")):
        if p.name not in best or p.stat().st_size > best[p.name].stat().st_size:
            best[p.name] = p
    spec = IngestSpec(corpus="source", sources=[str(locale_dir)], format="mo", include_msgid=True)
    for i, (_, path) in enumerate(sorted(best.items())):
        unit = IngestUnit(name=f"{i:05d}-0000", path=str(path), format="mo",
                          size=os.path.getsize(path))
        for records, _ in read_unit(unit, spec):
            yield from (t for t, lang in zip(records.text, records.lang) if lang == "en")
    files = sorted(Path("/usr/share/common-licenses").glob("*"))
    files += sorted(Path("/usr/share/doc").glob("*/copyright"))
    for f in files:
        if f.is_file() and not f.is_symlink():
            yield f.read_text(encoding="utf-8", errors="replace")


def source_texts(spec: str, locale_dir: Path) -> Iterator[str]:
    if spec == "machine":
        return machine_english_texts(locale_dir)
    p = Path(spec)
    if p.is_file():
        return iter(p.read_text(encoding="utf-8", errors="replace").splitlines())
    if p.is_dir():
        return (f.read_text(encoding="utf-8", errors="replace") for f in sorted(p.rglob("*.txt")))
    raise InitError(f"wechsel: source_texts {spec!r} is neither 'machine', a file nor a directory")


def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Orthogonal W minimising ||x W - y||_F (Schönemann 1966): W = U V^T, U S V^T = svd(x^T y)."""
    u, _, vt = np.linalg.svd(x.astype(np.float64).T @ y.astype(np.float64))
    return (u @ vt).astype(np.float32)


def dictionary_correspondences(src_wv, trg_wv, pairs) -> tuple[np.ndarray, np.ndarray, int]:
    """Vectors of every (orig, lower, title) x (orig, lower, title) variant of each dictionary pair
    that both vocabularies contain (as WECHSEL does); also how many pairs had at least one."""
    xs, ys, found = [], [], 0
    for s, t in pairs:
        hit = False
        for sw in dict.fromkeys((s, s.lower(), s.title())):
            if sw not in src_wv.key_to_index:
                continue
            for tw in dict.fromkeys((t, t.lower(), t.title())):
                if tw in trg_wv.key_to_index:
                    xs.append(src_wv.get_vector(sw))
                    ys.append(trg_wv.get_vector(tw))
                    hit = True
        found += hit
    if not xs:
        return np.zeros((0, src_wv.vector_size)), np.zeros((0, trg_wv.vector_size)), 0
    return np.stack(xs), np.stack(ys), found


def wechsel_weights(target_vecs: np.ndarray, source_vecs: np.ndarray, k: int = 10,
                    temperature: float = 0.1, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours (n, k) int64, weights (n, k) float32) of WECHSEL's step 4.

    Both inputs are unit rows; neighbours are the k source rows of highest cosine similarity
    (most similar first), weights = softmax(cos / temperature) over them (>= 0, summing to 1).
    """
    n, k = target_vecs.shape[0], min(k, source_vecs.shape[0])
    idx = np.empty((n, k), dtype=np.int64)
    w = np.empty((n, k), dtype=np.float32)
    for a in range(0, n, chunk):
        sim = target_vecs[a:a + chunk] @ source_vecs.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(sim, top, axis=1)
        order = np.argsort(-s, axis=1, kind="stable")
        top, s = np.take_along_axis(top, order, 1), np.take_along_axis(s, order, 1)
        z = (s - s[:, :1]) / temperature  # shift by the max for a stable softmax
        e = np.exp(z.astype(np.float64))
        idx[a:a + chunk], w[a:a + chunk] = top, e / e.sum(1, keepdims=True)
    return idx, w


@dataclass
class WechselFit:
    result: InitResult
    placed: np.ndarray
    """Indices of the new tokens that got a WECHSEL row (the rest are FVT fallbacks)."""
    neighbours: np.ndarray
    """(len(placed), k) old-token ids whose rows are mixed."""
    weights: np.ndarray
    """(len(placed), k) softmax weights: rows[placed[j]] = weights[j] @ E[neighbours[j]]."""


def _target_language(ctx: InitContext, n: int = 200) -> str:
    from tokenfoundry.tasks.ingest.langid import identify

    votes: dict[str, int] = {}
    for i, text in enumerate(ctx.target_texts()):
        if i >= n:
            break
        lang, _ = identify(text)
        votes[lang] = votes.get(lang, 0) + 1
    votes.pop("und", None)
    return max(votes, key=votes.get) if votes else "und"


def fit_wechsel(ctx: InitContext) -> WechselFit:
    """WECHSEL with the weights exposed (``init_wechsel`` returns only the result)."""
    p = dict(ctx.params)
    t0 = time.perf_counter()
    locale_dir = Path(p.get("locale_dir", dicts.LOCALE_DIR))
    spec = str(p.get("dictionary", "auto"))
    lang = _target_language(ctx) if spec == "auto" else None
    dict_name, pairs = dicts.load_dictionary(spec, lang, locale_dir=locale_dir,
                                             dictd_dir=Path(p.get("dictd_dir", dicts.DICTD_DIR)))
    t_dict = time.perf_counter()
    ft = dict(dim=int(p.get("dim", 100)), min_n=int(p.get("min_n", 5)),
              max_n=int(p.get("max_n", 5)), epochs=int(p.get("epochs", 20)),
              min_count=int(p.get("min_count", 5)), negative=int(p.get("negative", 10)),
              window=int(p.get("window", 5)), workers=int(p.get("workers", 1)), seed=ctx.seed)
    src_bytes = int(p.get("max_source_bytes", 12_000_000))
    trg_bytes = int(p.get("max_target_bytes", 16_000_000))
    src_texts = sv.capped(source_texts(str(p.get("source_texts", "machine")), locale_dir),
                          src_bytes)
    src_wv, src_facts = sv.train_fasttext((sv.words(t) for t in src_texts), **ft)
    if ctx.progress:
        ctx.progress("wechsel: source vectors", 1, 3)
    trg_wv, trg_facts = sv.train_fasttext(
        (sv.words(t) for t in sv.capped(ctx.target_texts(), trg_bytes)), **ft)
    if ctx.progress:
        ctx.progress("wechsel: target vectors", 2, 3)
    t_train = time.perf_counter()

    xs, ys, found = dictionary_correspondences(src_wv, trg_wv, pairs)
    if found < ft["dim"]:
        raise InitError(f"wechsel: only {found} of {len(pairs)} pairs of dictionary {dict_name!r} "
                        f"are in both vector vocabularies (need >= {ft['dim']} to align "
                        f"{ft['dim']}-dim spaces): give more source/target text or another "
                        "dictionary")
    align = procrustes(xs, ys)

    src_vecs, src_ok = sv.text_vectors(src_wv, [sv.token_text(b) for b in ctx.old_token_bytes])
    src_ids = np.flatnonzero(src_ok)
    src_unit = sv.unit_rows(src_vecs[src_ids] @ align)
    new_text = [sv.token_text(b) for b in ctx.new_token_bytes]
    trg_vecs, trg_ok = sv.text_vectors(trg_wv, new_text)
    placed = np.flatnonzero(trg_ok)
    k, temp = int(p.get("k", 10)), float(p.get("temperature", 0.1))
    nb_local, weights = wechsel_weights(sv.unit_rows(trg_vecs[placed]), src_unit, k, temp)
    neighbours = src_ids[nb_local]

    E = ctx.embeddings
    rows = fvt_rows(E, ctx.leaves)  # FVT for every token first; placed rows are overwritten
    rows[placed] = np.einsum("nk,nkd->nd", weights, E[neighbours], dtype=np.float32)
    out_rows = None
    if ctx.output_embeddings is not None:
        out_rows = fvt_rows(ctx.output_embeddings, ctx.leaves)
        out_rows[placed] = np.einsum("nk,nkd->nd", weights, ctx.output_embeddings[neighbours],
                                     dtype=np.float32)
    missing = ~trg_ok
    partial = np.array([t is None for t in new_text], dtype=bool)
    fallbacks = {k_: int(v) for k_, v in (("partial_utf8_fvt", (missing & partial).sum()),
                                          ("no_vector_fvt", (missing & ~partial).sum())) if v}
    t_end = time.perf_counter()
    details = {
        "dictionary": dict_name, "target_language": lang, "dictionary_pairs": len(pairs),
        "dictionary_pairs_found": found, "alignment_correspondences": int(xs.shape[0]),
        "source_text": str(p.get("source_texts", "machine")), "source_vectors": src_facts,
        "target_vectors": trg_facts, "old_tokens_with_vector": int(src_ids.size),
        "k": k, "temperature": temp, "seed": ctx.seed,
        "mean_top1_weight": float(weights[:, 0].mean()) if len(placed) else None,
        "seconds": {"dictionary": round(t_dict - t0, 2), "fasttext": round(t_train - t_dict, 2),
                    "align_and_mix": round(t_end - t_train, 2), "total": round(t_end - t0, 2)},
        "deviations": DEVIATIONS,
    }
    return WechselFit(InitResult(rows, out_rows, fallbacks, details), placed, neighbours, weights)


def init_wechsel(ctx: InitContext) -> InitResult:
    """New rows = softmax(cos/T)-weighted means of the k nearest old tokens' rows (see module)."""
    return fit_wechsel(ctx).result
