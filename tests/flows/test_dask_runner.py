"""Scale-out: ingest + dedup fanned out on a 2-worker Dask LocalCluster (real worker processes)
give the same snapshot ids, counts and files as the default thread pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

LOCALE = Path("/usr/share/locale/de/LC_MESSAGES")


def _spec() -> dict:
    corpora = [{"corpus": "licences", "sources": ["/usr/share/common-licenses"], "lang": "en",
                "min_chars": 200}]
    mo = sorted(str(p) for p in LOCALE.glob("*.mo"))[:3]
    if mo:
        corpora.append({"corpus": "gettext", "sources": mo, "min_chars": 8})
    return {"name": "scaleout", "corpora": corpora,
            "train": {"corpora": ["licences"], "vocab_size": 500},
            "evaluate": {"references": ["gpt2"]}, "publish": {"name": "scaleout-bpe"}}


def _files(ws: Path, corpus: str, sid: str) -> dict[str, int]:
    d = ws / "datasets" / corpus / sid
    return {str(p.relative_to(d)): p.stat().st_size for p in sorted(d.rglob("*.parquet"))}


def test_dask_local_cluster_gives_the_same_snapshots_as_threads(prefect_harness, licence_dir,
                                                                 tmp_path):
    from tokenfoundry.flows.pipeline import ingest_dedup_flow
    from tokenfoundry.storage.workspace import Workspace

    spec = _spec()
    ws_t, ws_d = tmp_path / "threads", tmp_path / "dask"
    threads = ingest_dedup_flow(spec=spec, workspace=str(ws_t),
                                runner={"kind": "threads", "max_workers": 2})
    dask = ingest_dedup_flow(spec=spec, workspace=str(ws_d),
                             runner={"kind": "dask", "max_workers": 2, "processes": True})

    # the work really ran on two separate worker processes of a Dask cluster
    r = dask["runner"]
    assert r["kind"] == "dask" and r["address"].startswith("tcp://127.0.0.1:")
    assert len(r["worker_pids"]) == 2 and os.getpid() not in r["worker_pids"]
    assert r["dask_tasks"] >= len(spec["corpora"]) * 2  # >= one ingest and one dedup task each
    assert threads["runner"] == {"kind": "threads", "describe": "threads (2 workers)"}

    assert dask["snapshots"] == threads["snapshots"]
    for corpus, snaps in threads["snapshots"].items():
        assert snaps["ingest"] != snaps["dedup"]
        for sid in (snaps["ingest"], snaps["dedup"]):
            mt = Workspace(ws_t).snapshot(corpus, sid).manifest
            md = Workspace(ws_d).snapshot(corpus, sid).manifest
            assert md.counts == mt.counts and md.rows == mt.rows > 0
            assert [f.path for f in md.files] == [f.path for f in mt.files]
        assert Workspace(ws_d).get_ref(corpus, "latest") == snaps["dedup"]
    # licences: Debian ships symlinked duplicates (GPL -> GPL-3, ...): dedup removes them
    ing = Workspace(ws_d).snapshot("licences", threads["snapshots"]["licences"]["ingest"])
    lic = Workspace(ws_d).snapshot("licences", threads["snapshots"]["licences"]["dedup"])
    assert 0 < lic.rows < ing.rows
    assert _files(ws_t, "licences", lic.snapshot_id).keys() == \
        _files(ws_d, "licences", lic.snapshot_id).keys()
