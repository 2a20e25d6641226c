"""Union-find clusters and exact pair Jaccard."""

from __future__ import annotations

import numpy as np

from tokenfoundry.tasks.dedup.clusters import UnionFind, size_histogram
from tokenfoundry.tasks.dedup.lsh import pair_jaccard


def test_roots_are_component_minima_whatever_the_edge_order():
    edges = [(5, 3), (3, 9), (7, 8), (1, 0), (9, 4)]
    for order in (edges, edges[::-1], sorted(edges)):
        uf = UnionFind(10)
        uf.union_edges(np.array([a for a, _ in order]), np.array([b for _, b in order]))
        assert uf.roots().tolist() == [0, 0, 2, 3, 3, 3, 6, 7, 7, 3]
    assert size_histogram(uf.roots()) == {"1": 2, "2": 2, "3-5": 1, "6-10": 0, "11-100": 0,
                                          ">100": 0}


def test_initial_parent_array_and_pair_jaccard():
    uf = UnionFind(4, np.array([0, 0, 2, 2]))  # two exact groups
    assert uf.union(3, 1) and not uf.union(2, 0)
    assert uf.roots().tolist() == [0, 0, 0, 0]
    sets = {0: np.array([1, 2, 3, 4], np.uint64), 1: np.array([2, 3, 4, 5], np.uint64),
            2: np.array([], np.uint64)}
    assert pair_jaccard(np.array([0, 0, 2]), np.array([1, 0, 2]), sets).tolist() == [0.6, 1.0, 1.0]
