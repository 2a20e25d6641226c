"""FOCUS initialisation (Dobler & de Melo, EMNLP 2023, "FOCUS: Effective Embedding Initialization
for Monolingual Specialization of Multilingual Models"; code: konstantinjdobler/focus,
``src/deepfocus/focus.py`` and ``fasttext_embs.py``).

Recipe, as in the repository:

1. Auxiliary static token embeddings: fastText CBOW (dim 100, neg 10, 3 epochs, minCount 10,
   char n-grams 3-6 = fastText's default) trained on the target text *tokenised by the target
   tokenizer* (each token string is a "word"); here the extended tokenizer.
2. Anchors: the overlapping tokens, i.e. old tokens, that have an auxiliary embedding (occur at
   least ``min_count`` times in the tokenised text; ``is_very_rare_token``). With an extended
   tokenizer FOCUS only uses anchors that the target-language tokenizer produces, which is the
   same condition here: they occur in the target text.
3. New row: ``e_t = sum_a sparsemax(cos(x_t, x_a))_a * E[a]`` over the anchors (Martins &
   Astudillo 2016 sparsemax: the Euclidean projection of the similarity vector onto the simplex,
   so the row is a sparse convex combination of anchor rows).

New tokens with no auxiliary embedding (rarer than ``min_count``) get N(mean, std) in FOCUS; here
they fall back to FVT and are counted in ``fallbacks["rare_token_fvt"]``. gensim FastText replaces
the fastText binary (same algorithm).

Options (``ctx.params``; defaults in brackets): ``dim`` [100], ``epochs`` [3], ``min_count``
[10], ``min_n`` [3], ``max_n`` [6], ``negative`` [10], ``window`` [5], ``workers`` [1] (1 keeps
rows identical for a seed), ``max_target_bytes`` [16_000_000].
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tokenfoundry.tasks.extend import static_vectors as sv
from tokenfoundry.tasks.extend.fvt import fvt_rows
from tokenfoundry.tasks.extend.init import InitContext, InitError, InitResult

DEVIATIONS = [
    "gensim FastText (same CBOW + char n-gram algorithm) instead of the fastText binary",
    "new tokens without an auxiliary embedding fall back to FVT instead of N(mean, std)",
    "only the new tokens are initialised; old rows are kept",
]


def sparsemax(z: np.ndarray) -> np.ndarray:
    """Row-wise sparsemax (Martins & Astudillo, ICML 2016): p = max(z - tau, 0) with tau such that
    sum(p) = 1; k(z) = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)} over z sorted descending."""
    z = np.asarray(z, dtype=np.float64)
    zs = -np.sort(-z, axis=-1)
    cum = np.cumsum(zs, axis=-1)
    k = np.arange(1, z.shape[-1] + 1)
    support = 1 + k * zs > cum
    k_z = support.sum(-1, keepdims=True)
    tau = (np.take_along_axis(cum, k_z - 1, -1) - 1) / k_z
    return np.maximum(z - tau, 0.0)


def focus_weights(new_vecs: np.ndarray, anchor_vecs: np.ndarray, chunk: int = 256
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse weights (CSR: indptr, anchor indices, values) of sparsemax(cosine) per new row."""
    a = sv.unit_rows(anchor_vecs)
    indptr, idx, val = [0], [], []
    for s in range(0, new_vecs.shape[0], chunk):
        w = sparsemax(sv.unit_rows(new_vecs[s:s + chunk]) @ a.T)
        for row in w:
            nz = np.flatnonzero(row)
            idx.append(nz)
            val.append(row[nz])
            indptr.append(indptr[-1] + nz.size)
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    return np.asarray(indptr, dtype=np.int64), cat(idx, np.int64), cat(val, np.float64)


@dataclass
class FocusFit:
    result: InitResult
    placed: np.ndarray
    """Indices of the new tokens with a FOCUS row (the rest are FVT fallbacks)."""
    anchors: np.ndarray
    """Old ids of the anchors."""
    indptr: np.ndarray
    indices: np.ndarray
    """Anchor positions (into ``anchors``) of each placed row's nonzero weights (CSR)."""
    weights: np.ndarray
    """rows[placed[j]] = weights[indptr[j]:indptr[j+1]] @ E[anchors[indices[...]]]."""


def fit_focus(ctx: InitContext) -> FocusFit:
    """FOCUS with the sparse weights exposed (``init_focus`` returns only the result)."""
    p = dict(ctx.params)
    t0 = time.perf_counter()
    docs = sv.encode_target(ctx.tokenizer_path, sv.capped(
        ctx.target_texts(), int(p.get("max_target_bytes", 16_000_000))))
    if not docs:
        raise InitError("focus: the target text is empty")
    vocab = list(ctx.old_tokens) + list(ctx.new_tokens)
    t_tok = time.perf_counter()
    wv, facts = sv.train_fasttext(
        ([vocab[i] for i in d.tolist()] for d in docs), dim=int(p.get("dim", 100)),
        min_n=int(p.get("min_n", 3)), max_n=int(p.get("max_n", 6)),
        epochs=int(p.get("epochs", 3)), min_count=int(p.get("min_count", 10)),
        negative=int(p.get("negative", 10)), window=int(p.get("window", 5)),
        workers=int(p.get("workers", 1)), seed=ctx.seed)
    t_ft = time.perf_counter()
    anchors = np.array([i for i, s in enumerate(ctx.old_tokens) if s in wv.key_to_index],
                       dtype=np.int64)
    if anchors.size == 0:
        raise InitError(f"focus: no old token occurs min_count={facts['min_count']} times in the "
                        "target text: give more text or a lower min_count")
    placed = np.array([i for i, s in enumerate(ctx.new_tokens) if s in wv.key_to_index],
                      dtype=np.int64)
    anchor_vecs = np.stack([wv.get_vector(ctx.old_tokens[i]) for i in anchors])
    new_vecs = (np.stack([wv.get_vector(ctx.new_tokens[i]) for i in placed]) if placed.size
                else np.zeros((0, wv.vector_size), np.float32))
    indptr, indices, weights = focus_weights(new_vecs, anchor_vecs)

    rows = fvt_rows(ctx.embeddings, ctx.leaves)
    out_rows = None if ctx.output_embeddings is None else fvt_rows(ctx.output_embeddings,
                                                                    ctx.leaves)
    for j, t in enumerate(placed):
        sl = slice(indptr[j], indptr[j + 1])
        ids = anchors[indices[sl]]
        rows[t] = weights[sl] @ ctx.embeddings[ids]
        if out_rows is not None:
            out_rows[t] = weights[sl] @ ctx.output_embeddings[ids]
    n_rare = ctx.n_new - placed.size
    t_end = time.perf_counter()
    nnz = np.diff(indptr)
    details = {
        "fasttext": facts, "anchors": int(anchors.size), "placed": int(placed.size),
        "mean_nonzero_weights": float(nnz.mean()) if nnz.size else None,
        "max_nonzero_weights": int(nnz.max()) if nnz.size else None, "seed": ctx.seed,
        "seconds": {"tokenise": round(t_tok - t0, 2), "fasttext": round(t_ft - t_tok, 2),
                    "sparsemax_and_mix": round(t_end - t_ft, 2), "total": round(t_end - t0, 2)},
        "deviations": DEVIATIONS,
    }
    return FocusFit(InitResult(rows, out_rows, {"rare_token_fvt": int(n_rare)} if n_rare else {},
                               details), placed, anchors, indptr, indices, weights)


def init_focus(ctx: InitContext) -> InitResult:
    """New rows = sparsemax(cos)-weighted anchor rows in a token-level fastText space."""
    return fit_focus(ctx).result
