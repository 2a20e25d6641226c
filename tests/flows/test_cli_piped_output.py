"""Output read in logs and CI (stdout not a TTY): paths never broken, tables fit or become
plain lines."""

from __future__ import annotations

import io
import subprocess
import sys

import pyarrow as pa
import xxhash

from tokenfoundry.schemas.tables import CORPUS_SCHEMA
from tokenfoundry.storage.workspace import Workspace


def _snapshot(ws: Workspace, texts: list[str]) -> None:
    rows = [dict(doc_id=xxhash.xxh3_128_hexdigest(f"d{i}".encode()), corpus="legal",
                 source="/usr/share/common-licenses", source_id=None, location=f"para:{i}",
                 lang="en", lang_score=None, align_key=None, text=t, n_bytes=len(t.encode()),
                 n_chars=len(t), content_hash=xxhash.xxh3_128_hexdigest(t.encode()), flags=[])
            for i, t in enumerate(texts)]
    with ws.writer("legal", "ing-1", schema=CORPUS_SCHEMA, stage="ingest") as w:
        w.write(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA))
        w.commit()
    ws.set_ref("legal", "ingest", "ing-1")


def test_piped_dedup_summary_keeps_a_long_path_in_one_piece(tmp_path):
    root = tmp_path / ("workspace-with-a-long-name-" * 3) / "nested-directory-of-the-ci-runner"
    ws = Workspace(root)
    texts = [f"document number {i} talks about licences and their many conditions " * 3
             for i in range(6)] + ["document number 0 talks about licences"]
    _snapshot(ws, texts + texts[:1])
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "tokenfoundry.flows.cli", "dedup", "--corpus",
                        "legal", "--workspace", str(root)], capture_output=True, text=True,
                       timeout=120, env={**env, "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    dataset = next(ln for ln in lines if ln.startswith("dataset:"))
    path = dataset.split(None, 1)[1]
    assert len(path) > 120 and path.startswith(str(root) + "/datasets/legal/dedup-")
    assert ws.has_snapshot("legal", path.rsplit("/", 1)[1])
    assert any(ln.startswith("clusters: " + path + "/_clusters") for ln in lines)
    assert any(ln.startswith("│ kept") and ln.rstrip().endswith("│") for ln in lines)  # fits
    assert "\x1b" not in p.stdout


def test_a_table_that_does_not_fit_prints_plain_lines():
    from rich.table import Table

    from tokenfoundry.flows.cli.app import OutputConsole

    buf = io.StringIO()
    c = OutputConsole(file=buf, width=80, force_terminal=False)
    t = Table(title="stages")
    for col in ("stage", "output", "reused"):
        t.add_column(col)
    long = "/srv/ci/workspace/pipelines/legal/train/" + "0123456789abcdef" * 5
    t.add_row("train", long, "[green]no[/]")
    t.add_row("ingest legal", "ing-1 (12 docs kept)", "yes")
    c.print(t)
    assert buf.getvalue().splitlines() == [
        "stages", f"stage=train  output={long}  reused=no",
        "stage=ingest legal  output=ing-1 (12 docs kept)  reused=yes"]
    narrow = Table(title="gates")
    narrow.add_column("gate")
    narrow.add_row("roundtrip_errors == 0")
    buf.truncate(0), buf.seek(0)
    c.print(narrow)
    assert "┃ gate" in buf.getvalue() or "│ roundtrip_errors == 0 │" in buf.getvalue()
