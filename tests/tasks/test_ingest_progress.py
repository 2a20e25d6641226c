"""Ingest reports progress while it works, not only per file (issue 13 point 10, ingest side)."""

from __future__ import annotations

from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.tasks.ingest import core
from tf_fixtures import ingest as fx


def test_progress_moves_every_thousand_records_inside_one_file(workspace, tmp_path):
    paras = fx.licence_paragraphs()
    p = tmp_path / "paras.txt"
    p.write_text("\n\n".join(paras * 24) + "\n")  # one file, one reader batch of ~5,700 records
    calls = []
    r = core.ingest(workspace, IngestSpec(corpus="p", sources=[str(p)], split_paragraphs=True,
                                          lang_id=False),
                    progress=lambda done, total, msg="": calls.append((done, total, msg)))
    assert r.read == len(paras) * 24 > 4 * core.PROGRESS_RECORDS
    inside = [c for c in calls if c[2].startswith("paras.txt: ")]
    assert len(inside) >= r.read // core.PROGRESS_RECORDS  # not one call per 8,192-row batch
    assert inside[-1][2] == f"paras.txt: {r.read:,} records"
    done = [c[0] for c in inside]
    assert done == sorted(done) and inside[-1][0] == inside[-1][1] == p.stat().st_size
