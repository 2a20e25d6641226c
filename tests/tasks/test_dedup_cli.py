"""``tokenfoundry dedup`` on the direct path: JSON contract, exit codes, help."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from typer.testing import CliRunner

from tokenfoundry.flows.cli import app
from tokenfoundry.schemas.tables import CORPUS_SCHEMA
from tokenfoundry.storage.workspace import Workspace

KEYS = {"snapshot_id", "input", "exact_duplicates", "near_duplicates", "kept", "dataset_path",
        "clusters_path"}


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


def test_json_output_and_exit_codes(tmp_path, licence_dir):
    paras = [p for p in (licence_dir / "Apache-2.0").read_text().split("\n\n")
             if len(p.split()) > 40][:12]
    words = paras[0].split()
    words[10] = "Licensee"  # one changed word, reflowed onto one line
    edited = " ".join(words)
    ws = Workspace(tmp_path / "ws")
    _snapshot(ws, paras + paras[:2] + [edited])
    runner = CliRunner()
    r = runner.invoke(app, ["dedup", "--corpus", "legal", "--workspace", str(tmp_path / "ws"),
                            "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert KEYS <= set(out)
    assert (out["input"], out["exact_duplicates"], out["near_duplicates"], out["kept"]) == (15, 2, 1, 12)
    assert pq.read_table(out["dataset_path"]).num_rows == 12
    clusters = pq.read_table(out["clusters_path"])
    assert clusters.num_rows == 15 and clusters.schema.names == ["doc_id", "cluster_id"]
    assert ws.get_ref("legal", "latest") == out["snapshot_id"]

    r = runner.invoke(app, ["dedup", "--corpus", "nothing", "--workspace", str(tmp_path / "ws"),
                            "--json"])
    assert r.exit_code == 2
    err = json.loads(r.stdout)  # --json: the error is one JSON object on stdout too
    assert err["exit_code"] == 2 and "tokenfoundry ingest --corpus nothing" in err["error"]
    r = runner.invoke(app, ["dedup", "--corpus", "legal", "--workspace", str(tmp_path / "ws"),
                            "--threshold", "1.2"])
    assert r.exit_code == 2 and "threshold" in r.stderr
    r = runner.invoke(app, ["dedup", "--corpus", "legal", "--workspace", str(tmp_path / "ws"),
                            "--snapshot", "nope"])
    assert r.exit_code == 2 and "no snapshot 'nope'" in r.stderr


def test_help_has_an_example():
    r = CliRunner().invoke(app, ["dedup", "--help"])
    assert r.exit_code == 0
    assert "tokenfoundry dedup --corpus legal" in r.stdout and "--threshold" in r.stdout
