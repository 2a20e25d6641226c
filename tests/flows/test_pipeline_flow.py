"""The end-to-end pipeline flow under Prefect's test harness, on real licence texts and gettext
catalogs: publishes a working tokenizer with its artifacts; a re-run reuses every stage and
publishes nothing new; one changed knob reruns only the stages downstream of it; a failed gate
publishes nothing and names metric, value and threshold; bad input names the stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tf_fixtures.pipeline import merged
from tf_fixtures.pipeline import tiny_spec as tiny_spec_of

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

LOCALE = Path("/usr/share/locale/de/LC_MESSAGES")


def tiny_spec(**over) -> dict:
    """8 German catalogs, two gates, aliases latest + staging; keywords as ``merged``."""
    mo = sorted(str(p) for p in LOCALE.glob("*.mo"))[:8]
    spec = tiny_spec_of(mo, evaluate={"max_docs": 500, "gates": [
        "roundtrip_errors == 0", "bytes_per_token >= 1.5"]},
        publish={"aliases": ["latest", "staging"]})
    return merged(spec, **over)


@pytest.fixture(scope="module")
def first_run(prefect_harness, tmp_path_factory):
    if not Path("/usr/share/common-licenses").is_dir():
        pytest.skip("needs /usr/share/common-licenses")
    from tokenfoundry.flows.pipeline import pipeline_flow

    ws = tmp_path_factory.mktemp("pipeline") / "ws"
    spec = tiny_spec()
    t0 = time.perf_counter()
    state = pipeline_flow(spec=spec, workspace=str(ws), return_state=True)
    seconds = time.perf_counter() - t0
    return ws, spec, state, state.result(), seconds


def _artifacts(flow_run_id) -> dict[str, object]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as c:
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key or f"{a.type}-{a.id}": a for a in arts}


def test_pipeline_publishes_a_working_tokenizer_with_artifacts(first_run):
    from tokenfoundry.storage.registry import Registry, load_tokenizer

    ws, spec, state, r, _ = first_run
    assert r["status"] == "published" and r["gates_passed"]
    assert [s["stage"] for s in r["stages"]] == [
        "ingest licences", "dedup licences", "ingest gettext", "dedup gettext",
        "train", "evaluate", "publish"][: len(r["stages"])]
    assert not any(s["reused"] for s in r["stages"])
    # references only: snapshot ids that exist, a tokenizer dir, a registry ref
    for corpus, snaps in r["snapshots"].items():
        assert (ws / "datasets" / corpus / snaps["dedup"] / "_manifest.json").is_file()
        assert snaps["latest"] == snaps["dedup"] != snaps["ingest"]
    reg = Registry(str(ws / "registry"))
    assert reg.versions("tiny-bpe") == [1]
    assert r["published"]["ref"] == "tiny-bpe@1"
    assert reg.alias_version("tiny-bpe", "staging") == 1
    m = reg.manifest("tiny-bpe", 1)
    paths = {f.path for f in m.files}
    assert "tokenizer.json" in paths and any(p.startswith("evaluation/") for p in paths)
    tok = load_tokenizer("tiny-bpe@1", str(ws / "registry"))
    text = "Permission is hereby granted, free of charge, to any person obtaining a copy"
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text and tok.get_vocab_size() == 600
    assert len(ids) < len(text.encode()) / 1.5  # it compresses
    # candidate metrics beside the reference, gates as configured
    toks = r["evaluation"]["tokenizers"]
    cand = r["evaluation"]["candidate"]
    assert cand in toks and "gpt2" in toks
    assert toks[cand]["roundtrip_errors"] == 0 and toks[cand]["bytes_per_token"] >= 1.5
    assert [g["expr"] for g in r["gates"]] == spec["evaluate"]["gates"]
    # Prefect artifacts of the pipeline run: evaluation report, link to the version, progress
    arts = _artifacts(state.state_details.flow_run_id)
    assert {"tiny-evaluation-report", "tiny-published", "tiny-progress", "tiny-stages"} <= \
        set(arts)
    report = arts["tiny-evaluation-report"].data
    assert "Evaluation report: tiny" in report and "| gpt2 |" in report and "PASS" in report
    published = arts["tiny-published"]  # a local path is no link a browser can open: text
    assert published.type == "markdown"
    assert f"`{ws / 'registry' / 'tiny-bpe' / '1'}`" in published.data
    assert f"registry --registry {ws / 'registry'} pull tiny-bpe@1 --to ./tiny-bpe" \
        in published.data
    assert arts["tiny-progress"].type == "progress" and arts["tiny-progress"].data == 100.0


def test_rerun_reuses_every_stage_and_publishes_nothing_new(first_run, monkeypatch):
    from tokenfoundry.flows.pipeline import pipeline_flow
    from tokenfoundry.storage.registry import Registry
    from tokenfoundry.tasks.train import core as train_core

    ws, spec, _, r1, _ = first_run

    def no_training(*a, **k):
        raise AssertionError("the trainer ran on a re-run")

    monkeypatch.setattr(train_core, "train", no_training)
    r2 = pipeline_flow(spec=spec, workspace=str(ws))
    assert all(s["reused"] for s in r2["stages"]), r2["stages"]
    assert r2["snapshots"] == r1["snapshots"] and r2["tokenizer"] == r1["tokenizer"]
    assert r2["published"]["ref"] == "tiny-bpe@1" and r2["published"]["reused"]
    assert Registry(str(ws / "registry")).versions("tiny-bpe") == [1]


def test_one_knob_reruns_only_downstream_stages(first_run):
    from tokenfoundry.flows.pipeline import pipeline_flow
    from tokenfoundry.storage.registry import Registry

    ws, spec, _, r1, _ = first_run
    changed = tiny_spec(train={"vocab_size": 640})
    r = pipeline_flow(spec=changed, workspace=str(ws))
    reused = {s["stage"]: s["reused"] for s in r["stages"]}
    assert all(reused[k] for k in reused if k.startswith(("ingest", "dedup")))
    assert not reused["train"] and not reused["evaluate"] and not reused["publish"]
    assert r["snapshots"] == r1["snapshots"] and r["tokenizer"] != r1["tokenizer"]
    assert r["published"]["ref"] == "tiny-bpe@2"
    assert Registry(str(ws / "registry")).versions("tiny-bpe") == [1, 2]


def test_failed_gate_publishes_nothing_and_names_the_metric(first_run, monkeypatch):
    from tokenfoundry.flows.pipeline import PipelineGateFailed, pipeline_flow
    from tokenfoundry.storage.registry import Registry

    ws, _, _, _, _ = first_run
    before = Registry(str(ws / "registry")).versions("tiny-bpe")
    strict = tiny_spec(evaluate={"gates": ["roundtrip_errors == 0", "bytes_per_token >= 50"]})
    with pytest.raises(PipelineGateFailed) as ei:
        pipeline_flow(spec=strict, workspace=str(ws))
    msg = str(ei.value)
    assert "bytes_per_token >= 50: bytes_per_token = " in msg and "threshold >= 50" in msg
    assert "roundtrip_errors" not in msg  # only the failing gate is named
    res = ei.value.result
    assert res["status"] == "gate_failed" and res["published"] is None
    assert Registry(str(ws / "registry")).versions("tiny-bpe") == before
    # the stage table never says "gates passed" on a run whose gate failed (issue 13, point 7)
    row = next(s for s in res["stages"] if s["stage"] == "evaluate")
    assert row["output"] == "gates FAILED (1 of 2: bytes_per_token >= 50)"
    import io

    from rich.console import Console

    from tokenfoundry.flows.cli import run as run_cli

    buf = io.StringIO()
    monkeypatch.setattr(run_cli, "out", Console(file=buf, width=200))
    run_cli.print_summary(res)
    table = buf.getvalue()
    assert "gates FAILED" in table and "gates passed" not in table


def test_bad_input_names_the_stage(prefect_harness, tmp_path):
    from tokenfoundry.flows.pipeline import pipeline_flow
    from tokenfoundry.schemas.errors import BadInputError

    spec = tiny_spec(corpora=[{"corpus": "licences", "sources": [str(tmp_path / "missing")]}],
                     train={"corpora": ["licences"]})
    with pytest.raises(BadInputError, match=r"stage ingest \(ingest licences\): .*missing"):
        pipeline_flow(spec=spec, workspace=str(tmp_path / "ws"))
    assert not (tmp_path / "ws" / "datasets").exists() or \
        not list((tmp_path / "ws" / "datasets").rglob("_manifest.json"))


def test_cli_run_gate_failure_exits_1_with_one_json_object(first_run, tmp_path):
    ws, _, _, _, _ = first_run
    p = tmp_path / "strict.yaml"
    p.write_text(yaml.safe_dump(tiny_spec(evaluate={"gates": ["bytes_per_token >= 50"]})))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    r = subprocess.run([sys.executable, "-m", "tokenfoundry.flows.cli", "run", str(p),
                        "--workspace", str(ws), "--json"],
                       capture_output=True, text=True, timeout=400, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    obj = json.loads(r.stdout)  # exactly one JSON object
    assert obj["status"] == "gate_failed" and obj["published"] is None
    assert obj["gates"][0]["expr"] == "bytes_per_token >= 50" and not obj["gates"][0]["passed"]
    assert "bytes_per_token = " in r.stderr and "threshold >= 50" in r.stderr
    assert all(s["reused"] for s in obj["stages"])  # the candidate was already evaluated
    assert [s["output"] for s in obj["stages"] if s["stage"] == "evaluate"] == [
        "gates FAILED (1 of 1: bytes_per_token >= 50)"]


def test_transient_errors_are_retried_by_prefect_and_others_are_not(prefect_harness):
    """One predicate (tasks.retry), used through Prefect's retries/retry_condition_fn."""
    from prefect import flow, task

    from tokenfoundry.tasks.retry import retry_transient

    calls: list[str] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient)
    def flaky(kind: str) -> str:
        calls.append(kind)
        if kind == "reset" and len(calls) < 3:
            raise ConnectionResetError("peer reset")
        if kind == "missing":
            raise FileNotFoundError(2, "gone", "/nowhere")
        return "ok"

    @flow
    def run(kind: str) -> str:
        return flaky(kind)

    assert run("reset") == "ok" and calls == ["reset"] * 3
    calls.clear()
    with pytest.raises(FileNotFoundError):
        run("missing")
    assert calls == ["missing"]  # a missing file is not retried
