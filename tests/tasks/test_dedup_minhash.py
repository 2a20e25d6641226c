"""MinHash signatures, shingling rules and LSH parameters on real licence text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tokenfoundry.tasks.dedup.minhash import (
    Permutations, band_keys, collision_probability, estimated_jaccard, jaccard, optimal_param,
    shingle_set, signatures, words_of,
)

PERMS = Permutations.make(128, seed=42)


def _paragraphs(licence_dir: Path, min_words: int = 40) -> list[str]:
    out = []
    for name in ("Apache-2.0", "GPL-3", "MPL-2.0", "LGPL-2.1", "Artistic", "CC0-1.0"):
        p = licence_dir / name
        if p.is_file():
            out += [x for x in p.read_text(errors="replace").split("\n\n")
                    if len(x.split()) >= min_words]
    return out


def test_words_ignore_case_punctuation_and_spacing():
    wh, counts = words_of(pa.array(["The Licensor, hereby grants:", "the   licensor hereby\ngrants",
                                    "", None, " -- ; "]))
    assert counts.tolist() == [4, 4, 0, 0, 0]
    assert wh[:4].tolist() == wh[4:8].tolist()


def test_words_match_python_split_whatever_the_batch_layout():
    """Every word list equals Python's str.split + strip on real gettext messages, for many
    batch layouts (a regression: pyarrow's utf8_split_whitespace sometimes kept the trailing
    newline of a batch's last message on its last word, so signatures depended on batching)."""
    import gettext

    from tokenfoundry.tasks.dedup.minhash import PUNCTUATION

    texts: list[str] = []
    for mo in sorted(Path("/usr/share/locale").glob("[defs]?/LC_MESSAGES/*.mo"))[:40]:
        with open(mo, "rb") as fh:
            try:
                texts += [v for k, v in gettext.GNUTranslations(fh)._catalog.items()
                          if k and isinstance(v, str) and v.endswith("\n")]
            except (OSError, UnicodeDecodeError):
                continue
    if len(texts) < 200:
        pytest.skip("needs gettext catalogs under /usr/share/locale")
    expected = [[w.strip(PUNCTUATION) for w in t.lower().split() if w.strip(PUNCTUATION)]
                for t in texts]
    arr = pa.array(texts, pa.string())
    rng = np.random.default_rng(0)
    for _ in range(300):
        start = int(rng.integers(0, len(texts) - 50))
        n = int(rng.integers(1, 50))
        sel = np.sort(rng.choice(np.arange(start, start + 50), n, replace=False))
        wh, counts = words_of(arr.take(pa.array(sel)))
        want = [w for i in sel for w in expected[i]]
        assert counts.tolist() == [len(expected[i]) for i in sel]
        assert wh.tolist() == words_of(pa.array([" ".join(want)]))[0].tolist()


def test_estimate_tracks_true_jaccard_on_edited_licence_paragraphs(licence_dir):
    rng = np.random.default_rng(7)
    errors, trues = [], []
    for text in _paragraphs(licence_dir)[:120]:
        words = text.split()
        for _ in range(int(rng.integers(1, 6))):  # a few word substitutions ("Licensor"->"Owner")
            words[int(rng.integers(len(words)))] = "Owner"
        edited = " ".join(words)
        sig, has = signatures([text, edited], PERMS)
        assert has.all()
        true = jaccard(shingle_set(text), shingle_set(edited))
        errors.append(float(estimated_jaccard(sig[0], sig[1])) - true)
        trues.append(true)
    errors = np.array(errors)
    assert 0.3 < np.mean(trues) < 0.98
    assert abs(errors.mean()) < 0.01  # unbiased
    # standard error of a 128-permutation estimate is sqrt(J(1-J)/128) <= 0.044
    assert 0.01 < errors.std() < 0.05
    assert np.abs(errors).max() < 0.2


def test_batches_chunks_and_order_do_not_change_signatures(licence_dir):
    gpl3 = (licence_dir / "GPL-3").read_text()  # ~5,600 words: spans several 4,096-shingle chunks
    paras = _paragraphs(licence_dir)[:30]
    batch = [paras[0], gpl3, "", *paras[1:]]
    sig, has = signatures(batch, PERMS)
    assert has.tolist() == [True, True, False] + [True] * (len(paras) - 1)
    for i in (0, 1, 3, len(batch) - 1):
        alone, _ = signatures([batch[i]], PERMS)
        assert np.array_equal(alone[0], sig[i])
    rev, _ = signatures(batch[::-1], PERMS)
    assert np.array_equal(rev[::-1], sig)
    assert (sig[2] == 0xFFFFFFFF).all()


def test_signature_is_the_min_over_shingles_of_each_permutation():
    text = "Permission is hereby granted, free of charge, to any person obtaining a copy"
    sh = np.array(sorted(shingle_set(text)), dtype=np.uint64)
    x = sh & np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        expected = ((x[None, :] * PERMS.a[:, None] + PERMS.b[:, None]) >> np.uint64(32)).min(axis=1)
    sig, _ = signatures([text], PERMS)
    assert np.array_equal(sig[0], expected.astype(np.uint32))


def test_short_documents_are_one_shingle():
    assert len(shingle_set("see the COPYING file")) == 1  # 4 words < 5: the whole text
    assert shingle_set("See the copying file.") == shingle_set("see the COPYING file")
    assert shingle_set("see the COPYING") != shingle_set("see the COPYING file")
    assert len(shingle_set("one two three four five six")) == 2
    assert shingle_set("") == set() and shingle_set(None) == set()
    sig, has = signatures(["See the copying file.", "see the COPYING file", "MIT"], PERMS)
    assert has.all() and np.array_equal(sig[0], sig[1]) and not np.array_equal(sig[0], sig[2])


def test_permutations_and_band_keys_are_stable():
    p = Permutations.make(4, seed=1)
    assert p.a.tolist() == Permutations.make(4, seed=1).a.tolist()
    assert p.a.tolist() != Permutations.make(4, seed=2).a.tolist()
    assert all(int(a) % 2 == 1 for a in p.a)
    sig = np.array([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4]], dtype=np.uint32)
    k = band_keys(sig, 2, 2)
    assert k[0, 0] == k[1, 0] == k[2, 0] and k[0, 1] == k[2, 1] != k[1, 1]
    assert k[0, 0] != k[0, 1]


@pytest.mark.parametrize("threshold,num_perm,expected", [
    (0.7, 250, (25, 10)),  # text-dedup's reported optimum for 0.7 / 250 permutations
    (0.8, 128, (9, 13)),
])
def test_optimal_param_matches_text_dedup(threshold, num_perm, expected):
    assert optimal_param(threshold, num_perm) == expected


def test_recall_leaning_bands_catch_pairs_at_the_threshold():
    b, r = optimal_param(0.8, 128, 0.1, 0.9)
    assert (b, r) == (14, 9) and b * r <= 128
    assert collision_probability(0.8, b, r) > 0.85
    assert collision_probability(0.5, b, r) < 0.03
