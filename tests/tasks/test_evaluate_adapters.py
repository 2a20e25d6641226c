"""Loading every kind of tokenizer the evaluator accepts, offline."""

from __future__ import annotations


import pytest

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.tasks.evaluate.adapters import load_reference, load_tokenizer
from tf_fixtures import evaluate as FX


# Published token ids of "Hello, world!" for each reference (tiktoken / HF hub tokenizers).
KNOWN = {
    "o200k": ([13225, 11, 2375, 0], 200019),
    "cl100k": ([9906, 11, 1917, 0], 100277),
    "llama3": ([9906, 11, 1917, 0], 128256),
    "qwen3": ([9707, 11, 1879, 0], 151669),
    "gpt2": ([15496, 11, 995, 0], 50257),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_reference_loads_offline_with_known_ids(name):
    ad = load_reference(name)
    ids, vocab = KNOWN[name]
    enc = ad.encode_batch(["Hello, world!", "", "naïve 日本語"])
    assert enc.doc(0).tolist() == ids
    assert enc.counts[1] == 0
    assert ad.vocab_size == vocab
    assert ad.byte_exact(["naïve 日本語"]).all() and ad.is_reference
    # the token surfaces are the exact bytes, and decode_batch gives the text back
    assert b"".join(ad.surfaces[i] for i in enc.doc(2).tolist()) == "naïve 日本語".encode()
    assert ad.decode_batch(enc.lists()) == ["Hello, world!", "", "naïve 日本語"]


def test_reference_aliases_and_labels():
    assert load_tokenizer("o200k_base").name == "o200k"
    assert load_tokenizer("gpt-2").name == "gpt2"
    assert load_tokenizer("base=cl100k").name == "base"


def test_tokenizer_json_file_directory_and_label(tmp_path):
    path = FX.train_bytelevel_bpe(tmp_path / "legal" / "tokenizer.json")
    by_file = load_tokenizer(str(path))
    by_dir = load_tokenizer(str(path.parent))
    labelled = load_tokenizer(f"cand={path.parent}")
    assert by_file.name == by_dir.name == "legal" and labelled.name == "cand"
    a = by_file.encode_batch(["GNU General Public License"]).ids.tolist()
    assert a == by_dir.encode_batch(["GNU General Public License"]).ids.tolist()
    assert by_file.kind == "hf" and by_file.byte_exact(["GNU"]).all()


def test_autotokenizer_directory(tmp_path):
    """A directory in the slow GPT-2 format (vocab.json + merges.txt + tokenizer_config.json)
    loads through transformers' AutoTokenizer."""
    import json

    from tokenizers import Tokenizer

    path = FX.train_bytelevel_bpe(tmp_path / "src" / "tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    d = tmp_path / "auto"
    d.mkdir()
    tok.model.save(str(d))
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    ad = load_tokenizer(str(d))
    assert ad.kind == "hf" and ad.name == "auto"
    text = "the License, Version 2.0"
    assert ad.encode_batch([text]).ids.tolist() == tok.encode(text).ids
    # a directory with nothing loadable is a clear error
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="AutoTokenizer could not load"):
        load_tokenizer(str(tmp_path / "empty"))


def test_sentencepiece_model(tmp_path):
    import sentencepiece as spm

    path = FX.train_spm(tmp_path / "spm.model")
    ad = load_tokenizer(str(path))
    sp = spm.SentencePieceProcessor(model_file=str(path))
    text = "Licensed under the Apache License"
    assert ad.kind == "spm"
    assert ad.encode_batch([text]).ids.tolist() == sp.encode(text)
    assert ad.byte_fallback_mask.sum() == 256


def test_unknown_tokenizer_and_registry_errors(tmp_path):
    with pytest.raises(BadInputError, match="not a reference name"):
        load_tokenizer("no-such-thing")
    with pytest.raises(BadInputError, match="unsupported tokenizer file"):
        p = tmp_path / "x.bin"
        p.write_bytes(b"\0")
        load_tokenizer(str(p))
    with pytest.raises(BadInputError):
        load_tokenizer("legal-bpe@production", registry=str(tmp_path / "empty-registry"))


def test_registry_ref_is_pulled_and_loaded(tmp_path):
    from tokenfoundry.storage.registry import Registry

    path = FX.train_bytelevel_bpe(tmp_path / "legal" / "tokenizer.json")
    reg = Registry(str(tmp_path / "registry"))
    reg.publish("legal-bpe", str(path.parent), aliases=["production"])
    ad = load_tokenizer("legal-bpe@production", registry=str(tmp_path / "registry"))
    assert ad.source == "legal-bpe@production" and ad.name == "legal-bpe@production"
    direct = load_tokenizer(str(path))
    text = "Licensor grants You a worldwide licence"
    assert ad.encode_batch([text]).ids.tolist() == direct.encode_batch([text]).ids.tolist()
    with pytest.raises(Exception) as ei:
        load_tokenizer("legal-bpe@7", registry=str(tmp_path / "registry"))
    assert getattr(ei.value, "exit_code", None) in (1, 2)
