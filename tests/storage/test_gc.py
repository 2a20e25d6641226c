"""``tokenfoundry gc``: what killed runs left is removed, committed data never."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pyarrow as pa
import pytest

from tokenfoundry.storage.gc import collect_garbage
from tokenfoundry.storage.workspace import Workspace

SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.large_string())])


def _committed(ws: Workspace) -> str:
    with ws.writer("c1", "good", schema=SCHEMA, stage="ingest") as w:
        w.write(pa.table({"doc_id": ["a"], "text": ["kept text"]}, schema=SCHEMA))
        w.commit()
    ws.set_ref("c1", "latest", "good")
    return ws.snapshot_dir("c1", "good")


def _killed_run(ws: Workspace, age_s: float = 0.0) -> list[str]:
    """What a kill -9 leaves: a snapshot without manifest, dedup work, a temp file."""
    snap = ws.path("datasets", "c1", "dead")
    work = ws.path("_work", "dedup", "c1", "dedup-0123.rows65536")
    tmp = ws.path("datasets", "c1", "_refs", "latest.tmp-0a1b2c")
    for d in (snap, work + "/signatures", os.path.dirname(tmp)):
        os.makedirs(d, exist_ok=True)
    for p, n in ((snap + "/part-00000.parquet", 3000), (work + "/exact.parquet", 2000),
                 (work + "/signatures/shard-00000.parquet", 1000), (tmp, 10)):
        with open(p, "wb") as fh:
            fh.write(b"\0" * n)
    if age_s:
        old = time.time() - age_s
        for d, _s, files in os.walk(ws.root):
            for f in files + ["."]:
                os.utime(os.path.join(d, f), (old, old))
    return [snap, work, tmp]


def test_gc_removes_what_a_killed_run_left_and_keeps_committed(tmp_path):
    ws = Workspace(tmp_path / "ws")
    good = _committed(ws)
    snap, work, tmp = _killed_run(ws, age_s=2 * 3600)
    res = collect_garbage(ws, grace_seconds=3600)
    got = {(e.kind, e.path, e.bytes) for e in res.removed}
    assert got == {("uncommitted snapshot", snap, 3000), ("dedup work", work, 3000),
                   ("temporary file", tmp, 10)}
    assert res.bytes_freed == 6010 and res.kept == []
    assert not any(os.path.exists(p) for p in (snap, work, tmp))
    assert ws.has_snapshot("c1", "good") and os.path.isdir(good)
    assert ws.get_ref("c1", "latest") == "good"
    assert collect_garbage(ws, grace_seconds=0).removed == []  # nothing left to remove


def test_gc_keeps_what_changed_within_the_grace_period(tmp_path):
    ws = Workspace(tmp_path / "ws")
    paths = _killed_run(ws)  # just written: maybe a run still in progress
    res = collect_garbage(ws, grace_seconds=3600)
    assert res.removed == [] and sorted(e.path for e in res.kept) == sorted(paths)
    assert all(os.path.exists(p) for p in paths)
    forced = collect_garbage(ws, grace_seconds=3600, force=True)
    assert len(forced.removed) == 3 and not any(os.path.exists(p) for p in paths)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokenfoundry.flows.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_gc_cli_dry_run_then_json(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _committed(ws)
    snap, work, tmp = _killed_run(ws)
    p = _cli("gc", "--workspace", ws.root, "--grace-hours", "0", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert f"would remove uncommitted snapshot {snap} (3,000 bytes" in p.stdout
    assert f"would remove dedup work {work}" in p.stdout
    assert os.path.exists(snap) and os.path.exists(work)  # dry run: nothing removed
    p = _cli("gc", "--workspace", ws.root, "--grace-hours", "0", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["bytes_freed"] == 6010 and doc["dry_run"] is False
    assert sorted(e["kind"] for e in doc["removed"]) == ["dedup work", "temporary file",
                                                         "uncommitted snapshot"]
    assert not os.path.exists(snap) and ws.has_snapshot("c1", "good")
    assert _cli("gc", "--workspace", ws.root, "--grace-hours", "-1").returncode == 2


CHILD = """
import json, sys
from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.ingest.core import ingest
ingest(Workspace(sys.argv[1]), IngestSpec.model_validate(json.loads(sys.argv[2])), workers=1)
"""


@pytest.mark.slow
def test_gc_after_a_real_kill_9_of_ingest(tmp_path):
    """kill -9 mid-ingest leaves an uncommitted snapshot directory; gc removes exactly it,
    and the next ingest commits the same snapshot a fresh workspace gets."""
    import signal

    from tokenfoundry.schemas.ingest import IngestSpec
    from tokenfoundry.tasks.ingest.core import ingest
    from tf_fixtures import ingest as fx

    paras = fx.licence_paragraphs()
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as fh:
        for rep in range(120):
            fh.write(b"".join(json.dumps({"id": f"{rep}-{i}", "text": t}).encode() + b"\n"
                              for i, t in enumerate(paras)))
    spec = IngestSpec(corpus="crash", sources=[str(big)], lang_id=False,
                      unit_bytes=2 * 1024 * 1024)
    ws = Workspace(tmp_path / "ws")
    child = subprocess.Popen([sys.executable, "-c", CHILD, ws.root,
                              json.dumps(spec.model_dump(mode="json"))])
    parts = tmp_path / "ws" / "datasets" / "crash"
    deadline = time.time() + 120
    while time.time() < deadline and not list(parts.glob("*/_parts/*.json")):
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = [d for d in parts.iterdir() if d.is_dir() and not d.name.startswith("_")]
    assert len(left) == 1 and not (left[0] / "_manifest.json").exists()
    p = _cli("gc", "--workspace", ws.root, "--grace-hours", "0", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert [(e["kind"], e["path"]) for e in doc["removed"]] == [
        ("uncommitted snapshot", str(left[0]))]
    assert doc["bytes_freed"] > 0 and not left[0].exists()
    resumed = ingest(ws, spec)
    assert resumed.snapshot_id == ingest(Workspace(tmp_path / "fresh"), spec).snapshot_id
