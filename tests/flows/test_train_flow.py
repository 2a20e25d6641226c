"""The train flow under Prefect's test harness: same tokenizer as the direct path, artifacts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tokenfoundry.schemas.train import TrainSpec
from tokenfoundry.storage.workspace import Workspace


def _fixtures():
    spec = importlib.util.spec_from_file_location(
        "train_fixtures", Path(__file__).resolve().parents[1] / "tasks" / "train_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.prefect
def test_train_flow_matches_the_direct_path(tmp_path, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from tokenfoundry.flows.train import train_flow
    from tokenfoundry.tasks.train.core import train

    fx = _fixtures()
    ws = Workspace(tmp_path / "ws")
    sid = fx.legal_snapshot(ws)
    spec = TrainSpec(corpora=["legal"], model="bpe", vocab_size=600)
    out = train_flow(spec=spec.model_dump(mode="json"), workspace=ws.uri,
                     out=str(tmp_path / "flow"))
    direct = train(ws, spec, str(tmp_path / "direct"))
    assert out["vocab_size"] == 600 and out["snapshots"][0]["snapshot_id"] == sid
    assert out["vocab_sha256"] == direct.vocab_sha256
    assert Path(out["tokenizer_json"]).read_bytes() == Path(direct.tokenizer_json).read_bytes()
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["train-bpe-hf"])), limit=50)
        progress = [a for a in client.read_artifacts(limit=50) if a.type == "progress"
                    and "train bpe" in (a.description or "")]
    # Other tests in the session (the pipeline) also train BPE: pick this run's artifact by its
    # snapshot id.
    mine = [a for a in arts if sid in (a.data or "")]
    assert mine and mine[0].type == "markdown"
    assert "600 tokens" in mine[0].data
    assert progress and float(progress[0].data) == pytest.approx(100.0)
