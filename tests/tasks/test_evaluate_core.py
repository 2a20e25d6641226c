"""The evaluate core and ``tokenfoundry evaluate``: JSON shape, reports, exit codes, held-out."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from typer.testing import CliRunner

from tokenfoundry.flows.cli import app
from tokenfoundry.schemas.evaluate import EvaluateSpec
from tokenfoundry.schemas.tables import CORPUS_SCHEMA
from tokenfoundry.storage.splits import is_heldout
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.evaluate.core import evaluate

CLI_KEYS = {"bytes_per_token", "chars_per_token", "fertility", "nsl", "vocab_utilization",
            "renyi_efficiency", "unk_rate", "byte_fallback_rate", "roundtrip_errors",
            "encode_mb_per_s", "premium", "parity"}


@pytest.fixture(scope="module")
def parallel_file(tmp_path_factory):
    """A tiny real parallel set: English msgids and their German/French/Japanese catalogs."""
    rows = []
    segs = [("Open File", "Datei öffnen", "Ouvrir le fichier", "ファイルを開く"),
            ("Save the document", "Das Dokument speichern", "Enregistrer le document",
             "文書を保存する"),
            ("Quit", "Beenden", "Quitter", "終了")]
    for i, (en, de, fr, ja) in enumerate(segs):
        for lang, text in (("en", en), ("de", de), ("fr", fr), ("ja", ja)):
            rows.append({"seg_id": str(i), "lang": lang, "text": text})
    p = tmp_path_factory.mktemp("par") / "parallel.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    return p


def test_core_json_shape_reports_and_premium(tmp_path, licence_dir, parallel_file):
    spec = EvaluateSpec(tokenizers=["cand=gpt2"], texts=[str(licence_dir / "GPL-3"),
                                                         str(licence_dir / "MPL-2.0")],
                        parallel=str(parallel_file), references=["o200k", "llama3"],
                        gates=["roundtrip_errors == 0", "nsl[o200k] <= 0.9"])
    res = evaluate(spec, str(tmp_path / "out"))
    d = res.model_dump(mode="json")
    assert set(d["tokenizers"]) == {"cand", "o200k", "llama3"}
    for m in d["tokenizers"].values():
        assert CLI_KEYS <= set(m)
        assert m["renyi_alpha"] == 2.5
        assert set(m["premium"]) == {"en", "de", "fr", "ja"} and m["premium"]["en"] == 1.0
        assert m["parity"] == pytest.approx(max(m["premium"].values()) / min(m["premium"].values()))
    cand = d["tokenizers"]["cand"]
    assert cand["nsl"] == pytest.approx(cand["n_tokens"] / d["tokenizers"]["o200k"]["n_tokens"])
    assert cand["nsl"] > 1.0  # GPT-2 needs more tokens than o200k on licence text
    assert d["gates_passed"] is False
    assert [g["passed"] for g in d["gates"]] == [True, False]
    # GPT-2 splits Japanese far more than o200k does (Petrov et al.'s finding)
    assert cand["premium"]["ja"] > d["tokenizers"]["o200k"]["premium"]["ja"]
    # files
    out = tmp_path / "out"
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["tokenizers"]["cand"]["n_tokens"] == cand["n_tokens"]
    table = pq.read_table(out / "metrics.parquet").to_pylist()
    rows = {(r["tokenizer"], r["dataset"], r["language"], r["metric"]): r["value"] for r in table}
    assert rows[("cand", "all", "all", "bytes_per_token")] == pytest.approx(cand["bytes_per_token"])
    assert rows[("cand", "parallel", "ja", "premium")] == pytest.approx(cand["premium"]["ja"])
    assert rows[("o200k", "GPL-3", "all", "n_tokens")] > 0
    # the same table as a polars DataFrame (Python API), from the result or its JSON file
    from tokenfoundry.tasks.evaluate.report import metrics_frame

    frame = metrics_frame(out / "evaluation.json")
    assert frame.shape[0] == len(table) and frame.equals(metrics_frame(res))
    bpt = frame.filter((frame["tokenizer"] == "cand") & (frame["metric"] == "bytes_per_token")
                       & (frame["dataset"] == "all") & (frame["language"] == "all"))
    assert bpt["value"].to_list() == [pytest.approx(cand["bytes_per_token"])]
    assert cand["bits_per_byte"] is None  # no --model: not computed
    md = (out / "report.md").read_text()
    assert "## Gates: FAILED" in md and "nsl[o200k] <= 0.9" in md and "| **cand** |" in md
    for name in ("bytes_per_token.png", "premium.png", "token_length.png"):
        png = out / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"plots/{name}" in md


def _corpus(ws: Workspace, texts: list[str]) -> list[str]:
    ids = [xxhash.xxh3_128_hexdigest(f"doc{i}".encode()) for i in range(len(texts))]
    rows = [dict(doc_id=ids[i], corpus="legal", source="/usr/share/common-licenses",
                 source_id=None, location=f"para:{i}", lang="en", lang_score=None, align_key=None,
                 text=t, n_bytes=len(t.encode()), n_chars=len(t),
                 content_hash=xxhash.xxh3_128_hexdigest(t.encode()), flags=[])
            for i, t in enumerate(texts)]
    with ws.writer("legal", "ing-1", schema=CORPUS_SCHEMA, stage="ingest") as w:
        w.write(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA))
        w.commit()
    ws.set_ref("legal", "latest", "ing-1")
    return ids


def test_heldout_docs_of_a_corpus_follow_the_split_rule(tmp_path, licence_dir):
    paras = [p for p in (licence_dir / "GPL-3").read_text().split("\n\n") if len(p) > 200]
    ws = Workspace(tmp_path / "ws")
    ids = _corpus(ws, paras)
    held = [p for p in paras if is_heldout(xxhash.xxh3_128_hexdigest(p.encode()), 0.3)]
    assert 0 < len(held) < len(paras)
    spec = EvaluateSpec(tokenizers=["cl100k"], corpora=["legal"], holdout_fraction=0.3,
                        workspace=str(tmp_path / "ws"),
                        references=[])
    res = evaluate(spec, str(tmp_path / "out"))
    import quicktok

    enc = quicktok.get_encoding("cl100k_base")
    assert res.datasets[0].docs == len(held)
    assert res.tokenizers["cl100k"].n_tokens == sum(len(enc.encode(p)) for p in held)


def test_cli_exit_codes_and_single_json_object(tmp_path, licence_dir, parallel_file):
    runner = CliRunner()
    base = ["evaluate", "-t", "gpt2", "--text", str(licence_dir / "GPL-3"), "-r", "o200k",
            "--out", str(tmp_path / "o")]
    r = runner.invoke(app, base + ["--json", "--gate", "roundtrip_errors == 0"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert set(obj["tokenizers"]) == {"gpt2", "o200k"} and obj["gates_passed"] is True
    r = runner.invoke(app, base + ["--json", "--gate", "bytes_per_token >= 9"])
    assert r.exit_code == 1
    assert json.loads(r.stdout)["gates"][0]["passed"] is False  # still one JSON object
    assert "bytes_per_token" in r.stderr and "needs >= 9" in r.stderr
    r = runner.invoke(app, base + ["--gate", "bytes_per_token >> 9"])
    assert r.exit_code == 2 and "bytes_per_token >> 9" in r.stderr
    r = runner.invoke(app, base + ["--model", str(tmp_path)])  # not a model directory
    assert r.exit_code == 2 and str(tmp_path) in r.stderr and "Traceback" not in r.stderr
    r = runner.invoke(app, ["evaluate", "-t", "gpt2", "--text", str(tmp_path / "missing.txt")])
    assert r.exit_code == 2 and "missing.txt" in r.stderr
    r = runner.invoke(app, ["evaluate", "-t", "gpt2", "--text", str(licence_dir / "GPL-3"),
                            "-r", "bogus"])
    assert r.exit_code == 2 and "bogus" in r.stderr
    r = runner.invoke(app, ["evaluate", "-t", "gpt2", "--corpus", "legal"])
    assert r.exit_code == 2 and "holdout_fraction" in r.stderr
    r = runner.invoke(app, ["evaluate", "--help"])
    assert r.exit_code == 0 and "Examples" in r.stdout


def test_jsonl_and_parquet_text_with_languages(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"text": "Der Lizenzgeber gewährt", "lang": "de"}) + "\n"
        + json.dumps({"text": "The licensor grants", "lang": "en"}) + "\n", encoding="utf-8")
    pq.write_table(pa.table({"text": ["Le concédant accorde"], "lang": ["fr"]}),
                   tmp_path / "b.parquet")
    spec = EvaluateSpec(tokenizers=["o200k"], texts=[str(tmp_path / "a.jsonl"),
                                                     str(tmp_path / "b.parquet")], references=[])
    res = evaluate(spec, str(tmp_path / "out"))
    m = res.tokenizers["o200k"]
    assert set(m.by_language) == {"de", "en", "fr"} and set(m.by_dataset) == {"a", "b"}
    import quicktok

    enc = quicktok.get_encoding("o200k_base")
    assert m.by_language["de"]["n_tokens"] == len(enc.encode("Der Lizenzgeber gewährt"))
    assert m.by_language["de"]["bytes_per_token"] == pytest.approx(
        len("Der Lizenzgeber gewährt".encode()) / len(enc.encode("Der Lizenzgeber gewährt")))
