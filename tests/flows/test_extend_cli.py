"""``tokenfoundry extend`` and ``tokenfoundry evaluate --model`` on a tiny random Llama."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from tf_fixtures.extend import english_docs, gettext_docs, tiny_base
from tokenfoundry.flows.cli import app

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    base = tiny_base(d / "base")
    docs = gettext_docs("uk")
    (d / "uk.txt").write_text("\n".join(docs[: len(docs) // 2]), encoding="utf-8")
    (d / "held.txt").write_text("\n".join(docs[len(docs) // 2:][:150]), encoding="utf-8")
    return d, base


def _run(*args):
    return CliRunner().invoke(app, list(args))


def test_help_has_an_example():
    r = _run("extend", "--help")
    assert r.exit_code == 0 and "tokenfoundry extend --base smollm2" in r.output


def test_extend_json_and_evaluate_bits_per_byte(env, tmp_path):
    d, base = env
    out = tmp_path / "ext"
    r = _run("extend", "--base", str(base), "--corpus", str(d / "uk.txt"), "--new-tokens", "80",
             "--init", "fvt", "--filter", "script", "--heldout", str(d / "held.txt"),
             "--out", str(out), "--json", "--workspace", str(tmp_path / "ws"))
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["tokens_added"] == 80 and rep["init"] == "fvt" and rep["filter"] == "script"
    assert rep["bytes_per_token_after"] > rep["bytes_per_token_before"]
    assert json.loads((out / "extend_report.json").read_text())["spec_hash"] == rep["spec_hash"]

    r = _run("evaluate", "--model", f"base={base}", "--model", f"ext={out}", "--text",
             str(d / "held.txt"), "--reference", "none", "--out", str(tmp_path / "ev"),
             "--json", "--workspace", str(tmp_path / "ws"))
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    b, e = res["tokenizers"]["base"], res["tokenizers"]["ext"]
    assert b["bits_per_byte_vs_first"] == 1.0
    assert b["bpb_bytes"] == e["bpb_bytes"] == len((d / "held.txt").read_bytes())
    assert e["bpb_tokens"] < b["bpb_tokens"]
    # extend's own bits/byte (same code path, same text, same segments) agrees
    assert math.isclose(e["bits_per_byte"], rep["bits_per_byte"], rel_tol=1e-5)
    assert math.isclose(b["bits_per_byte"], rep["bits_per_byte_base"], rel_tol=1e-5)
    assert (tmp_path / "ev" / "bits_per_byte.parquet").is_file()
    assert "Bits per byte" in (tmp_path / "ev" / "report.md").read_text()

    gate = f"bits_per_byte <= {b['bits_per_byte'] / 2}"  # fails: exit 1, naming the metric
    r = _run("evaluate", "--model", f"base={base}", "--text", str(d / "held.txt"),
             "--reference", "none", "--out", str(tmp_path / "ev2"), "--gate", gate,
             "--workspace", str(tmp_path / "ws"))
    assert r.exit_code == 1 and "bits_per_byte" in r.output


def test_bits_per_byte_is_the_nll_by_hand(env):
    """One short segment: Σ -log2 p(t_i | bos, t_<i) / bytes, computed directly."""
    from transformers import AutoModelForCausalLM

    from tokenfoundry.tasks.evaluate.bits_per_byte import bits_per_byte, load_causal_lm

    _, base = env
    text = english_docs(("BSD",))[0][:200]
    got = bits_per_byte({"m": base}, [text], max_bytes=4096)["m"]
    model, tok = load_causal_lm(base)
    ids = [0] + tok.encode(text, add_special_tokens=False).ids
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], -1)
    nll = -sum(float(logp[i, t]) for i, t in enumerate(ids[1:]))
    assert math.isclose(got.bits_per_byte, nll / math.log(2) / len(text.encode()), rel_tol=1e-4)
    assert got.tokens == len(ids) - 1
    del AutoModelForCausalLM


def test_segments_are_identical_across_models_and_lose_no_byte():
    from tokenfoundry.tasks.evaluate.bits_per_byte import segments

    docs = gettext_docs("uk")[:300] + ["x" * 5000, " лише  пробіли \n\n" * 200]
    segs = segments(docs, 256)
    assert "".join(segs) == "".join(docs)
    assert max(len(s.encode()) for s in segs) <= 256


@pytest.mark.parametrize("args, needle", [
    (["--corpus", "nowhere.txt", "--new-tokens", "5", "--out", "o"], "nowhere.txt"),
    (["--new-tokens", "5", "--out", "o"], "--corpus"),
    (["--corpus", "{uk}", "--new-tokens", "5", "--init", "magic", "--out", "o"], "init"),
    (["--corpus", "{uk}", "--new-tokens", "0", "--out", "o"], "new_tokens"),
    (["--corpus", "{uk}", "--new-tokens", "5", "--init-param", "oops", "--out", "o"],
     "KEY=VALUE"),
])
def test_bad_input_exits_2(env, tmp_path, args, needle):
    d, base = env
    args = [a.replace("{uk}", str(d / "uk.txt")) for a in args]
    r = _run("extend", "--base", str(base), *args, "--workspace", str(tmp_path / "ws"))
    assert r.exit_code == 2, r.output
    assert needle in r.output


def test_missing_base_exits_2(env, tmp_path):
    d, _ = env
    r = _run("extend", "--base", str(tmp_path / "nobase"), "--corpus", str(d / "uk.txt"),
             "--new-tokens", "5", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "nobase" in r.output
