"""Readers on real text: every format, gettext details, and faults that become rejects."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
from tokenfoundry.tasks.ingest.readers import Records, lang_from_path, normalise_locale, read_unit
from tf_fixtures import ingest as _fx


LICENCES, LOCALE, need = _fx.LICENCES, _fx.LOCALE, _fx.need
licence_paragraphs, write_csv, write_jsonl, write_parquet = (
    _fx.licence_paragraphs, _fx.write_csv, _fx.write_jsonl, _fx.write_parquet)


def _read(path: Path, fmt: str, compression: str | None = None, **kw) -> Records:
    spec = IngestSpec(corpus="t", sources=[str(path)], **kw)
    unit = IngestUnit(name="00000-0000", path=str(path), format=fmt, compression=compression,
                      size=path.stat().st_size)
    out = Records()
    for b, _ in read_unit(unit, spec):
        texts = b.text
        for i in range(len(texts)):
            out.add(b.location[i], texts[i], b.source_id[i], b.lang[i], b.align_key[i],
                    b.flags[i])
        out.rejects += b.rejects
    return out


@pytest.mark.parametrize("compress", [None, "gzip", "zstd"])
def test_jsonl_round_trips_real_paragraphs(tmp_path, compress):
    texts = licence_paragraphs()
    p = write_jsonl(tmp_path / "a.jsonl", texts, compress)
    r = _read(p, "jsonl", compress, batch_rows=37)
    assert r.text == texts
    assert r.source_id[:2] == ["p0", "p1"] and r.location[-1] == f"line:{len(texts)}"
    assert r.rejects == []


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_cut_compressed_stream_keeps_records_before_the_cut(tmp_path, compress):
    texts = licence_paragraphs() * 20
    p = write_jsonl(tmp_path / "a.jsonl", texts, compress)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    r = _read(p, "jsonl", compress)
    assert 0 < len(r.text) < len(texts)
    assert r.text == texts[: len(r.text)]  # everything before the fault, in order, intact
    assert [x[1] for x in r.rejects] == ["truncated"]
    assert r.rejects[0][0] == f"line:{len(r.text) + 1}"


def test_bad_lines_become_rejects_with_reasons(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_bytes(b'{"text": "Licence text one."}\n'
                  b'{"text": 5}\n'
                  b'{"body": "no text key"}\n'
                  b'not json at all\n'
                  b'[1, 2]\n'
                  b'\n'
                  b'{"text": "caf\xe9 latin-1 byte"}\n'
                  b'{"text": "last good line"}')
    r = _read(p, "jsonl")
    assert r.text == ["Licence text one.", "last good line"]
    assert [(x[0], x[1]) for x in r.rejects] == [
        ("line:2", "wrong_type"), ("line:3", "missing_field"), ("line:4", "bad_json"),
        ("line:5", "bad_json"), ("line:7", "invalid_utf8")]
    assert "0xe9" in r.rejects[-1][2]
    repaired = _read(p, "jsonl", utf8="repair")
    assert "caf\ufffd latin-1 byte" in repaired.text
    assert repaired.flags[repaired.text.index("caf\ufffd latin-1 byte")] == ["utf8_repaired"]


def test_binary_file_is_one_reject(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(bytes(range(256)) * 64)
    r = _read(p, "jsonl")
    assert r.text == [] and [x[1] for x in r.rejects] == ["binary"]


def test_csv_with_text_field_id_and_lang(tmp_path):
    texts = licence_paragraphs(("GPL-3",))[:40] + ["quoted, \"comma\"\nand newline"]
    p = write_csv(tmp_path / "c.csv", texts)
    r = _read(p, "csv", text_field="body")
    assert r.text == texts and r.source_id[0] == "c0" and set(r.lang) == {"en"}
    missing = _read(p, "csv")  # default text field "text" is not a column
    assert missing.text == [] and [x[1] for x in missing.rejects] == ["missing_field"]
    assert "body" in missing.rejects[0][2]


def test_parquet_good_half_and_wrong_schema(tmp_path):
    texts = licence_paragraphs(("Apache-2.0",))
    p = write_parquet(tmp_path / "p.parquet", texts)
    r = _read(p, "parquet")
    assert r.text == texts and r.source_id[:3] == ["0", "1", "2"]
    half = tmp_path / "half.parquet"
    half.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    h = _read(half, "parquet")
    assert h.text == [] and [x[1] for x in h.rejects] == ["corrupt_file"]
    other = write_parquet(tmp_path / "o.parquet", texts, field="content")
    o = _read(other, "parquet")
    assert [x[1] for x in o.rejects] == ["missing_field"] and "content" in o.rejects[0][2]
    assert _read(other, "parquet", text_field="content").text == texts


def test_text_file_whole_and_paragraphs():
    gpl = need(LICENCES / "GPL-3")
    whole = _read(gpl, "txt")
    assert whole.location == ["file"] and whole.text[0].startswith("                    GNU GENERAL")
    paras = _read(gpl, "txt", split_paragraphs=True)
    expected = [p for p in gpl.read_text().split("\n\n") if p.strip()]
    assert len(paras.text) == len(expected)
    assert paras.location[0] == "line:1" and paras.text[1].startswith(" Copyright (C) 2007")


def test_mo_catalog_language_plurals_and_align_keys():
    mo = need(LOCALE / "de/LC_MESSAGES/apt.mo")
    r = _read(mo, "mo")
    assert set(r.lang) == {"de"} and len(r.text) > 300
    plural = [k for k in r.align_key if "\x00" in k]
    assert plural and {k.rsplit("\x00", 1)[1] for k in plural} == {"0", "1"}
    assert r.text[r.align_key.index("Aborting install.")] == "Installation abgebrochen."
    fr = _read(need(LOCALE / "fr/LC_MESSAGES/apt.mo"), "mo")
    assert fr.text[fr.align_key.index("Abort.")] == "Annulation." and set(fr.lang) == {"fr"}


def test_po_reader_agrees_with_mo_reader(tmp_path):
    if shutil.which("msgunfmt") is None:
        pytest.skip("needs msgunfmt (gettext)")
    mo = need(LOCALE / "de/LC_MESSAGES/apt.mo")
    po = tmp_path / "de.po"
    po.write_bytes(subprocess.run(["msgunfmt", str(mo)], capture_output=True, check=True).stdout)
    a, b = _read(mo, "mo"), _read(po, "po")
    assert sorted(zip(a.align_key, a.text)) == sorted(zip(b.align_key, b.text))
    assert set(b.lang) == {"de"} and b.rejects == []
    with_msgid = _read(po, "po", include_msgid=True)
    en = [t for t, lg in zip(with_msgid.text, with_msgid.lang) if lg == "en"]
    assert "Aborting install." in en and len(en) == len(set(a.align_key))


def test_po_fuzzy_untranslated_and_broken_entries(tmp_path):
    po = tmp_path / "locale" / "pt_BR" / "LC_MESSAGES" / "x.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                  '#, fuzzy\nmsgid "Open"\nmsgstr "Abrir"\n\n'
                  'msgid "Close"\nmsgstr ""\n\n'
                  'msgctxt "menu"\nmsgid "File"\nmsgstr "Arquivo"\n\n'
                  'msgid "Tab\\there"\nmsgstr "Tab\\taqui"\n\n'
                  'msgid "broken\nmsgstr "x"\n', encoding="utf-8")
    r = _read(po, "po")
    assert r.text == ["Arquivo", "Tab\taqui"]
    assert r.align_key == ["menu\x04File", "Tab\there"]
    assert set(r.lang) == {"pt-BR"}  # from the path (the header has no Language:)
    assert [x[1] for x in r.rejects] == ["corrupt_file"]


def test_corrupt_mo_is_a_reject(tmp_path):
    p = tmp_path / "bad.mo"
    p.write_bytes(b"\x00" * 64)
    assert [x[1] for x in _read(p, "mo").rejects] == ["corrupt_file"]


def test_locale_codes():
    assert normalise_locale("pt_BR.UTF-8") == "pt-BR"
    assert normalise_locale("sr@latin") == "sr@latin"
    assert lang_from_path("/usr/share/locale/zh_CN/LC_MESSAGES/apt.mo") == "zh-CN"
    assert lang_from_path("/repo/po/de.po") == "de"
    assert lang_from_path("/repo/po/messages.po") is None
    assert gzip  # (gzip is used by the fixtures module)
