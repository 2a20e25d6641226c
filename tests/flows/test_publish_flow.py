"""The publish flow under Prefect's test harness: version, link + table artifacts, idempotent
re-run, and a failed gate that publishes nothing."""

from __future__ import annotations

import json

import pytest

from tokenfoundry.schemas.errors import GateFailed
from tf_fixtures import registry


@pytest.mark.prefect
def test_publish_flow_records_artifacts_and_is_idempotent(prefect_harness, tmp_path,
                                                          licence_dir, monkeypatch):

    import anyio
    from prefect.client.orchestration import get_client

    from tokenfoundry.flows.publish import publish_flow
    from tokenfoundry.storage.registry import Registry

    monkeypatch.setenv("TOKENFOUNDRY_CACHE", str(tmp_path / "cache"))
    fx = registry
    cand = fx.build_tokenizer_dir(tmp_path / "cand", licence_dir / "Apache-2.0", 280)
    ev = tmp_path / "eval" / "evaluation.json"
    ev.parent.mkdir()
    ev.write_text(json.dumps({
        "candidate": "legal", "tokenizers": {"legal": {"bytes_per_token": 4.3}},
        "gates": [{"expr": "bytes_per_token >= 4.0", "value": 4.3, "passed": True}],
        "gates_passed": True}))
    reg = str(tmp_path / "reg")
    res = publish_flow(source=str(cand), name="legal-bpe", registry=reg, aliases=["latest"],
                       evaluation=str(ev), lineage={"pipeline": "legal"})
    assert (res["ref"], res["reused"]) == ("legal-bpe@1", False)
    m = Registry(reg).manifest("legal-bpe", 1)
    assert m.lineage["pipeline"] == "legal" and m.lineage["flow_run_id"]
    assert m.metrics["bytes_per_token"] == 4.3

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts()

    arts = {a.key: a for a in anyio.run(artifacts)}
    assert {"legal-bpe-version", "legal-bpe-published"} <= set(arts)
    # Prefect 3.8 stores link artifacts with type "markdown"
    assert arts["legal-bpe-version"].type in ("link", "markdown")
    assert res["uri"] in str(arts["legal-bpe-version"].data)
    assert arts["legal-bpe-published"].type == "table"
    assert "legal-bpe@1" in str(arts["legal-bpe-published"].data)

    again = publish_flow(source=str(cand), name="legal-bpe", registry=reg, evaluation=str(ev))
    assert (again["version"], again["reused"]) == (1, True)

    ev.write_text(json.dumps({
        "candidate": "legal", "tokenizers": {"legal": {"bytes_per_token": 3.0}},
        "gates": [{"expr": "bytes_per_token >= 4.0", "value": 3.0, "passed": False}],
        "gates_passed": False}))
    other = fx.build_tokenizer_dir(tmp_path / "cand2", licence_dir / "GPL-3", 280)
    with pytest.raises(GateFailed, match="bytes_per_token >= 4.0"):
        publish_flow(source=str(other), name="legal-bpe", registry=reg, evaluation=str(ev))
    assert Registry(reg).versions("legal-bpe") == [1]
