"""CW2V initialisation: convex combinations of old embeddings learned by word2vec on target text
(Mundra, Khandavally, Dabre, Puduppully, Kunchukuttan & Khapra, CoNLL 2024, "An Empirical
Comparison of Vocabulary Expansion and Initialization Approaches for Language Models"; code:
AI4Bharat/VocabAdaptation_LLM, branch CW2V).

Formula. Each new token t gets ``e_t = softmax(a_t) . E_S`` (a convex combination of old rows, so
it stays inside their convex hull), with the logits A = [a_t] learned by skip-gram with negative
sampling on the target text tokenised by the *extended* tokenizer, old rows frozen::

    L = - sum_(c, o) [ log s(v_c . u_o) + sum_{n ~ P_noise}^{5} log s(-v_c . u_n) ]

v = input-embedding row (centre), u = output-embedding row (context; the same matrix when tied),
s = sigmoid; a row is E[i] for an old id and softmax(a_t) . E_S for a new one. Word2vec's
choices: window 5 with a uniformly drawn reduced window per centre, 5 negatives from
unigram^0.75, frequent-token subsampling (keep prob (sqrt(f/(tN)) + 1) tN / f, t = 1e-4), Adam.

CPU deviations (also in ``details["deviations"]``): the published recipe softmaxes over the whole
old vocabulary for every new row each step (GPU scale). Here the support S is the ``support`` most
frequent old tokens on the target text plus every new token's merge-tree leaves, and only
skip-gram pairs that contain a new token are trained (pairs of two old tokens give A no gradient).
Steps are a fixed budget: 300 x 8,192 pairs (~1.2 passes over the 2.1M new-token pairs of 6 MB of
Ukrainian text; measured here ~1.3 CPU-s per step with 4,000 new tokens, d 576, support 2,085).

``cw2v-fvt`` starts A at FVT instead of uniform: logits put 99.9 % of each row's mass on its
merge-tree leaves in proportion to how often each occurs, so training starts from the FVT row.

Options (``ctx.params``; defaults in brackets): ``support`` [2048] most frequent old tokens,
``steps`` [300], ``batch_size`` [8192] pairs per step, ``lr`` [0.05] Adam, ``window`` [5],
``negatives`` [5], ``subsample`` [1e-4], ``noise_power`` [0.75], ``max_target_bytes``
[16_000_000], ``threads`` [torch default], ``max_seconds`` [none: stop after this many seconds
of training; rows then depend on machine speed], ``fvt_mass`` [0.999] (cw2v-fvt).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tokenfoundry.tasks.extend import static_vectors as sv
from tokenfoundry.tasks.extend.init import InitContext, InitError, InitResult

DEVIATIONS = [
    "softmax support restricted to the most frequent old tokens on the target text plus the new "
    "tokens' merge-tree leaves (the paper: the whole old vocabulary)",
    "only skip-gram pairs that contain a new token are trained",
    "a fixed number of Adam steps (steps x batch_size pairs), not full epochs",
]


def keep_probability(counts: np.ndarray, t: float) -> np.ndarray:
    """word2vec's subsampling: P(keep) = (sqrt(f / (t N)) + 1) * t N / f, capped at 1."""
    f = counts.astype(np.float64)
    thr = t * f.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.sqrt(f / thr) + 1.0) * thr / f
    return np.where(f > 0, np.minimum(p, 1.0), 0.0)


