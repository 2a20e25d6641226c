"""WECHSEL, CW2V and FOCUS on a tiny random embedding matrix, a tiny real byte-level BPE
tokenizer extended by more merges, and real Ukrainian/English gettext text from this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
from tokenfoundry.tasks.extend.cw2v import fit_cw2v, keep_probability
from tokenfoundry.tasks.extend.dictionaries import freedict_pairs, load_dictionary
from tokenfoundry.tasks.extend.focus import fit_focus, sparsemax
from tokenfoundry.tasks.extend.fvt import fvt_rows
from tokenfoundry.tasks.extend.init import InitContext, InitError, initialise
from tokenfoundry.tasks.extend.wechsel import fit_wechsel, procrustes
from tokenfoundry.tasks.ingest.readers import read_unit

UK = Path("/usr/share/locale/uk/LC_MESSAGES")
N_BASE, N_EXT, D = 320, 420, 16

pytestmark = pytest.mark.skipif(not UK.is_dir(), reason="needs the uk gettext catalogs")


def _byte_decoder() -> dict[str, int]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _catalog_pairs(max_bytes: int = 250_000) -> list[tuple[str, str]]:
    spec = IngestSpec(corpus="t", sources=[str(UK)], format="mo", include_msgid=True, lang="uk")
    out, total = [], 0
    for i, p in enumerate(sorted(UK.glob("*.mo"))):
        unit = IngestUnit(name=f"{i:05d}-0000", path=str(p), format="mo",
                          size=os.path.getsize(p))
        ids: dict[str, str] = {}
        for rec, _ in read_unit(unit, spec):
            for text, lang, key in zip(rec.text, rec.lang, rec.align_key):
                if lang == "en":
                    ids[key] = text
                elif key in ids:
                    out.append((ids[key], text))
                    total += len(text.encode())
        if total > max_bytes:
            break
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Base = byte-level BPE with N_BASE tokens on Ukrainian text; extended = the same training
    to N_EXT (BPE training is greedy, so its merges continue the base's: checked below)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    d = tmp_path_factory.mktemp("inits")
    pairs = _catalog_pairs()
    uk_text = [t for _, t in pairs]
    (d / "en.txt").write_text("\n".join(s for s, _ in pairs), encoding="utf-8")
    paths = {}
    for n in (N_BASE, N_EXT):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(uk_text, trainers.BpeTrainer(
            vocab_size=n, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        paths[n] = d / f"tok{n}.json"
        tok.save(str(paths[n]))
    base, ext = (json.loads(paths[n].read_text())["model"] for n in (N_BASE, N_EXT))
    assert ext["merges"][:len(base["merges"])] == base["merges"]
    assert all(ext["vocab"][s] == i for s, i in base["vocab"].items())
    inv = {i: s for s, i in ext["vocab"].items()}
    merge_of = {"".join(m if isinstance(m, list) else m.split(" ")): m
                for m in ext["merges"][len(base["merges"]):]}

    def leaves(tid: int) -> list[int]:
        if tid < N_BASE:
            return [tid]
        a, b = merge_of[inv[tid]] if isinstance(merge_of[inv[tid]], list) else \
            merge_of[inv[tid]].split(" ")
        return leaves(ext["vocab"][a]) + leaves(ext["vocab"][b])

    dec = _byte_decoder()
    tb = {i: bytes(dec[c] for c in s) for i, s in inv.items()}
    emb = np.random.default_rng(7).normal(0, 0.5, (N_BASE, D)).astype(np.float32)
    return {
        "dir": d, "uk": uk_text, "emb": emb, "paths": paths,
        "old": [inv[i] for i in range(N_BASE)], "new": [inv[i] for i in range(N_BASE, N_EXT)],
        "old_b": [tb[i] for i in range(N_BASE)], "new_b": [tb[i] for i in range(N_BASE, N_EXT)],
        "leaves": [leaves(i) for i in range(N_BASE, N_EXT)],
    }


def _ctx(world, seed: int = 0, **params) -> InitContext:
    uk = world["uk"]
    return InitContext(
        embeddings=world["emb"], output_embeddings=None, old_tokens=world["old"],
        old_token_bytes=world["old_b"], new_tokens=world["new"], new_token_bytes=world["new_b"],
        leaves=world["leaves"], target_texts=lambda: iter(uk),
        tokenizer_path=world["paths"][N_EXT], base_tokenizer_path=world["paths"][N_BASE],
        init_std=0.02, seed=seed, params=params)


WECHSEL_FAST = dict(dim=16, epochs=3, min_count=2, min_n=3)  # tiny vocab: short tokens


def _wechsel_params(world):
    return dict(WECHSEL_FAST, dictionary="gettext:uk", source_texts=str(world["dir"] / "en.txt"))


def test_wechsel_rows_are_softmax_means_of_k_old_rows(world):
    fit = fit_wechsel(_ctx(world, **_wechsel_params(world)))
    E, rows = world["emb"], fit.result.rows
    n_new = N_EXT - N_BASE
    assert rows.shape == (n_new, D)
    assert len(fit.placed) > n_new // 2  # most new tokens are placed, not fallbacks
    assert fit.neighbours.shape == fit.weights.shape == (len(fit.placed), 10)
    assert (fit.weights >= 0).all()
    np.testing.assert_allclose(fit.weights.sum(1), 1.0, atol=1e-5)
    assert (np.diff(fit.weights, axis=1) <= 1e-7).all()  # most similar neighbour first
    assert ((fit.neighbours >= 0) & (fit.neighbours < N_BASE)).all()
    for j, t in enumerate(fit.placed):
        assert len(set(fit.neighbours[j].tolist())) == 10
        np.testing.assert_allclose(rows[t], fit.weights[j] @ E[fit.neighbours[j]], atol=1e-5)
    rest = np.setdiff1d(np.arange(n_new), fit.placed)
    np.testing.assert_allclose(rows[rest], fvt_rows(E, [world["leaves"][i] for i in rest]),
                               atol=1e-6)
    assert sum(fit.result.fallbacks.values()) == rest.size
    det = fit.result.details
    assert det["dictionary"] == "gettext:uk" and det["dictionary_pairs"] > 5000
    assert 16 <= det["dictionary_pairs_found"] <= det["dictionary_pairs"]


def test_wechsel_same_seed_same_rows_through_the_registry(world):
    a = initialise("wechsel", _ctx(world, seed=3, **_wechsel_params(world)))
    b = initialise("wechsel", _ctx(world, seed=3, **_wechsel_params(world)))
    assert np.array_equal(a.rows, b.rows)


def test_wechsel_missing_dictionary_names_it_and_the_package(world, tmp_path):
    with pytest.raises(InitError) as e:
        initialise("wechsel", _ctx(world, dictionary="freedict-eng-deu", dictd_dir=str(tmp_path),
                                   **WECHSEL_FAST))
    msg = str(e.value)
    assert "freedict-eng-deu" in msg and "apt-get install dict-freedict-eng-deu" in msg
    assert str(tmp_path / "freedict-eng-deu.index") in msg


def test_dictionaries_read_real_freedict_and_gettext():
    if not Path("/usr/share/dictd/freedict-eng-deu.index").is_file():
        pytest.skip("dict-freedict-eng-deu not installed")
    pairs = freedict_pairs("freedict-eng-deu")
    assert len(pairs) > 200_000 and ("house", "Haus") in pairs and ("water", "Wasser") in pairs
    assert all(" " not in s and " " not in t for s, t in pairs[:1000])
    name, uk = load_dictionary("auto", "uk")
    assert name == "gettext:uk" and len(uk) > 5000 and ("Password", "Пароль") in uk


def test_procrustes_recovers_a_rotation():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    x = rng.normal(size=(100, 8)).astype(np.float32)
    w = procrustes(x, x @ q)
    np.testing.assert_allclose(w, q, atol=1e-4)
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)


CW2V_FAST = dict(steps=15, batch_size=256, support=64)


def test_cw2v_rows_are_convex_combinations_of_old_rows(world):
    fit = fit_cw2v(_ctx(world, **CW2V_FAST))
    w, E = fit.weights, world["emb"]
    assert w.shape == (N_EXT - N_BASE, fit.support.size)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fit.result.rows, w @ E[fit.support], atol=1e-5)
    flat = {i for lv in world["leaves"] for i in lv}
    assert flat <= set(fit.support.tolist())  # every leaf is in the support
    det = fit.result.details
    assert det["steps"] == 15 and det["pairs_with_new_token"] > 0
    # training moved the mixture away from uniform
    assert not np.allclose(w, 1.0 / fit.support.size, atol=1e-4)


def test_cw2v_fvt_starts_at_fvt_and_same_seed_same_rows(world):
    start = fit_cw2v(_ctx(world, **dict(CW2V_FAST, steps=0)), from_fvt=True)
    fvt = fvt_rows(world["emb"], world["leaves"])
    np.testing.assert_allclose(start.result.rows, fvt, atol=0.01)
    assert start.result.details["mean_mass_on_leaves"] > 0.998
    a = initialise("cw2v-fvt", _ctx(world, seed=5, **CW2V_FAST))
    b = initialise("cw2v-fvt", _ctx(world, seed=5, **CW2V_FAST))
    c = initialise("cw2v-fvt", _ctx(world, seed=6, **CW2V_FAST))
    assert np.array_equal(a.rows, b.rows) and not np.array_equal(a.rows, c.rows)
    assert not np.allclose(a.rows, start.result.rows, atol=1e-7)  # the steps did move it


def test_subsampling_keeps_rare_tokens_and_drops_frequent_ones():
    counts = np.array([1_000_000, 1_000, 1, 0])
    p = keep_probability(counts, 1e-4)
    tn = 1e-4 * counts.sum()  # word2vec.c: (sqrt(f / (t N)) + 1) * (t N) / f
    np.testing.assert_allclose(p[:2], (np.sqrt(counts[:2] / tn) + 1) * tn / counts[:2])
    assert p[0] < 0.02 and 0.4 < p[1] < 0.43 and p[2] == 1.0 and p[3] == 0.0


def test_sparsemax_is_the_simplex_projection():
    np.testing.assert_allclose(sparsemax(np.array([[1.0, 0.5, -1.0]])), [[0.75, 0.25, 0.0]])
    z = np.random.default_rng(1).normal(size=(5, 40))
    p = sparsemax(z)
    assert (p >= 0).all() and np.allclose(p.sum(1), 1.0) and (p == 0).any()


FOCUS_FAST = dict(dim=16, epochs=2, min_count=3)


def test_focus_rows_are_sparse_convex_combinations_of_anchor_rows(world):
    fit = fit_focus(_ctx(world, **FOCUS_FAST))
    E, rows = world["emb"], fit.result.rows
    assert fit.placed.size > (N_EXT - N_BASE) // 2
    assert ((fit.anchors >= 0) & (fit.anchors < N_BASE)).all()
    assert (fit.weights > 0).all()
    for j, t in enumerate(fit.placed):
        sl = slice(fit.indptr[j], fit.indptr[j + 1])
        assert fit.indptr[j + 1] > fit.indptr[j]
        np.testing.assert_allclose(fit.weights[sl].sum(), 1.0, atol=1e-6)
        np.testing.assert_allclose(rows[t], fit.weights[sl] @ E[fit.anchors[fit.indices[sl]]],
                                   atol=1e-5)
    n_rare = N_EXT - N_BASE - fit.placed.size
    assert fit.result.fallbacks.get("rare_token_fvt", 0) == n_rare
    assert fit.result.details["mean_nonzero_weights"] < fit.anchors.size  # sparse


def test_focus_same_seed_same_rows(world):
    a = initialise("focus", _ctx(world, seed=2, **FOCUS_FAST))
    b = initialise("focus", _ctx(world, seed=2, **FOCUS_FAST))
    assert np.array_equal(a.rows, b.rows)
