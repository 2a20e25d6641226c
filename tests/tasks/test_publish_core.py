"""The publish core: gates double-checked, lineage from train_report.json, evaluation files in
the version, idempotent re-publish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenfoundry.schemas.errors import GateFailed
from tokenfoundry.storage.registry import Registry
from tokenfoundry.tasks.publish.core import evaluation_from_json, publish_candidate
from tf_fixtures import registry as fx


fx.load(globals())


@pytest.fixture
def candidate(tmp_path, licence_dir) -> Path:
    d = fx.build_tokenizer_dir(tmp_path / "cand", licence_dir / "GPL-3", vocab_size=300)
    (d / "train_report.json").write_text(json.dumps({
        "spec": {"vocab_size": 300}, "spec_hash": "f00d",
        "snapshots": [{"corpus": "legal", "snapshot_id": "ingest-abc123", "path": None}],
        "code_version": "0.1.0"}))
    return d


@pytest.fixture
def evaluation(tmp_path) -> Path:
    ev = tmp_path / "eval"
    (ev / "plots").mkdir(parents=True)
    (ev / "report.md").write_text("# evaluation\n\nbytes/token 4.2\n")
    (ev / "plots" / "bytes_per_token.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    (ev / "evaluation.json").write_text(json.dumps({
        "candidate": "legal", "tokenizers": {
            "legal": {"bytes_per_token": 4.2, "roundtrip_errors": 0, "premium": {"de": 1.1}},
            "o200k": {"bytes_per_token": 4.0, "roundtrip_errors": 0}},
        "gates": [{"expr": "bytes_per_token >= 4.0", "value": 4.2, "passed": True}],
        "gates_passed": True}))
    return ev / "evaluation.json"


def test_publish_candidate_records_lineage_metrics_gates_and_evaluation(
        tmp_path, candidate, evaluation):
    ev = evaluation_from_json(evaluation)
    assert ev["metrics"]["bytes_per_token"] == 4.2
    assert ev["metrics"]["references"] == {"o200k": {"bytes_per_token": 4.0,
                                                     "roundtrip_errors": 0}}
    uri = str(tmp_path / "reg")
    res = publish_candidate(uri, candidate, "legal-bpe", lineage={"flow_run_id": "run-1"},
                            metrics=ev["metrics"], gate_results=ev["gates"],
                            aliases=["latest", "staging"], evaluation_dir=ev["dir"])
    assert (res["ref"], res["reused"]) == ("legal-bpe@1", False)
    assert res["aliases"] == {"latest": 1, "staging": 1}
    m = Registry(uri).manifest("legal-bpe", 1)
    paths = {f.path for f in m.files}
    assert {"tokenizer.json", "train_report.json", "evaluation/report.md",
            "evaluation/evaluation.json", "evaluation/plots/bytes_per_token.png"} <= paths
    assert m.lineage["corpus_snapshots"] == {"legal": "ingest-abc123"}
    assert m.lineage["train_spec_hash"] == "f00d" and m.lineage["flow_run_id"] == "run-1"
    assert m.metrics["bytes_per_token"] == 4.2 and m.gates[0]["passed"] is True
    again = publish_candidate(uri, candidate, "legal-bpe", metrics=ev["metrics"],
                              gate_results=ev["gates"], evaluation_dir=ev["dir"])
    assert (again["version"], again["reused"]) == (1, True)


def test_publish_candidate_refuses_a_failed_gate(tmp_path, candidate):
    gates = [{"expr": "roundtrip_errors == 0", "value": 3, "passed": False},
             {"expr": "bytes_per_token >= 4.0", "value": 4.4, "passed": True}]
    with pytest.raises(GateFailed, match=r"roundtrip_errors == 0: value 3"):
        publish_candidate(str(tmp_path / "reg"), candidate, "legal-bpe", gate_results=gates)
    assert not (tmp_path / "reg").exists()
