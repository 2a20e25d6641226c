"""kill -9 in the middle of an ingest: nothing visible, and the re-run gives the same snapshot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.ingest import core
from tf_fixtures import ingest as fx


CHILD = """
import json, sys
from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.ingest.core import ingest
spec = IngestSpec.model_validate(json.loads(sys.argv[2]))
ingest(Workspace(sys.argv[1]), spec, workers=int(sys.argv[3]))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_mid_ingest_leaves_nothing_visible_and_rerun_matches(tmp_path, workers):
    paras = fx.licence_paragraphs()
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as fh:  # ~40 MB of real licence paragraphs with distinct ids
        for rep in range(160):
            fh.write(b"".join(json.dumps({"id": f"{rep}-{i}", "text": t}).encode() + b"\n"
                              for i, t in enumerate(paras)))
    spec = IngestSpec(corpus="crash", sources=[str(big)], lang_id=False,
                      unit_bytes=2 * 1024 * 1024)
    ws_dir = tmp_path / "ws"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ws_dir),
                              json.dumps(spec.model_dump(mode="json")), str(workers)])
    parts = ws_dir / "datasets" / "crash"
    deadline = time.time() + 60
    while time.time() < deadline and not list(parts.glob("*/_parts/*.json")):
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    ws = Workspace(ws_dir)
    done_units = list(parts.glob("*/_parts/*.json"))
    assert done_units, "the child never finished a unit; nothing was interrupted"
    assert ws.list_snapshots("crash") == []  # no manifest: nothing visible
    assert ws.get_ref("crash", "latest") is None

    resumed = core.ingest(ws, spec)
    fresh = core.ingest(Workspace(tmp_path / "fresh"), spec)
    assert resumed.snapshot_id == fresh.snapshot_id
    assert (resumed.read, resumed.kept, resumed.rejected) == (fresh.read, fresh.kept, 0)
    assert resumed.kept == 160 * len(paras)
    m1 = ws.snapshot("crash", resumed.snapshot_id).manifest
    m2 = Workspace(tmp_path / "fresh").snapshot("crash", fresh.snapshot_id).manifest
    assert [(f.path, f.rows) for f in m1.files] == [(f.path, f.rows) for f in m2.files]
    # no stray shards from the killed attempt are left next to the committed ones
    listed = {f.path for f in m1.files}
    on_disk = {p.name for p in (parts / resumed.snapshot_id).glob("part-*.parquet")}
    assert on_disk == listed
