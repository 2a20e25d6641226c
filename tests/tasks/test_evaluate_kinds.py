"""Round trip and reachability judged right for every kind of tokenizer ``train`` makes.

Each kind is trained by the project's train core on licence paragraphs (GPL-3, Apache-2.0,
MPL-2.0, LGPL-2.1, Artistic, GFDL-1.3: ~250 KB) and evaluated on the same real text, where a
lossless tokenizer must give every document back (round trip 0) and reach every checkable
token, while a deliberately lossy variant (a lowercasing normaliser; WordPiece's [UNK] for text
it has no pieces for) is caught. How each kind is judged: see tasks/evaluate/adapters.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenfoundry.schemas.evaluate import EvaluateSpec
from tokenfoundry.schemas.train import TrainSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.evaluate import metrics as M
from tokenfoundry.tasks.evaluate.adapters import load_tokenizer
from tokenfoundry.tasks.evaluate.core import measure
from tokenfoundry.tasks.train.core import train
from tf_fixtures.train import legal_records, legal_snapshot

SPEC = EvaluateSpec(tokenizers=["gpt2"], texts=["unused"], references=[])
KINDS = {
    "bytelevel": dict(model="bpe", vocab_size=1000),
    "bytelevel_lower": dict(model="bpe", vocab_size=1000, lowercase=True),
    "bytefallback": dict(model="bpe", vocab_size=1000, byte_fallback=True),
    "wordpiece": dict(model="wordpiece", vocab_size=1000),
    "unigram": dict(model="unigram", vocab_size=1000),
    "spm_bpe": dict(model="bpe", vocab_size=1000, backend="spm", normalization="NFKC",
                    byte_fallback=True),
    "spm_unigram_lower": dict(model="unigram", vocab_size=1000, backend="spm",
                              normalization="NFKC", lowercase=True, byte_fallback=True),
    "superbpe": dict(model="superbpe", vocab_size=1500),
}
CJK = "Licence 許可証 and 日本語 text"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kinds")
    ws = Workspace(root / "ws")
    legal_snapshot(ws)
    for name, kw in KINDS.items():
        train(ws, TrainSpec(corpora=["legal"], holdout_fraction=0.0, **kw), str(root / name))
    return {name: root / name for name in KINDS}


@pytest.fixture(scope="module")
def pool():
    paras = [r["text"] for r in legal_records()]
    return M.build_pool(paras)


def _m(path: Path, pool: M.TextPool):
    return measure(load_tokenizer(str(path)), pool, SPEC)


@pytest.mark.parametrize("kind", ["bytelevel", "bytefallback", "unigram", "wordpiece",
                                  "superbpe"])
def test_lossless_hf_kinds_round_trip_and_reach_every_token(trained, pool, kind):
    m = _m(trained[kind] / "tokenizer.json", pool)
    assert m.roundtrip_errors == 0 and m.roundtrip_checked_docs == pool.n_docs > 400
    assert m.unreachable_tokens == 0, m.unreachable_examples
    assert m.unk_rate == 0


def test_lowercasing_normaliser_is_a_round_trip_error(trained, pool):
    """decode(encode(x)) of a lowercasing byte-level BPE is lower case: every paragraph with a
    capital letter is an error; capital letters are unreachable tokens behind the normaliser."""
    m = _m(trained["bytelevel_lower"] / "tokenizer.json", pool)
    with_capitals = sum(d != d.lower() for d in pool.docs)
    assert m.roundtrip_errors == with_capitals > 0.9 * pool.n_docs
    assert {"A", "Z"} <= set(m.unreachable_examples)


def test_wordpiece_unk_is_caught_and_counted(trained):
    """WordPiece's whitespace convention is not an error; an [UNK] piece is."""
    ad = load_tokenizer(str(trained["wordpiece"] / "tokenizer.json"))
    pool = M.build_pool(["GNU  General\tPublic\n\nLicense, version 3.", CJK])
    m = measure(ad, pool, SPEC)
    assert m.roundtrip_errors == 1 and m.roundtrip_examples[0].startswith("text doc 1")
    assert m.unk_rate > 0


@pytest.mark.parametrize("kind", ["spm_bpe", "spm_unigram_lower"])
def test_sentencepiece_as_model_and_converted_tokenizer_json_agree(trained, pool, kind):
    """The converted tokenizer.json (normaliser NFKC + Prepend "▁" + Replace " "→"▁", decoder
    Replace/ByteFallback/Fuse/Strip) is judged as the native .model is: lossless with byte
    fallback (CJK too), every "▁" piece reachable; a lowercasing model is caught both ways."""
    docs = pool.docs + [CJK]
    big = M.build_pool(docs)
    native = _m(trained[kind] / "tokenizer.model", big)
    converted = _m(trained[kind] / "tokenizer.json", big)
    assert native.kind == "spm" and converted.kind == "hf"
    if kind == "spm_bpe":
        assert native.roundtrip_errors == converted.roundtrip_errors == 0
        assert native.byte_fallback_rate > 0 and converted.byte_fallback_rate > 0
    else:
        with_capitals = sum(d != d.lower() for d in docs)
        assert native.roundtrip_errors == converted.roundtrip_errors == with_capitals
    assert native.unreachable_tokens == converted.unreachable_tokens == 0
    assert native.n_tokens == converted.n_tokens


def test_superbpe_superwords_ending_in_a_space_are_reachable(trained):
    """SuperBPE's regex splits a trailing space off the end of a text, so " and " alone
    encodes as " and" + " "; followed by a digit it is one token, as in running text."""
    ad = load_tokenizer(str(trained["superbpe"] / "tokenizer.json"))
    enders = [i for i, s in enumerate(ad.surfaces)
              if s and s.endswith(b" ") and s.strip() and b" " in s.strip()[1:] + b" "
              and len(ad.encode_batch([s.decode()]).ids) > 1]
    assert enders  # superwords that the pre-tokenizer never forms alone
    assert not set(enders) & set(ad.unreachable[0])
