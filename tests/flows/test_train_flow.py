"""The train flow under Prefect's test harness: same tokenizer as the direct path, artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenfoundry.schemas.train import TrainSpec
from tokenfoundry.storage.workspace import Workspace
from tf_fixtures import train as fx


@pytest.mark.prefect
def test_train_flow_matches_the_direct_path(tmp_path, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from tokenfoundry.flows.train import train_flow
    from tokenfoundry.tasks.train.core import train

    ws = Workspace(tmp_path / "ws")
    sid = fx.legal_snapshot(ws)
    spec = TrainSpec(corpora=["legal"], model="bpe", vocab_size=600)
    state = train_flow(spec=spec.model_dump(mode="json"), workspace=ws.uri,
                       out=str(tmp_path / "flow"), return_state=True)
    out = state.result()
    run_id = state.state_details.flow_run_id
    direct = train(ws, spec, str(tmp_path / "direct"))
    assert out["vocab_size"] == 600 and out["snapshots"][0]["snapshot_id"] == sid
    assert out["vocab_sha256"] == direct.vocab_sha256
    assert Path(out["tokenizer_json"]).read_bytes() == Path(direct.tokenizer_json).read_bytes()
    with get_client(sync_client=True) as client:
        # Other tests in the session (the pipeline) also train BPE: only this flow run's artifacts.
        this_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        everything = client.read_artifacts(artifact_filter=this_run, limit=50)
    arts = [a for a in everything if a.key == "train-bpe-hf"]
    progress = [a for a in everything if a.type == "progress"
                and "train bpe" in (a.description or "")]
    assert arts and arts[0].type == "markdown"
    assert "600 tokens" in arts[0].data and sid in arts[0].data
    assert progress and float(progress[0].data) == pytest.approx(100.0)
