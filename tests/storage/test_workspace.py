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
