"""The ingest flow under Prefect's test harness: fan-out through task runners, same snapshot as
the direct path, named artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.ingest import core

LOCALE = Path("/usr/share/locale")


@pytest.mark.prefect
def test_ingest_flow_threads_and_dask_match_the_direct_path(tmp_path, licence_dir,
                                                           prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect_dask import DaskTaskRunner

    from tokenfoundry.flows.ingest import ingest_flow
    from tokenfoundry.tasks.ingest.prefect_tasks import group_units

    catalogs = [LOCALE / lg / "LC_MESSAGES" for lg in ("de", "fr")]
    if not all(c.is_dir() for c in catalogs):
        pytest.skip("needs gettext catalogs")
    big = tmp_path / "paras.jsonl"  # split into several units, so tasks run concurrently
    paras = [p for p in (licence_dir / "GPL-3").read_text().split("\n\n") if p.strip()]
    big.write_text("".join(json.dumps({"id": i, "text": p}) + "\n"
                           for i, p in enumerate(paras * 30)))
    spec = IngestSpec(corpus="flowtest", sources=[str(licence_dir), str(big),
                                                  str(catalogs[0] / "sed.mo"),
                                                  str(catalogs[1] / "sed.mo")],
                      lang_id=False, unit_bytes=64 * 1024)
    direct = core.ingest(Workspace(tmp_path / "direct"), spec)

    threads = ingest_flow(spec=spec.model_dump(mode="json"), workspace=str(tmp_path / "t"))
    dask = ingest_flow.with_options(
        task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 1, "processes": False,
                                                   "threads_per_worker": 2}))(
        spec=spec.model_dump(mode="json"), workspace=str(tmp_path / "d"))
    for r in (threads, dask):
        assert r["snapshot_id"] == direct.snapshot_id
        assert (r["read"], r["kept"], r["rejected"]) == (direct.read, direct.kept, direct.rejected)
        assert r["read"] == r["kept"] + r["rejected"] and not r["reused"]
    files = [[(f.path, f.rows) for f in Workspace(tmp_path / d).snapshot(
        "flowtest", direct.snapshot_id).manifest.files] for d in ("direct", "t", "d")]
    assert files[0] == files[1] == files[2]
    units = core.plan_ingest(spec).units
    assert len(units) > 8 and 8 <= len(group_units(units)) < len(units)

    again = ingest_flow(spec=spec.model_dump(mode="json"), workspace=str(tmp_path / "t"))
    assert again["reused"] and again["snapshot_id"] == direct.snapshot_id

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {"ingest-flowtest-sources", "ingest-flowtest-rejects",
            "ingest-flowtest-progress"} <= keys
