"""Operator path on real parts: a `prefect server start` on 127.0.0.1, the process work pool,
`prefect deploy --all` from prefect.yaml, a worker, a triggered deployment run of a small
pipeline, Completed, and the registry holding the new version with its manifest.

The server, pool, deployments and worker come from the session fixtures in conftest.py (shared
with the browser test so their start-up is paid once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
POOL = "tokenfoundry-process"
DEPLOYMENT = "tokenfoundry-pipeline/quickstart-pipeline"

pytestmark = [pytest.mark.slow]


def test_deploy_all_creates_every_deployment_of_prefect_yaml(prefect_server):
    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    deps = prefect_server.post("/deployments/filter", {})
    got = {d["name"]: d for d in deps}
    assert set(got) == {d["name"] for d in declared}
    for d in declared:
        dep = got[d["name"]]
        assert dep["work_pool_name"] == POOL
        assert dep["entrypoint"] == d["entrypoint"]
        assert dep["parameters"] == d["parameters"]
        # cron schedules as declared; the pull step changes into the repository
        assert [s["schedule"]["cron"] for s in dep["schedules"]] == \
            [s["cron"] for s in d["schedules"]]
        assert dep["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {
            "directory": str(REPO)}}]
    pool = prefect_server.get(f"/work_pools/{POOL}")
    assert pool["type"] == "process"


def test_triggered_deployment_run_completes_and_publishes(deployed_pipeline_run):
    from tokenfoundry.storage.registry import Registry

    run = deployed_pipeline_run
    srv = run.server
    fr = srv.get(f"/flow_runs/{run.flow_run_id}")
    assert fr["state"]["type"] == "COMPLETED"
    dep = srv.get(f"/deployments/{fr['deployment_id']}")
    assert f"tokenfoundry-pipeline/{dep['name']}" == DEPLOYMENT
    assert fr["parameters"]["spec"] == str(run.spec_path)
    assert fr["work_pool_name"] == POOL  # picked up by the process worker
    # the registry in the run's workspace holds the version with its manifest
    reg = Registry(str(run.workspace / "registry"))
    assert reg.versions("tiny-bpe") == [1]
    manifest = json.loads((run.workspace / "registry" / "tiny-bpe" / "1" /
                           "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert "tokenizer.json" in paths
    assert manifest["lineage"]["pipeline"] == "tiny"
    assert manifest["lineage"]["flow_run_id"]  # the publish subflow of this deployment run
    assert reg.alias_version("tiny-bpe", "latest") == 1
    # each stage ran as a subflow of the deployment's flow run
    subs = srv.post("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {
        "any_": [run.flow_run_id]}}})
    names = sorted({srv.get(f"/flows/{r['flow_id']}")["name"] for r in subs})
    assert names == ["dedup", "evaluate", "ingest", "publish", "train"]
    assert all(r["state_type"] == "COMPLETED" for r in subs)


#: The README's command to watch runs: pipeline runs (not their stage subflows) that run or
#: ran (not the future cron runs).
WATCH = ["flow-run", "ls", "--flow-name", "tokenfoundry-pipeline", "--state-type", "RUNNING",
         "--state-type", "COMPLETED", "--state-type", "FAILED", "--state-type", "CRASHED", "--limit", "5", "-o", "json"]


def test_watch_command_lists_the_run_even_with_future_cron_runs(deployed_pipeline_run):
    """`prefect flow-run ls --limit 5` sorts by expected start time, newest first: with the
    weekly/nightly cron runs scheduled ahead it shows only those (and without a flow name, the
    stage subflows of the last run fill the rest). The README's command filters by flow name
    and state type and shows the run that just completed."""
    from datetime import datetime, timedelta, timezone

    run = deployed_pipeline_run
    srv = run.server
    dep_id = srv.get(f"/flow_runs/{run.flow_run_id}")["deployment_id"]
    for days in range(1, 6):  # what the scheduler service creates for the cron schedules
        when = (datetime.now(timezone.utc) + timedelta(days=days)).isoformat()
        srv.post(f"/deployments/{dep_id}/create_flow_run", {"state": {
            "type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": when}}})
    naive = _json_list(srv.cli("flow-run", "ls", "--limit", "5", "-o", "json"))
    assert run.flow_run_id not in {r["id"] for r in naive}
    assert {r["state_type"] for r in naive} == {"SCHEDULED"}
    watched = _json_list(srv.cli(*WATCH))
    assert run.flow_run_id in {r["id"] for r in watched}
    assert "SCHEDULED" not in {r["state_type"] for r in watched}
    assert {r["flow_id"] for r in watched} == {srv.get(f"/flow_runs/{run.flow_run_id}")["flow_id"]}


def _json_list(text: str) -> list[dict]:
    """The JSON list in a CLI's output (stdout + stderr; warnings may come first)."""
    return json.loads(text[text.index("["):text.rindex("]") + 1])


def test_published_artifact_of_a_local_registry_is_text_with_the_pull_command(
        deployed_pipeline_run):
    run = deployed_pipeline_run
    arts = run.server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {
        "any_": [run.flow_run_id]}, "key": {"any_": ["tiny-published"]}}})
    assert len(arts) == 1
    art = arts[0]
    assert art["type"] == "markdown"  # a local path is no link a browser can open
    assert f"--registry {run.workspace / 'registry'} pull tiny-bpe@1 --to ./tiny-bpe" \
        in art["data"]
