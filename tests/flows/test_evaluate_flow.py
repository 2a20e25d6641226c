"""The evaluate flow under Prefect's test harness: result, artifacts, and a failing gate."""

from __future__ import annotations

import pytest

from tokenfoundry.schemas.errors import GateFailed


@pytest.mark.prefect
def test_evaluate_flow_records_artifacts_and_stops_on_failed_gate(prefect_harness, tmp_path,
                                                                  licence_dir):
    from prefect.client.orchestration import get_client

    from tokenfoundry.flows.evaluate import evaluate_flow

    spec = {"tokenizers": ["gpt2"], "texts": [str(licence_dir / "Apache-2.0")],
            "references": ["o200k"], "gates": ["roundtrip_errors == 0"]}
    out = evaluate_flow(spec, str(tmp_path / "ws"), str(tmp_path / "out"))
    assert out["gates_passed"] is True
    assert out["tokenizers"]["gpt2"]["roundtrip_errors"] == 0
    assert (tmp_path / "out" / "report.md").is_file()

    import anyio

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts()

    keys = {a.key for a in anyio.run(artifacts)}
    assert {"tokenizer-evaluation", "tokenizer-metrics"} <= keys

    failing = {**spec, "gates": ["bytes_per_token >= 99"]}
    with pytest.raises(GateFailed, match="bytes_per_token = .* needs >= 99"):
        evaluate_flow(failing, str(tmp_path / "ws"), str(tmp_path / "out2"))
