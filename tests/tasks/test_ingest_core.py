"""The ingest core: snapshots, counts, determinism, reuse, bad input, normalisation, filters."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import xxhash

from tokenfoundry.schemas.config import validate_spec
from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.schemas.tables import CORPUS_SCHEMA, REJECTS_SCHEMA
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.ingest import core
from tokenfoundry.tasks.ingest.normalise import normalise_text
from tokenfoundry.tasks.ingest.quality import alpha_fraction, repeated_line_fraction
from tf_fixtures import ingest as fx


@pytest.fixture
def sources(tmp_path):
    """A mixed real-text source tree: licences (txt), jsonl.gz, csv, parquet, two .mo catalogs,
    plus a cut zstd stream and half a Parquet file."""
    paras = fx.licence_paragraphs()
    d = tmp_path / "src"
    d.mkdir()
    (d / "licences").mkdir()
    for n in ("GPL-3", "Apache-2.0"):
        (d / "licences" / n).write_bytes(fx.need(fx.LICENCES / n).read_bytes())
    fx.write_jsonl(d / "paras.jsonl.gz", paras[:120], "gzip")
    fx.write_csv(d / "paras.csv", paras[120:160])
    fx.write_parquet(d / "paras.parquet", paras[160:])
    for lang in ("de", "fr"):
        (d / "locale" / lang / "LC_MESSAGES").mkdir(parents=True)
        (d / "locale" / lang / "LC_MESSAGES" / "sed.mo").write_bytes(
            fx.need(fx.LOCALE / lang / "LC_MESSAGES" / "sed.mo").read_bytes())
    cut = fx.write_jsonl(d / "cut.jsonl.zst", paras * 3, "zstd")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])
    half = fx.write_parquet(d / "half.parquet", paras[:50])
    half.write_bytes(half.read_bytes()[:1000])
    (d / "notes.rst").write_text("An unknown ending, text inside: read as plain text.")
    return d


def _spec(d, **kw):
    return IngestSpec(corpus="mix", sources=[str(d)], text_field="text", **kw)


def test_mixed_sources_balance_and_follow_the_schemas(workspace, sources):
    r = core.ingest(workspace, _spec(sources, lang_id=False))
    assert r.read == r.kept + r.rejected and r.kept > 400
    by_src = {s.source: s for s in r.sources}
    assert by_src[str(sources / "paras.parquet")].kept == len(fx.licence_paragraphs()) - 160
    assert by_src[str(sources / "paras.jsonl.gz")].kept == 120
    assert by_src[str(sources / "licences" / "GPL-3")].kept == 1
    assert r.rejects_by_reason["truncated"] == 1  # the cut zstd stream
    assert r.rejects_by_reason["corrupt_file"] == 1  # half a Parquet file
    assert r.rejects_by_reason["missing_field"] == 1  # the csv has "body", not "text"
    # Apache-2.0 ('.0' is no format) and notes.rst are text: read as plain text, not skipped
    assert by_src[str(sources / "licences" / "Apache-2.0")].kept == 1
    assert by_src[str(sources / "notes.rst")].kept == 1
    assert r.files == 10 and not r.reused and r.skipped == []
    docs = ds.dataset(r.dataset_path, format="parquet").to_table()  # the dir reads as documents
    assert docs.schema == CORPUS_SCHEMA and docs.num_rows == r.kept
    rej = ds.dataset(r.rejects_path, format="parquet").to_table()
    assert rej.schema == REJECTS_SCHEMA and rej.num_rows == r.rejected
    rows = docs.to_pylist()
    for row in rows[:50] + rows[-50:]:
        b = row["text"].encode()
        assert row["content_hash"] == xxhash.xxh3_128_hexdigest(b)
        assert row["n_bytes"] == len(b) and row["n_chars"] == len(row["text"])
        assert unicodedata.is_normalized("NFC", row["text"])
    cut = by_src[str(sources / "cut.jsonl.zst")]
    assert cut.kept > 0 and cut.rejected == 1  # records before the cut are kept
    mo = [x for x in rows if x["source"].endswith("de/LC_MESSAGES/sed.mo")]
    assert mo and {x["lang"] for x in mo} == {"de"} and all(x["align_key"] for x in mo)
    gz = [x for x in rows if x["source"].endswith("paras.jsonl.gz")]
    assert [x["source_id"] for x in gz[:3]] == ["p0", "p1", "p2"]
    assert len({x["doc_id"] for x in rows}) == len(rows)
    assert workspace.get_ref("mix", "ingest") == r.snapshot_id == workspace.get_ref("mix", "latest")


def test_same_inputs_same_id_and_reuse_changed_spec_new_id(workspace, sources, tmp_path):
    spec = _spec(sources, lang_id=False)
    a = core.ingest(workspace, spec)
    b = core.ingest(workspace, spec)
    assert b.reused and b.snapshot_id == a.snapshot_id and b.kept == a.kept
    other = Workspace(tmp_path / "other")
    c = core.ingest(other, spec)
    assert c.snapshot_id == a.snapshot_id and not c.reused
    m1 = workspace.snapshot("mix", a.snapshot_id).manifest
    m2 = other.snapshot("mix", c.snapshot_id).manifest
    assert [(f.path, f.rows) for f in m1.files] == [(f.path, f.rows) for f in m2.files]
    d = core.ingest(workspace, _spec(sources, lang_id=False, normalization="NFKC"))
    assert d.snapshot_id != a.snapshot_id
    (sources / "licences" / "GPL-3").write_text("changed licence text\n")
    e = core.ingest(workspace, spec)
    assert e.snapshot_id != a.snapshot_id
    assert workspace.get_ref("mix", "latest") == e.snapshot_id


def test_units_commit_in_plan_order_whatever_order_they_ran(workspace, tmp_path, sources):
    spec = _spec(sources, lang_id=False)
    plan = core.plan_ingest(spec)
    infos = [core.ingest_unit(workspace, plan, u) for u in reversed(plan.units)]
    r1 = core.commit_ingest(workspace, plan, infos)
    other = Workspace(tmp_path / "seq")
    r2 = core.ingest(other, spec)
    assert r1.snapshot_id == r2.snapshot_id
    f1 = [(f.path, f.rows, f.bytes) for f in workspace.snapshot("mix", r1.snapshot_id).manifest.files]
    f2 = [(f.path, f.rows, f.bytes) for f in other.snapshot("mix", r2.snapshot_id).manifest.files]
    assert f1 == f2


def test_large_jsonl_is_split_into_units_with_identical_records(workspace, tmp_path):
    paras = fx.licence_paragraphs()
    p = fx.write_jsonl(tmp_path / "big.jsonl", paras * 4)
    whole = core.ingest(workspace, IngestSpec(corpus="w", sources=[str(p)], lang_id=False))
    split_spec = IngestSpec(corpus="s", sources=[str(p)], lang_id=False, unit_bytes=64 * 1024)
    plan = core.plan_ingest(split_spec)
    assert len(plan.units) > 3 and plan.units[1].first_line > 1
    split = core.ingest(workspace, split_spec)
    cols = ["location", "text", "source_id", "content_hash", "doc_id"]
    t1 = ds.dataset(whole.dataset_path).to_table(columns=cols).to_pylist()
    t2 = ds.dataset(split.dataset_path).to_table(columns=cols).to_pylist()
    strip = [{k: v for k, v in r.items() if k != "doc_id"} for r in t1]
    assert strip == [{k: v for k, v in r.items() if k != "doc_id"} for r in t2]
    assert len(t2) == 4 * len(paras)


def test_bad_input_fails_before_any_write(tmp_path, workspace, sources):
    with pytest.raises(BadInputError, match="no such file"):
        core.ingest(workspace, IngestSpec(corpus="x", sources=[str(tmp_path / "missing")]))
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" * 8)  # a zip
    with pytest.raises(BadInputError, match=r"unknown ending '\.xlsx' and not text.*\.jsonl"):
        core.ingest(workspace, IngestSpec(corpus="x", sources=[str(sources), str(odd)]))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.xlsx").write_bytes(odd.read_bytes())
    with pytest.raises(BadInputError, match="no file ingest can read"):
        core.ingest(workspace, IngestSpec(corpus="x", sources=[str(empty)]))
    with pytest.raises(BadInputError, match="min_chars"):
        validate_spec(IngestSpec, {"corpus": "x", "sources": ["a"], "min_chars": 10,
                                   "max_chars": 5}, "spec")
    with pytest.raises(BadInputError, match="utf8"):
        validate_spec(IngestSpec, {"corpus": "x", "sources": ["a"], "utf8": "ignore"}, "spec")
    with pytest.raises(BadInputError, match="unknown key"):
        validate_spec(IngestSpec, {"corpus": "x", "sources": ["a"], "txt_field": "t"}, "spec")
    assert not os.path.exists(workspace.root)  # nothing was written


def test_normalisation_steps():
    assert normalise_text("\ufeffline one\r\nline two\rthree") == "line one\nline two\nthree"
    assert normalise_text("Cafe\u0301") == "Caf\u00e9"
    assert normalise_text("\ufb01 \u2460", "NFKC") == "fi 1"
    assert normalise_text("\ufb01", "NFC") == "\ufb01"
    assert normalise_text("a\x00b\x07c\td\ne\x1b[0m\x85") == "abc\td\ne[0m"


def test_quality_signals_on_real_text():
    gpl = fx.need(fx.LICENCES / "GPL-3").read_text()
    assert 0.9 < alpha_fraction(gpl) < 0.99
    assert alpha_fraction("12345 67 89 -- %%") == 0.0
    assert alpha_fraction("Grüße, 東京!") == pytest.approx(7 / 9)
    assert repeated_line_fraction(gpl) < 0.1
    assert repeated_line_fraction("buy now\nbuy now\nbuy now\nreal text") == 0.5
    assert repeated_line_fraction("a\na") == 0.0  # too few lines to judge


def test_filters_and_utf8_policy_in_the_core(workspace, tmp_path):
    p = tmp_path / "f.jsonl"
    lines = [
        {"text": fx.need(fx.LICENCES / "MPL-2.0").read_text()},
        {"text": "12345 67 89 -- %% ##"},
        {"text": "spam line\n" * 10 + "other"},
        {"text": "   \n\t "},
        {"text": "short"},
        {"text": "Ein deutscher Satz über Software und Lizenzen, der lang genug ist."},
    ]
    p.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines)
                  + b'{"text": "bad \xff byte in an otherwise fine English sentence"}\n')
    spec = IngestSpec(corpus="f", sources=[str(p)], min_chars=10, min_alpha_fraction=0.5,
                      max_repeated_line_fraction=0.5)
    r = core.ingest(workspace, spec)
    assert r.rejects_by_reason == {"empty": 1, "invalid_utf8": 1, "low_alpha_fraction": 1,
                                   "repeated_lines": 1, "too_short": 1}
    assert r.read == 7 and r.kept == 2 and r.langs == {"de": 1, "en": 1}
    rej = ds.dataset(r.rejects_path).to_table().to_pylist()
    assert {x["location"] for x in rej} == {"line:2", "line:3", "line:4", "line:5", "line:7"}
    repaired = core.ingest(workspace, spec.model_copy(update={"utf8": "repair"}))
    rows = ds.dataset(repaired.dataset_path).to_table().to_pylist()
    flagged = [x for x in rows if x["flags"]]
    assert len(flagged) == 1 and flagged[0]["flags"] == ["utf8_repaired"]
    assert "\ufffd" in flagged[0]["text"] and flagged[0]["lang"] == "en"
    assert repaired.snapshot_id != r.snapshot_id


def test_forced_lang_and_source_lang_skip_language_id(workspace, tmp_path):
    p = tmp_path / "l.jsonl"
    p.write_text(json.dumps({"text": "This is English text about licences.", "lang": "xx"}) + "\n"
                 + json.dumps({"text": "Ceci est un texte français sur les licences."}) + "\n")
    r = core.ingest(workspace, IngestSpec(corpus="l", sources=[str(p)]))
    rows = ds.dataset(r.dataset_path).to_table().to_pylist()
    assert [(x["lang"], x["lang_score"] is None) for x in rows] == [("xx", True), ("fr", False)]
    r2 = core.ingest(workspace, IngestSpec(corpus="l", sources=[str(p)], lang="en"))
    assert {x["lang"] for x in ds.dataset(r2.dataset_path).to_table().to_pylist()} == {"en"}


def test_empty_result_still_has_readable_tables(workspace, tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text('{"text": ""}\n')
    r = core.ingest(workspace, IngestSpec(corpus="e", sources=[str(p)]))
    assert (r.read, r.kept, r.rejected) == (1, 0, 1)
    snap = workspace.snapshot("e", r.snapshot_id)
    assert pq.read_table(snap.paths[0]).schema == CORPUS_SCHEMA
    assert snap.dataset("rejects").to_table().column("reason").to_pylist() == ["empty"]


def test_fsspec_sources_and_workspace(tmp_path):
    """Sources and workspace on an fsspec filesystem (memory:// here; s3:// works the same)."""
    import gzip

    import fsspec

    fs = fsspec.filesystem("memory")
    paras = fx.licence_paragraphs(("MPL-2.0",))
    fs.pipe("/tf-src/p.jsonl.gz", gzip.compress(b"".join(
        json.dumps({"text": t}).encode() + b"\n" for t in paras)))
    fs.pipe("/tf-src/notes.txt", b"Plain text note about licences.")
    ws = Workspace("memory://tf-ws")
    r = core.ingest(ws, IngestSpec(corpus="m", sources=["memory://tf-src"], lang_id=False))
    assert (r.read, r.kept) == (len(paras) + 1, len(paras) + 1)
    assert r.dataset_path.startswith("memory://") and r.sources[0].source.startswith("memory://")
    texts = [t for b in ws.snapshot("m", r.snapshot_id).iter_text() for t in b]
    assert texts == ["Plain text note about licences.", *paras]  # files in sorted order
    assert core.ingest(ws, IngestSpec(corpus="m", sources=["memory://tf-src"],
                                      lang_id=False)).reused
    fs.rm("/tf-src", recursive=True)
    fs.rm("/tf-ws", recursive=True)


def test_glob_sources_pick_only_matching_files(workspace, tmp_path):
    """'/usr/share/doc/*/copyright'-style patterns: only matches are read; no match is exit 2."""
    licences = sorted(p for p in Path("/usr/share/common-licenses").iterdir() if p.is_file())[:3]
    if len(licences) < 3:
        pytest.skip("needs /usr/share/common-licenses")
    for i, lic in enumerate(licences):
        d = tmp_path / "doc" / f"pkg{i}"
        d.mkdir(parents=True)
        (d / "copyright").write_bytes(lic.read_bytes())
        (d / "changelog").write_text(f"pkg{i} (1.0-{i}) unstable; urgency=medium\n")
    spec = IngestSpec(corpus="c", sources=[str(tmp_path / "doc" / "*" / "copyright")],
                      lang_id=False)
    r = core.ingest(workspace, spec)
    assert r.read == r.kept == 3
    texts = [t for b in workspace.snapshot("c", r.snapshot_id).iter_text() for t in b]
    assert texts == [normalise_text(lic.read_text()) for lic in licences]  # no changelog
    deep = core.ingest(workspace, IngestSpec(corpus="c", lang_id=False,
                                             sources=[str(tmp_path / "**" / "copyright")]))
    assert deep.read == 3
    with pytest.raises(BadInputError, match="pattern matches no file"):
        core.ingest(workspace, IngestSpec(corpus="c", sources=[str(tmp_path / "x*" / "y")]))


def test_jsonl_records_normalised_in_the_snapshot(workspace, tmp_path):
    """Real paragraphs and catalog messages through the one JSONL path: values as written."""
    from tokenfoundry.tasks.ingest import readers

    paras = fx.licence_paragraphs()
    mo = fx.need(fx.LOCALE / "ja" / "LC_MESSAGES" / "sed.mo")
    msgs = [t for b, _ in readers.read_unit(
        readers.IngestUnit(name="00000-0000", path=str(mo), format="mo", size=mo.stat().st_size),
        IngestSpec(corpus="x", sources=["x"])) for t in b.text]
    texts = paras + msgs + ["caf\u0065\u0301 au lait", "tab\there\r\nCRLF", "bell\x07", "x\u0085y"]
    p = tmp_path / "mix.jsonl"
    p.write_text("".join(json.dumps({"id": i, "text": t, "lang": "und" if i % 2 else ""}) + "\n"
                         for i, t in enumerate(texts)))
    spec = IngestSpec(corpus="fast", sources=[str(p)], lang_id=False)
    r = core.ingest(workspace, spec)
    t1 = ds.dataset(r.dataset_path).to_table()
    assert t1.num_rows == len(texts) and r.rejected == 0
    rows = t1.to_pylist()
    assert [x["text"] for x in rows[:len(paras)]] == [normalise_text(t) for t in paras]
    assert rows[-4]["text"] == "caf\u00e9 au lait" and rows[-3]["text"] == "tab\there\nCRLF"
    assert rows[-2]["text"] == "bell" and rows[-1]["text"] == "xy"
    assert rows[0]["source_id"] == "0" and rows[0]["lang"] == "und" and rows[1]["lang"] == "und"


def test_language_id_backends_agree_on_real_gettext_text(tmp_path):
    """fastText (default) and py3langid identify real translated strings the same way."""
    from tokenfoundry.tasks.ingest.langid import identify

    import gettext
    from pathlib import Path

    checked = 0
    for lang in ["de", "fr", "es", "it", "pt"]:
        mos = sorted(Path(f"/usr/share/locale/{lang}/LC_MESSAGES").glob("*.mo"),
                     key=lambda p: -p.stat().st_size)
        if not mos:
            continue
        with open(mos[0], "rb") as fh:
            cat = gettext.GNUTranslations(fh)._catalog
        text = " ".join(v for k, v in cat.items()
                        if k and isinstance(v, str) and len(v) > 20 and v != k)[:2000]
        if len(text) < 200:
            continue
        assert identify(text)[0] == lang
        assert identify(text, backend="py3langid")[0] == lang
        checked += 1
    assert checked >= 3
    assert identify("12345 67 -- ++") == ("und", 0.0)
