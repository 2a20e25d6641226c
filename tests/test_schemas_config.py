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
