"""``tokenfoundry train`` on the direct path: the JSON contract, --spec files, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tokenfoundry.flows.cli import app
from tokenfoundry.flows.cli.train import parse_size
from tokenfoundry.schemas.errors import BadInputError
from tf_fixtures import train as fx


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from tokenfoundry.storage.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("cli") / "ws")
    fx.legal_snapshot(ws)
    fx.gettext_snapshot(ws, langs=("de", "fr"))
    return ws


def _run(ws, *args):
    return CliRunner().invoke(app, ["train", "--workspace", ws.uri, *args])


def test_json_contract(ws, tmp_path):
    r = _run(ws, "--corpus", "legal", "--model", "bpe", "--vocab-size", "600",
             "--pretokenizer", "o200k", "--out", str(tmp_path / "t"), "--json")
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert {"out", "vocab_size", "seconds", "peak_rss_mb", "docs", "bytes", "heldout_docs",
            "realised_mix", "special_tokens", "snapshots", "spec_hash", "vocab_sha256",
            "tokenizer_json", "report"} <= set(obj)
    assert obj["vocab_size"] == 600 and obj["peak_rss_mb"] > 10 and obj["seconds"] > 0
    assert obj["out"] == str((tmp_path / "t").resolve())
    report = json.loads(Path(obj["report"]).read_text())
    assert report["spec"]["pretokenizer"] == "o200k"
    assert report["result"]["vocab_sha256"] == obj["vocab_sha256"]


def test_spec_file_and_flags_override(ws, tmp_path):
    spec = tmp_path / "train.yaml"
    spec.write_text(yaml.safe_dump({"train": {
        "corpora": ["ui"], "model": "unigram", "backend": "spm", "vocab_size": 900,
        "mix_by": "lang", "byte_fallback": True, "max_bytes": 200_000}}))
    r = _run(ws, "--spec", str(spec), "--vocab-size", "700", "--out", str(tmp_path / "u"),
             "--json")
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj["vocab_size"] == 700 and obj["backend"] == "spm"
    assert set(obj["realised_mix"]) == {"de", "fr"}
    assert 0.95 * 200_000 <= obj["bytes"] <= 200_000
    assert Path(obj["spm_model"]).is_file()


@pytest.mark.parametrize("args,needle", [
    (["--corpus", "legal", "--model", "bpe", "--vocab-size", "100"],
     "vocab_size: 100 is below the alphabet + special tokens (256 byte symbols"),
    (["--corpus", "legal", "--model", "wordpiece", "--vocab-size", "20"],
     "distinct characters"),
    (["--corpus", "missing", "--model", "bpe", "--vocab-size", "600"], "no snapshots"),
    (["--corpus", "legal", "--model", "bpe", "--vocab-size", "600", "--pretokenizer", "gpt5"],
     "pretokenizer"),
    (["--corpus", "legal", "--model", "wordpeace", "--vocab-size", "600"], "model"),
    (["--corpus", "ui", "--model", "bpe", "--vocab-size", "600", "--lang", "pt"],
     "no training text in ['pt']"),
    (["--corpus", "legal", "--model", "superbpe", "--backend", "spm", "--vocab-size", "600"],
     "backend spm trains model bpe or unigram"),
    (["--corpus", "legal", "--vocab-size", "600", "--max-bytes", "lots"], "--max-bytes"),
])
def test_bad_input_exits_2_before_training(ws, tmp_path, args, needle):
    out = tmp_path / "never"
    r = _run(ws, *args, "--out", str(out), "--json")
    assert r.exit_code == 2, r.output
    assert needle in " ".join(r.stderr.split())
    err = json.loads(r.stdout)  # --json: exactly one JSON error object on stdout
    assert err["exit_code"] == 2 and not out.exists()


def test_parse_size():
    assert parse_size("500MB") == 500 * 10**6 and parse_size("2GiB") == 2 * 2**30
    assert parse_size("1000") == 1000
    with pytest.raises(BadInputError):
        parse_size("5 parsecs")


def test_examples_are_valid_pipeline_train_sections():
    from tokenfoundry.schemas.train import TrainSpec

    for name in ("legal", "multilingual", "code"):
        data = yaml.safe_load((REPO / "examples" / f"{name}.yaml").read_text())
        spec = TrainSpec.model_validate(data["train"])
        corpora = {c["corpus"] for c in data["corpora"]}
        assert set(spec.corpora) <= corpora, name
