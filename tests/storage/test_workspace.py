from __future__ import annotations

import pyarrow as pa
import pytest

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.tables import REJECTS_SCHEMA
from tokenfoundry.storage.workspace import MANIFEST, Workspace

SCHEMA = pa.schema([("doc_id", pa.string()), ("text", pa.large_string())])


def _batch(n, start=0):
    return pa.table({"doc_id": [f"d{i}" for i in range(start, start + n)],
                     "text": [f"text number {i}" for i in range(start, start + n)]}, schema=SCHEMA)


def test_manifest_is_the_commit_point(workspace: Workspace):
    w = workspace.writer("c1", "s1", schema=SCHEMA, stage="ingest")
    w.write(_batch(10))
    # Not committed yet: invisible to readers.
    assert not workspace.has_snapshot("c1", "s1")
    assert workspace.list_snapshots("c1") == []
    with pytest.raises(BadInputError, match="no snapshot"):
        workspace.snapshot("c1", "s1")
    w.write_extra("rejects", pa.table({"corpus": ["c1"], "source": ["f"], "location": ["line:1"],
                                       "reason": ["empty"], "detail": [None], "excerpt": [""]}),
                  REJECTS_SCHEMA)
    m = w.commit(counts={"read": 11, "kept": 10, "rejected": 1})
    assert m.rows == 10
    snap = workspace.snapshot("c1", "s1")
    assert [t for b in snap.iter_text(batch_size=3) for t in b] == [f"text number {i}" for i in range(10)]
    assert snap.dataset("rejects").to_table().column("reason").to_pylist() == ["empty"]


def test_crashed_writer_is_cleared_by_the_next_writer(workspace: Workspace):
    w = workspace.writer("c1", "s1", schema=SCHEMA, stage="ingest")
    w.write(_batch(5))  # "crash": never committed
    w2 = workspace.writer("c1", "s1", schema=SCHEMA, stage="ingest")
    w2.write(_batch(3))
    w2.commit()
    assert workspace.snapshot("c1", "s1").rows == 3
    with pytest.raises(FileExistsError):
        workspace.writer("c1", "s1", schema=SCHEMA, stage="ingest")


def test_refs_and_resolve(workspace: Workspace):
    with pytest.raises(BadInputError, match="tokenfoundry ingest"):
        workspace.resolve("nope")
    workspace.writer("c1", "s1", schema=SCHEMA, stage="ingest").commit()
    workspace.set_ref("c1", "latest", "s1")
    assert workspace.resolve("c1").snapshot_id == "s1"
    assert workspace.resolve("c1", "s1").snapshot_id == "s1"
    with pytest.raises(BadInputError):
        workspace.set_ref("c1", "latest", "missing")


def test_bad_corpus_names_are_refused(workspace: Workspace):
    for bad in ["../x", "a/b", ".hidden", ""]:
        with pytest.raises(BadInputError, match="invalid corpus name"):
            workspace.dataset_dir(bad)
    assert (workspace.fs.exists(workspace.path("datasets")) is False)
    assert MANIFEST == "_manifest.json"


# ---- a full disk (ENOSPC) -----------------------------------------------------------------


def _enospc(*_a, **_k):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(root) -> list[str]:
    import os

    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _s, fs in os.walk(root)
                  for f in fs)


def test_full_disk_during_an_atomic_write_names_the_workspace_and_leaves_no_temp(
        workspace: Workspace, monkeypatch):
    import os

    from tokenfoundry.schemas.errors import DiskFull
    from tokenfoundry.storage.workspace import atomic_write_bytes

    target = workspace.path("datasets", "c1", "_refs", "latest")
    monkeypatch.setattr(os, "fsync", _enospc)  # the disk fills while the temp file is flushed
    with pytest.raises(DiskFull) as ei:
        atomic_write_bytes(workspace.fs, target, b"x" * 5000, root=workspace.uri)
    msg = str(ei.value)
    assert workspace.uri in msg and target in msg
    assert "4.9 KB more" in msg and "free" in msg and "tokenfoundry gc" in msg
    assert ei.value.needed == 5000 and ei.value.exit_code == 1
    assert not [p for p in _leftovers(workspace.root) if ".tmp-" in p]
    assert not os.path.exists(target)


def test_full_disk_while_writing_shards_removes_the_uncommitted_snapshot(
        workspace: Workspace, monkeypatch):
    import os

    import pyarrow.parquet as pq

    from tokenfoundry.schemas.errors import DiskFull

    w = workspace.writer("c1", "s1", schema=SCHEMA, stage="ingest")
    w.write(_batch(10))  # a first shard is on disk
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _enospc)
    with pytest.raises(DiskFull) as ei, w:
        w.write(_batch(10, start=10))
    assert workspace.uri in str(ei.value)
    assert ei.value.needed == _batch(10, start=10).nbytes
    assert not os.path.exists(w.dir)  # the partial snapshot is gone, not just invisible
    assert not workspace.has_snapshot("c1", "s1")


def test_full_disk_in_a_fan_out_unit_removes_that_units_shards(workspace: Workspace,
                                                                monkeypatch):
    import pyarrow.parquet as pq

    from tokenfoundry.schemas.errors import DiskFull
    from tokenfoundry.storage.workspace import PartWriter, read_part

    done = PartWriter(workspace, "c1", "s1", "00000", schema=SCHEMA)
    done.write(_batch(4))
    done.close({"n": 4})
    pw = PartWriter(workspace, "c1", "s1", "00001", schema=SCHEMA)
    pw.write(_batch(4))
    pw._docs._close()  # one finished shard of the unit, then the disk fills on the next
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _enospc)
    with pytest.raises(DiskFull):
        pw.write(_batch(4, start=4))
    left = _leftovers(workspace.snapshot_dir("c1", "s1"))
    assert not [p for p in left if "00001" in p]  # the unit's shards are gone
    assert read_part(workspace, "c1", "s1", "00000") is not None  # other units are kept


def test_a_snapshot_opens_as_a_polars_lazyframe(workspace: Workspace):
    w = workspace.writer("c1", "s1", schema=SCHEMA, stage="ingest")
    w.write(_batch(5))
    w.write(_batch(4, start=5))
    w.commit(counts={"read": 9, "kept": 9, "rejected": 0})
    got = workspace.snapshot("c1", "s1").lazy().select("doc_id", "text").collect()
    assert got.height == 9
    assert sorted(got["doc_id"].to_list()) == sorted(f"d{i}" for i in range(9))
