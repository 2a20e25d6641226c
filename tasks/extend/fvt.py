"""FVT rows: the mean of the old embeddings of a new token's merge-tree leaves.

FVT (Fast Vocabulary Transfer, Gee et al., EMNLP 2022 industry track): a new token t that the base
tokenizer splits into old tokens l_1..l_m gets ``E[t] = (1/m) * sum_j E[l_j]``. With merge-aware
extension the split is exactly the merge-tree leaves (``InitContext.leaves``), repeats included.

One implementation shared by the ``fvt`` baseline and by every method that falls back to FVT for a
token it cannot place (WECHSEL: no static vector; FOCUS: too rare for the fastText space).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fvt_rows(embeddings: np.ndarray, leaves: Sequence[Sequence[int]]) -> np.ndarray:
    """(len(leaves), d) float32: row i is the mean of ``embeddings[leaves[i]]``."""
    out = np.empty((len(leaves), embeddings.shape[1]), dtype=np.float32)
    for i, ids in enumerate(leaves):
        if len(ids) == 0:
            raise ValueError(f"new token {i} has no merge-tree leaves: FVT is undefined for it")
        out[i] = embeddings[np.asarray(ids, dtype=np.int64)].mean(0, dtype=np.float64)
    return out
