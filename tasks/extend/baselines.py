"""Baseline initialisations of new embedding rows: random, mean, univariate, multivariate, FVT.

Each is ``init_<name>(ctx) -> InitResult`` (the contract in ``init.py``). With E the (V, d) old
embedding matrix, μ = mean(E, axis=0), σ its per-dimension std and Σ its covariance:

- random:        e_new ~ N(0, s² I), s = the model's ``initializer_range`` (a fresh, untrained row).
- mean:          e_new = μ.
- univariate:    e_new[j] ~ N(μ_j, σ_j²) independently per dimension (the "univariate" baseline of
                 Mundra et al., CoNLL 2024).
- multivariate:  e_new ~ N(μ, 1e-5 · Σ) (Hewitt, "Initializing New Word Embeddings for
                 Pretrained Language Models", 2021: the scaled covariance keeps new rows close to
                 the mean so they do not dominate the softmax, while breaking symmetry).
- fvt:           e_new = (1/|L|) Σ_{t ∈ L} E[t], L = the base ids of the token's merge-tree leaves
                 (Gee et al., "Fast Vocabulary Transfer for Language Model Compression", EMNLP
                 industry 2022; here the leaves are exactly the base tokenizer's segmentation).

When the model's output embeddings are untied the same rule runs on the output matrix. Random
draws come from ``numpy.random.default_rng(ctx.seed)`` (one stream for input, one for output),
so one seed gives byte-identical rows.
"""

from __future__ import annotations

import numpy as np

from tokenfoundry.tasks.extend.init import InitContext, InitResult


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    ss = np.random.SeedSequence(seed)
    a, b = ss.spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def _both(ctx: InitContext, rule) -> InitResult:
    rng_in, rng_out = _streams(ctx.seed)
    rows = rule(ctx.embeddings, rng_in)
    out = None if ctx.output_embeddings is None else rule(ctx.output_embeddings, rng_out)
    return InitResult(rows=rows.astype(np.float32),
                      output_rows=None if out is None else out.astype(np.float32))


def init_random(ctx: InitContext) -> InitResult:
    """e_new ~ N(0, s² I) with s = initializer_range (what a freshly initialised row looks like)."""
    std = float(ctx.init_std)
    result = _both(ctx, lambda E, rng: rng.normal(0.0, std, size=(ctx.n_new, E.shape[1])))
    result.details = {"std": std}
    return result


def init_mean(ctx: InitContext) -> InitResult:
    """e_new = μ = mean of all old rows."""
    return _both(ctx, lambda E, rng: np.repeat(E.astype(np.float64).mean(0, keepdims=True),
                                               ctx.n_new, axis=0))


def init_univariate(ctx: InitContext) -> InitResult:
    """e_new[j] ~ N(μ_j, σ_j²), one independent normal per dimension."""
    def rule(E, rng):
        E = E.astype(np.float64)
        return rng.normal(E.mean(0), E.std(0), size=(ctx.n_new, E.shape[1]))

    return _both(ctx, rule)


def init_multivariate(ctx: InitContext) -> InitResult:
    """e_new ~ N(μ, 1e-5 · Σ) (Hewitt 2021); ``scale`` (init param) replaces 1e-5."""
    scale = float(ctx.params.get("scale", 1e-5))

    def rule(E, rng):
        E = E.astype(np.float64)
        mu = E.mean(0)
        cov = np.cov(E, rowvar=False)
        return rng.multivariate_normal(mu, scale * cov, size=ctx.n_new, method="eigh")

    result = _both(ctx, rule)
    result.details = {"scale": scale}
    return result


def init_fvt(ctx: InitContext) -> InitResult:
    """e_new = mean of E[leaves]: the old rows of the token's merge-tree leaves (FVT)."""
    def rule(E, rng):
        rows = np.empty((ctx.n_new, E.shape[1]), dtype=np.float64)
        for i, leaves in enumerate(ctx.leaves):
            rows[i] = E[np.asarray(leaves)].astype(np.float64).mean(0)
        return rows

    return _both(ctx, rule)
