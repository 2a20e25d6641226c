"""The dedup flow end to end under Prefect's test harness: same snapshot as the direct path."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash

from tokenfoundry.schemas.dedup import DedupSpec
from tokenfoundry.schemas.tables import CORPUS_SCHEMA
from tokenfoundry.storage.workspace import Workspace


def _snapshot(ws: Workspace, texts: list[str]) -> None:
    rows = [dict(doc_id=xxhash.xxh3_128_hexdigest(f"d{i}".encode()), corpus="legal",
                 source="/usr/share/common-licenses", source_id=None, location=f"para:{i:03d}",
                 lang="en", lang_score=None, align_key=None, text=t, n_bytes=len(t.encode()),
                 n_chars=len(t), content_hash=xxhash.xxh3_128_hexdigest(t.encode()), flags=[])
            for i, t in enumerate(texts)]
    with ws.writer("legal", "ing-1", schema=CORPUS_SCHEMA, stage="ingest") as w:
        w.write(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA))
        w.commit()
    ws.set_ref("legal", "ingest", "ing-1")


@pytest.mark.prefect
def test_dedup_flow_fans_out_and_matches_the_direct_path(tmp_path, licence_dir, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from tokenfoundry.flows.dedup import dedup_flow
    from tokenfoundry.tasks.dedup.core import dedup

    paras = [p for name in ("GPL-3", "Apache-2.0")
             for p in (licence_dir / name).read_text().split("\n\n") if len(p.split()) > 60][:30]
    edited = [" ".join(p.split()[:-2] + ["changed", p.split()[-1]]) for p in paras[10:14]]
    texts = paras + paras[:3] + edited
    spec = DedupSpec(corpus="legal", threshold=0.8)
    flow_ws, direct_ws = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    _snapshot(flow_ws, texts)
    _snapshot(direct_ws, texts)

    out = dedup_flow(spec=spec.model_dump(mode="json"), workspace=str(tmp_path / "a"),
                     shard_rows=8)  # 5 shards through the task runner
    direct = dedup(direct_ws, spec)
    assert out["snapshot_id"] == direct.snapshot_id
    assert out["input"] == out["kept"] + out["exact_duplicates"] + out["near_duplicates"] == 37
    assert (out["exact_duplicates"], out["kept"]) == (direct.exact_duplicates, direct.kept)
    assert out["exact_duplicates"] >= 3 and out["near_duplicates"] >= 4
    assert pq.read_table(out["clusters_path"]).equals(pq.read_table(direct.clusters_path))
    assert pq.read_table(out["dataset_path"]).equals(pq.read_table(direct.dataset_path))
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["dedup-report-legal"])), limit=5)
    assert arts and arts[0].type == "markdown" and "| near_duplicates |" in arts[0].data
    again = dedup_flow(spec=spec.model_dump(mode="json"), workspace=str(tmp_path / "a"))
    assert again["reused"] and again["snapshot_id"] == out["snapshot_id"]
