"""Union-find (disjoint sets) over document indices: connected components of duplicate edges.

Union attaches the larger root under the smaller, so every component's root is its smallest
index, i.e. the document ranked first by (source, location, doc_id): the representative kept.
Written by hand because it is ten lines; scipy's connected_components would give labels, not
this deterministic "smallest member is the root" property without a second pass.
"""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving; roots are component minima."""

    def __init__(self, n: int, parent: np.ndarray | None = None):
        self.parent: list[int] = (list(range(n)) if parent is None
                                  else np.asarray(parent, dtype=np.int64).tolist())

    def find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if ra < rb:
            self.parent[rb] = ra
        else:
            self.parent[ra] = rb
        return True

    def union_edges(self, a: np.ndarray, b: np.ndarray) -> int:
        """Union every edge (a[i], b[i]); returns the number of merges."""
        merged = 0
        for x, y in zip(np.asarray(a).tolist(), np.asarray(b).tolist()):
            merged += self.union(x, y)
        return merged

    def roots(self) -> np.ndarray:
        """The root (component minimum) of every element, as int64."""
        par = np.asarray(self.parent, dtype=np.int64)
        while True:
            nxt = par[par]
            if np.array_equal(nxt, par):
                return par
            par = nxt


def size_histogram(roots: np.ndarray) -> dict[str, int]:
    """Number of clusters by size bucket ("1", "2", "3-5", "6-10", "11-100", ">100")."""
    sizes = np.bincount(roots)
    sizes = sizes[sizes > 0]
    edges = [("1", 1, 1), ("2", 2, 2), ("3-5", 3, 5), ("6-10", 6, 10), ("11-100", 11, 100),
             (">100", 101, np.iinfo(np.int64).max)]
    return {name: int(((sizes >= lo) & (sizes <= hi)).sum()) for name, lo, hi in edges}