def skipgram_pairs(docs: list[np.ndarray], keep: np.ndarray, window: int, n_old: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) id pairs after subsampling, reduced windows b ~ U{1..window} per centre,
    within one text, keeping only pairs that contain a new id (>= n_old)."""
    stream = np.concatenate(docs)
    doc = np.repeat(np.arange(len(docs), dtype=np.int32), [len(d) for d in docs])
    kept = rng.random(stream.size) < keep[stream]
    stream, doc = stream[kept], doc[kept]
    b = rng.integers(1, window + 1, stream.size)
    cs, xs = [], []
    for o in range(1, window + 1):
        same = doc[:-o] == doc[o:]
        left, right = stream[:-o], stream[o:]
        has_new = (left >= n_old) | (right >= n_old)
        fwd = same & has_new & (o <= b[:-o])   # centre i, context i + o
        bwd = same & has_new & (o <= b[o:])    # centre i + o, context i
        cs += [left[fwd], right[bwd]]
        xs += [right[fwd], left[bwd]]
    return np.concatenate(cs), np.concatenate(xs)


@dataclass
class Cw2vFit:
    result: InitResult
    support: np.ndarray
    """(S,) old ids that the rows mix."""
    weights: np.ndarray
    """(n_new, S) softmax(A): rows = weights @ E[support]; every row >= 0 and sums to 1."""


def fit_cw2v(ctx: InitContext, from_fvt: bool = False) -> Cw2vFit:
    """CW2V (see module); ``from_fvt`` starts A at FVT (``cw2v-fvt``)."""
    import torch

    p = dict(ctx.params)
    t0 = time.perf_counter()
    if "threads" in p:
        torch.set_num_threads(int(p["threads"]))
    torch.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    n_old, n_new = ctx.n_old, ctx.n_new
    docs = sv.encode_target(ctx.tokenizer_path,
                            sv.capped(ctx.target_texts(), int(p.get("max_target_bytes",
                                                                    16_000_000))))
    if not docs:
        raise InitError("cw2v: the target text is empty")
    counts = np.bincount(np.concatenate(docs), minlength=n_old + n_new).astype(np.int64)
    if counts.size > n_old + n_new:
        raise InitError(f"cw2v: {ctx.tokenizer_path} produces ids >= {n_old + n_new} "
                        "(old + new vocabulary): wrong tokenizer for this context")
    n_tokens = int(counts.sum())
    window, negs = int(p.get("window", 5)), int(p.get("negatives", 5))
    centres, contexts = skipgram_pairs(docs, keep_probability(counts, float(p.get(
        "subsample", 1e-4))), window, n_old, rng)
    del docs
    if centres.size == 0:
        raise InitError("cw2v: no skip-gram pair contains a new token: the new tokens do not "
                        "occur in the target text")

    top = np.argsort(-counts[:n_old], kind="stable")[:int(p.get("support", 2048))]
    top = top[counts[top] > 0]
    leaf_ids = np.concatenate([np.asarray(lv, dtype=np.int64) for lv in ctx.leaves])
    support = np.unique(np.concatenate([top, leaf_ids]))
    pos = np.full(n_old, -1, dtype=np.int64)
    pos[support] = np.arange(support.size)
    S = support.size

    A0 = np.zeros((n_new, S), dtype=np.float32)
    if from_fvt:
        mass = float(p.get("fvt_mass", 0.999))
        for i, lv in enumerate(ctx.leaves):
            ids, c = np.unique(np.asarray(lv), return_counts=True)
            others = S - ids.size
            base = np.log(mass / (1 - mass) * max(others, 1) / len(lv)) if others else 0.0
            A0[i, pos[ids]] = base + np.log(c)
    A = torch.nn.Parameter(torch.from_numpy(A0))
    E = torch.from_numpy(np.ascontiguousarray(ctx.embeddings))
    O = E if ctx.output_embeddings is None else torch.from_numpy(
        np.ascontiguousarray(ctx.output_embeddings))
    E_S, O_S = E[torch.from_numpy(support)], O[torch.from_numpy(support)]
    noise = torch.from_numpy(counts.astype(np.float64) ** float(p.get("noise_power", 0.75)))
    gen = torch.Generator().manual_seed(ctx.seed)
    opt = torch.optim.Adam([A], lr=float(p.get("lr", 0.05)))
    steps, batch = int(p.get("steps", 300)), int(p.get("batch_size", 8192))
    max_seconds = float(p["max_seconds"]) if p.get("max_seconds") not in (None, "") else None
    c_all, x_all = torch.from_numpy(centres.astype(np.int64)), torch.from_numpy(
        contexts.astype(np.int64))

    def rows_of(ids: torch.Tensor, table: torch.Tensor, mixed: torch.Tensor,
                slot: torch.Tensor) -> torch.Tensor:
        is_new = ids >= n_old
        old = table[ids.clamp(max=n_old - 1)]
        new = mixed[slot[(ids - n_old).clamp(min=0)]]
        return torch.where(is_new.unsqueeze(-1), new, old)

    t_train, losses, done = time.perf_counter(), [], 0
    slot = torch.zeros(n_new, dtype=torch.int64)
    for step in range(steps):
        sel = torch.randint(0, c_all.numel(), (batch,), generator=gen)
        c, x = c_all[sel], x_all[sel]
        n = torch.multinomial(noise, batch * negs, replacement=True, generator=gen).view(batch,
                                                                                        negs)
        every = torch.cat([c, x, n.flatten()])
        u = torch.unique(every[every >= n_old]) - n_old
        slot[u] = torch.arange(u.numel())
        W = torch.softmax(A[u], dim=-1)
        mixed_in = W @ E_S
        mixed_out = mixed_in if ctx.output_embeddings is None else W @ O_S
        v = rows_of(c, E, mixed_in, slot)
        uo = rows_of(x, O, mixed_out, slot)
        un = rows_of(n, O, mixed_out, slot)
        loss = -(torch.nn.functional.logsigmoid((v * uo).sum(-1))
                 + torch.nn.functional.logsigmoid(-(un @ v.unsqueeze(-1)).squeeze(-1)).sum(-1)
                 ).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        done = step + 1
        if ctx.progress and done % 50 == 0:
            ctx.progress("cw2v: steps", done, steps)
        if max_seconds is not None and time.perf_counter() - t_train > max_seconds:
            break
    t_end = time.perf_counter()

    with torch.no_grad():
        weights = torch.softmax(A, dim=-1)
        rows = (weights @ E_S).numpy()
        out_rows = None if ctx.output_embeddings is None else (weights @ O_S).numpy()
    weights_np = weights.numpy()
    leaf_mass = float(np.mean([weights_np[i, pos[np.unique(lv)]].sum()
                               for i, lv in enumerate(ctx.leaves)]))
    k = min(20, len(losses))
    details = {
        "support": int(S), "support_top_frequent": int(top.size),
        "support_from_leaves": int(np.setdiff1d(leaf_ids, top).size),
        "target_tokens": n_tokens, "pairs_with_new_token": int(centres.size),
        "steps": done, "steps_planned": steps, "batch_size": batch,
        "pairs_seen": done * batch, "window": window, "negatives": negs,
        "lr": float(p.get("lr", 0.05)), "start": "fvt" if from_fvt else "uniform",
        "loss_first": float(np.mean(losses[:k])) if losses else None,
        "loss_last": float(np.mean(losses[-k:])) if losses else None,
        "mean_mass_on_leaves": leaf_mass, "seed": ctx.seed,
        "seconds": {"prepare": round(t_train - t0, 2), "train": round(t_end - t_train, 2),
                    "per_step": round((t_end - t_train) / max(done, 1), 3),
                    "total": round(time.perf_counter() - t0, 2)},
        "deviations": DEVIATIONS,
    }
    return Cw2vFit(InitResult(rows.astype(np.float32), out_rows, {}, details), support,
                   weights_np)


def init_cw2v(ctx: InitContext) -> InitResult:
    """CW2V from a uniform mixture over the support (see module docstring)."""
    return fit_cw2v(ctx, from_fvt=False).result


def init_cw2v_fvt(ctx: InitContext) -> InitResult:
    """CW2V started at FVT: A puts 99.9 % of each row's mass on the token's merge-tree leaves."""
    return fit_cw2v(ctx, from_fvt=True).result
