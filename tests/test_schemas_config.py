from __future__ import annotations

import pytest

from tokenfoundry.schemas.config import Spec, load_yaml_spec, stable_hash, validate_spec
from tokenfoundry.schemas.errors import BadInputError


class Toy(Spec):
    name: str
    vocab_size: int = 1000


def test_unknown_key_is_named_with_its_path(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("name: x\nvocab_sise: 5\n")
    with pytest.raises(BadInputError) as e:
        load_yaml_spec(Toy, p)
    assert "vocab_sise" in str(e.value) and str(p) in str(e.value)
    assert "unknown key" in str(e.value)


def test_spec_hash_is_stable_and_order_independent():
    a = validate_spec(Toy, {"name": "x", "vocab_size": 5}, "t")
    b = validate_spec(Toy, {"vocab_size": 5, "name": "x"}, "t")
    assert a.spec_hash() == b.spec_hash() == stable_hash({"name": "x", "vocab_size": 5})
    assert a.spec_hash() != validate_spec(Toy, {"name": "y", "vocab_size": 5}, "t").spec_hash()


# ---- YAML that is hostile or broken: one line, exit 2, never a traceback -------------------


def _read(tmp_path, data: bytes):
    from tokenfoundry.schemas.config import read_yaml_mapping

    p = tmp_path / "pipeline.yaml"
    p.write_bytes(data)
    with pytest.raises(BadInputError) as ei:
        read_yaml_mapping(p)
    msg = str(ei.value)
    assert "\n" not in msg and str(p) in msg
    return msg


def test_duplicate_key_names_both_lines(tmp_path):
    msg = _read(tmp_path, b"name: a\ntrain:\n  model: bpe\n  vocab_size: 8\n  model: unigram\n")
    assert "line 5: duplicate key 'model' (first given on line 3)" in msg


def test_duplicate_top_level_section(tmp_path):
    assert "line 3: duplicate key 'train' (first given on line 1)" in _read(
        tmp_path, b"train: {model: bpe}\nname: x\ntrain: {model: unigram}\n")


def test_non_utf8_bytes_name_line_and_offset(tmp_path):
    msg = _read(tmp_path, b"name: ok\ncorpus: caf\xe9\n")
    assert "line 2: not UTF-8 text (byte 0xe9 at offset 20)" in msg


def test_absurd_nesting_is_refused_without_recursion(tmp_path):
    assert "nested deeper than 32 levels" in _read(tmp_path, b"a: " + b"[" * 200_000 + b"]" * 200_000)
    assert "nested deeper than 32 levels" in _read(
        tmp_path, b"a:\n" + b"".join(b"  " * i + b"k:\n" for i in range(1, 60)) + b"  " * 60 + b"1\n")


def test_invalid_yaml_is_one_line(tmp_path):
    assert "not valid YAML" in _read(tmp_path, b"a: [1, 2\n")


def test_same_key_in_different_mappings_is_fine(tmp_path):
    from tokenfoundry.schemas.config import read_yaml_mapping

    p = tmp_path / "ok.yaml"
    p.write_text("a: {model: bpe}\nb: {model: unigram}\nc: [{x: 1}, {x: 2}]\n")
    assert read_yaml_mapping(p) == {"a": {"model": "bpe"}, "b": {"model": "unigram"},
                                    "c": [{"x": 1}, {"x": 2}]}
