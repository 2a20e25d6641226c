"""Every model/backend trains on real licence text, loads in AutoTokenizer and round-trips;
SuperBPE tokens cross spaces; training is deterministic; rounding and special-token ids."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tokenfoundry.schemas.train import TrainSpec, rounded_vocab_size
from tokenfoundry.storage.splits import is_heldout
from tokenfoundry.tasks.train.core import train
from tf_fixtures import train as fx


@pytest.fixture(scope="module")
def legal_ws(tmp_path_factory):
    from tokenfoundry.storage.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("trainws") / "ws")
    fx.legal_snapshot(ws)
    return ws


@pytest.fixture(scope="module")
def heldout_text(legal_ws):
    docs = legal_ws.resolve("legal").dataset().to_table(columns=["doc_id", "text", "content_hash"]).to_pylist()
    return [d["text"] for d in docs if is_heldout(d["content_hash"], 0.05)]


def _auto(path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


# (model, backend, byte_fallback, lossless): lossless = decode(encode(x)) == x for any text
CASES = [
    ("bpe", "hf", False, True),
    ("bpe", "hf", True, True),
    ("char-bpe", "hf", False, True),
    ("unigram", "hf", False, False),
    ("wordpiece", "hf", False, False),
    ("bpe", "spm", True, True),
    ("unigram", "spm", True, True),
    ("unigram", "spm", False, False),
]


@pytest.mark.parametrize("model,backend,fallback,lossless", CASES,
                         ids=[f"{m}-{b}{'-bytefb' if f else ''}" for m, b, f, _ in CASES])
def test_model_trains_loads_and_roundtrips(legal_ws, heldout_text, tmp_path, model, backend,
                                           fallback, lossless):
    spec = TrainSpec(corpora=["legal"], model=model, backend=backend, byte_fallback=fallback,
                     vocab_size=800, special_tokens=["<|endoftext|>", "<|pad|>"],
                     character_coverage=1.0)
    r = train(legal_ws, spec, str(tmp_path / "tok"))
    out = Path(r.out)
    assert (out / "tokenizer.json").is_file() and (out / "train_report.json").is_file()
    if backend == "spm":
        assert (out / "tokenizer.model").is_file() and (out / "tokenizer.vocab").is_file()
        assert r.extra["tokenizer_json_agreement"] >= 0.98  # converted tokenizer.json == spm
    assert r.vocab_size == 800
    if backend == "hf":
        assert r.special_tokens["<|endoftext|>"] == 0 and r.special_tokens["<|pad|>"] == 1
    tok = _auto(out)
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    sample = "\n\n".join(heldout_text[:5])
    ids = tok.encode(sample, add_special_tokens=False)
    assert 0 < len(ids) < len(sample.encode()) / 2.0  # compresses real text
    back = tok.decode(ids)
    if lossless:
        assert back == sample
        odd = "Ünïcødé — 日本語 ‘quotes’\ttab  two  spaces 12345"
        assert tok.decode(tok.encode(odd, add_special_tokens=False)) == odd
    elif model == "wordpiece":
        assert back.replace(" ", "") == sample.replace(" ", "").replace("\n", "")
    else:  # no byte fallback: newlines (never inside a training sentence) may become <unk>
        line = " ".join(sample.split())
        assert tok.decode(tok.encode(line, add_special_tokens=False)).split() == line.split()
    report = json.loads((out / "train_report.json").read_text())
    assert report["spec_hash"] == spec.spec_hash() and report["vocab"]["size"] == 800
    assert report["snapshots"][0]["snapshot_id"] == legal_ws.get_ref("legal", "latest")
    assert report["library_versions"]["tokenizers"]


def test_superbpe_tokens_cross_spaces_and_compress_more(legal_ws, heldout_text, tmp_path):
    common = dict(corpora=["legal"], vocab_size=1500, min_frequency=2)
    plain = train(legal_ws, TrainSpec(model="bpe", **common), str(tmp_path / "bpe"))
    sup = train(legal_ws, TrainSpec(model="superbpe", superbpe_transition=1200, **common),
                str(tmp_path / "super"))
    assert sup.vocab_size == 1500
    info = sup.extra["superbpe"]
    assert info["transition_point"] == 1200 and info["stage2_merges"] == 300
    assert info["superword_tokens"] > 100
    a, b = _auto(plain.out), _auto(sup.out)
    text = "\n\n".join(heldout_text)
    ids = b.encode(text, add_special_tokens=False)
    assert b.decode(ids) == text
    pieces = b.convert_ids_to_tokens(ids)
    assert any("Ġ" in p[1:] and p.strip("Ġ") for p in pieces)  # superwords in use
    n_plain = len(a.encode(text, add_special_tokens=False))
    assert len(ids) < 0.97 * n_plain
    # the stage-1 merges are the prefix of the final merge list
    m_sup = json.loads(Path(sup.out, "tokenizer.json").read_text())["model"]["merges"]
    stage1 = train(legal_ws, TrainSpec(model="bpe", **{**common, "vocab_size": 1200}),
                   str(tmp_path / "s1"))
    m_s1 = json.loads(Path(stage1.out, "tokenizer.json").read_text())["model"]["merges"]
    assert m_sup[:len(m_s1)] == m_s1 and len(m_sup) == len(m_s1) + 300
    # superwords span at most 4 words (the default bound), and some reach it
    words = [len(re.findall("[^\u0120\u010a\u0109\u010d]+", t)) for t in b.get_vocab()]
    assert max(words) == info["max_token_words"] <= 4 and info["max_words"] == 4


def test_superbpe_bounds_words_and_characters(legal_ws, tmp_path):
    from tokenizers import Tokenizer, decoders

    spec = TrainSpec(corpora=["legal"], vocab_size=1500, min_frequency=2, model="superbpe",
                     superbpe_transition=1200, superbpe_max_words=2, max_token_length=12)
    res = train(legal_ws, spec, str(tmp_path / "bounded"))
    info = res.extra["superbpe"]
    assert info["stage2_merges"] == 300 and info["dropped_too_long"] > 0
    tok = Tokenizer.from_file(str(Path(res.out, "tokenizer.json")))
    dec = decoders.ByteLevel()
    strings = [dec.decode([t]) for t in tok.get_vocab() if not t.startswith("<|")]
    assert max(len(s) for s in strings) <= 12
    assert max(len(s.split()) for s in strings) == 2  # superwords exist, none of 3 words


def _train_in_subprocess(ws, specs: list[TrainSpec], out: Path) -> None:
    """Train ``specs`` in a fresh Python process (fresh hash seeds, fresh thread pool)."""
    code = ("import sys, json; from tokenfoundry.storage.workspace import Workspace;"
            "from tokenfoundry.schemas.train import TrainSpec;"
            "from tokenfoundry.tasks.train.core import train\n"
            "for i, s in enumerate(json.loads(sys.argv[2])):\n"
            "    train(Workspace(sys.argv[1]), TrainSpec.model_validate(s), f'{sys.argv[3]}/{i}')")
    subprocess.run([sys.executable, "-c", code, ws.uri,
                    json.dumps([s.model_dump(mode="json") for s in specs]), str(out)],
                   check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "true"})


def test_same_snapshot_and_spec_give_identical_tokenizer(legal_ws, tmp_path):
    specs = [TrainSpec(corpora=["legal"], model=m, backend=b, vocab_size=700, max_bytes=60_000)
             for m, b in [("bpe", "hf"), ("unigram", "hf"), ("superbpe", "hf"),
                          ("unigram", "spm")]]
    _train_in_subprocess(legal_ws, specs, tmp_path / "a")
    _train_in_subprocess(legal_ws, specs, tmp_path / "b")
    for i, spec in enumerate(specs):
        a, b = tmp_path / "a" / str(i), tmp_path / "b" / str(i)
        assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes(), \
            spec.model
        if spec.backend == "spm":
            assert (a / "tokenizer.model").read_bytes() == (b / "tokenizer.model").read_bytes()
    # a different seed draws a different 60 kB sample, hence a different vocabulary
    other = train(legal_ws, specs[0].model_copy(update={"seed": 1}), str(tmp_path / "c"))
    assert other.vocab_sha256 != json.loads(
        (tmp_path / "a" / "0" / "train_report.json").read_text())["result"]["vocab_sha256"]


def test_vocab_rounding_and_padding(legal_ws, tmp_path):
    assert rounded_vocab_size(1000, "power_of_two") == 1024
    assert rounded_vocab_size(1000, "multiple_of_128") == 1024
    assert rounded_vocab_size(1000, "multiple_of_64") == 1024
    assert rounded_vocab_size(1025, "multiple_of_64") == 1088
    assert rounded_vocab_size(1000, "none") == 1000
    r = train(legal_ws, TrainSpec(corpora=["legal"], vocab_size=700, round_vocab="multiple_of_64"),
              str(tmp_path / "a"))
    assert r.vocab_size == 704 and r.padded_tokens == 0
    # char-bpe with 2-character tokens cannot fill 2048 entries: padded with reserved tokens
    r = train(legal_ws, TrainSpec(corpora=["legal"], model="char-bpe", max_token_length=2,
                                  vocab_size=1500, round_vocab="power_of_two"),
              str(tmp_path / "b"))
    assert r.vocab_size == 2048 and r.padded_tokens > 0
    vocab = json.loads(Path(r.out, "tokenizer.json").read_text())
    specials = {t["content"] for t in vocab["added_tokens"]}
    longest = max(len(t) for t in vocab["model"]["vocab"] if t not in specials)
    assert longest == 2
    assert any(t["content"] == "<|reserved_0|>" for t in vocab["added_tokens"])


def test_special_tokens_get_the_first_ids_in_order(legal_ws, tmp_path):
    specials = ["<s>", "</s>", "<pad>", "<mask>", "<|im_start|>"]
    for backend in ("hf", "spm"):
        r = train(legal_ws, TrainSpec(corpora=["legal"], vocab_size=600, backend=backend,
                                      special_tokens=specials), str(tmp_path / backend))
        offset = 0 if backend == "hf" else 1  # spm keeps <unk> at id 0
        assert r.special_tokens == {**{t: i + offset for i, t in enumerate(specials)},
                                    **({"<unk>": 0} if backend == "spm" else {})}
        tok = _auto(r.out)
        assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.mask_token) == \
            ("<s>", "</s>", "<pad>", "<mask>")
        ids = tok.encode("hello <|im_start|> world", add_special_tokens=False)
        assert specials.index("<|im_start|>") + offset in ids


def test_parity_aware_bpe_on_parallel_catalogs(workspace, tmp_path):
    fx.gettext_snapshot(workspace, langs=("de", "ja"))
    r = train(workspace, TrainSpec(corpora=["ui"], vocab_size=700, mix_by="lang",
                                   parity_aware=True, parity_dev_segments=200),
              str(tmp_path / "p"))
    assert r.vocab_size == 700 and r.extra["parity"]["languages"] == ["de", "ja"]
    assert r.extra["parity"]["dev_segments"] == 200
    assert set(r.realised_mix) == {"de", "ja"}
    tok = _auto(r.out)
    s = "Datei nicht gefunden — ファイルが見つかりません"
    assert tok.decode(tok.encode(s, add_special_tokens=False)) == s
