"""Merge-aware extension: every guarantee of tasks/extend/merges.py on real text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from tf_fixtures.extend import english_docs, gettext_docs, tiny_base
from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.tasks.extend.merges import learn_merges


@pytest.fixture(scope="module")
def base_json(tmp_path_factory):
    d = tiny_base(tmp_path_factory.mktemp("base"))
    return json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def uk():
    docs = gettext_docs("uk")
    return docs[: len(docs) // 2], docs[len(docs) // 2:]


@pytest.fixture(scope="module")
def ext(base_json, uk):
    return learn_merges(base_json, uk[0], 300)


def _tok(data):
    return Tokenizer.from_str(json.dumps(data))


def test_old_entries_keep_ids_and_merges_are_a_prefix(base_json, ext):
    old_vocab, new_vocab = base_json["model"]["vocab"], ext.data["model"]["vocab"]
    assert all(new_vocab[t] == i for t, i in old_vocab.items())
    old_m, new_m = base_json["model"]["merges"], ext.data["model"]["merges"]
    assert new_m[: len(old_m)] == old_m and len(new_m) == len(old_m) + 300
    assert ext.data["added_tokens"] == base_json["added_tokens"]


def test_new_ids_contiguous_and_not_added_tokens(base_json, ext):
    n_old = _tok(base_json).get_vocab_size()
    assert ext.n_old == n_old
    ids = sorted(ext.data["model"]["vocab"][t] for t in ext.new_tokens)
    assert ids == list(range(n_old, n_old + 300))
    added = {a["content"] for a in ext.data["added_tokens"]}
    assert not added & set(ext.new_tokens)
    assert _tok(ext.data).get_vocab_size() == n_old + 300


def test_refinement_decode_roundtrip_and_compression(base_json, ext, uk):
    old, new = _tok(base_json), _tok(ext.data)
    n_old = ext.n_old
    total_old = total_new = 0
    for text in uk[1][:400]:
        a, b = old.encode(text).ids, new.encode(text).ids
        expanded = [x for i in b for x in (ext.leaves[i - n_old] if i >= n_old else [i])]
        assert expanded == a, text
        assert new.decode(b) == text
        total_old, total_new = total_old + len(a), total_new + len(b)
    assert total_new < 0.75 * total_old  # held-out Ukrainian: at least 25 % fewer tokens


def test_every_new_token_reaches_itself(ext):
    new = _tok(ext.data)
    complete = 0
    for i, b in enumerate(ext.new_token_bytes):
        try:
            text = b.decode("utf-8")
        except UnicodeDecodeError:
            continue
        complete += 1
        assert new.encode(text).ids == [ext.n_old + i], text
    assert complete > 250


def test_leaves_spell_the_token(base_json, ext):
    old = _tok(base_json)
    for s, leaves in zip(ext.new_tokens, ext.leaves):
        assert "".join(old.id_to_token(i) for i in leaves) == s


def test_script_filter_leaves_ascii_text_unchanged(base_json, uk):
    ext = learn_merges(base_json, uk[0] + english_docs()[:200], 300, filter="script")
    old, new = _tok(base_json), _tok(ext.data)
    for text in english_docs(("BSD", "Artistic")):
        assert new.encode(text).ids == old.encode(text).ids
    assert all(any(x >= 0x80 for x in b) for b in ext.new_token_bytes)
    assert ext.skipped.get("script", 0) > 0


def test_no_digit_merges(base_json):
    texts = ["рік 2024 і 1999, 2024 рік, номер 12345 і 2024"] * 50
    ext = learn_merges(base_json, texts, 50)
    assert not any(any(48 <= x <= 57 for x in b) for b in ext.new_token_bytes)
    assert ext.skipped.get("digit", 0) > 0


def test_text_without_new_merges_encodes_identically(base_json, ext):
    old, new = _tok(base_json), _tok(ext.data)
    for text in english_docs(("BSD",)):  # English: the Ukrainian merges never apply
        assert new.encode(text).ids == old.encode(text).ids


def test_reference_filter_prefers_target_specific_pairs(base_json, uk):
    plain = learn_merges(base_json, uk[0], 100)
    ref = learn_merges(base_json, uk[0], 100, filter="reference", reference=uk[1])
    assert plain.new_tokens != ref.new_tokens
    with pytest.raises(BadInputError, match="reference"):
        learn_merges(base_json, uk[0], 10, filter="reference")


def test_non_bpe_base_is_refused(base_json):
    data = json.loads(json.dumps(base_json))
    data["model"]["type"] = "Unigram"
    with pytest.raises(BadInputError, match="not BPE"):
        learn_merges(data, ["текст"], 10)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("абвгдеєжзиіїйклмнопрстуфхцчшщьюяАБВ ,.\n1a'")),
               max_size=200))
def test_roundtrip_and_refinement_property(base_json, ext, text):
    old, new = _tok(base_json), _tok(ext.data)
    b = new.encode(text).ids
    assert new.decode(b) == text
    expanded = [x for i in b for x in (ext.leaves[i - ext.n_old] if i >= ext.n_old else [i])]
    assert expanded == old.encode(text).ids
