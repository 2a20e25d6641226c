"""Hostile and odd inputs (issue 15 points 6-11, issue 13 point 4): no crash, no hang, bounded
memory, nothing skipped without a word. Child processes run what could crash or hang."""

from __future__ import annotations

import codecs
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
from tokenfoundry.tasks.ingest import core
from tokenfoundry.tasks.ingest.normalise import normalise_text
from tokenfoundry.tasks.ingest.readers import Records, read_unit
from tf_fixtures import ingest as fx

#: Reads one file through the readers and prints its records, rejects and peak RSS (MB).
CHILD = """
import json, os, sys
from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
from tokenfoundry.tasks.ingest.readers import read_unit
path, fmt, comp, kw = sys.argv[1], sys.argv[2], sys.argv[3] or None, json.loads(sys.argv[4])
spec = IngestSpec(corpus="t", sources=[path], **kw)
unit = IngestUnit(name="00000-0000", path=path, format=fmt, compression=comp,
                  size=os.path.getsize(path))
texts, rejects = [], []
for b, _ in read_unit(unit, spec):
    texts += [t[:80] for t in b.text]
    rejects += [(r[0], r[1], r[2][:200]) for r in b.rejects]
# VmHWM: this process image's peak RSS (ru_maxrss would carry the forking parent's peak)
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"texts": texts, "rejects": rejects, "rss_mb": hwm // 1024}))
"""


def _child(path: Path, fmt: str, comp: str | None = None, timeout: int = 300, **kw) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, str(path), fmt, comp or "", json.dumps(kw)],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"child died with {p.returncode}: {p.stderr[-2000:]}"
    return json.loads(p.stdout)


def _read(path: Path, fmt: str, comp: str | None = None, **kw) -> Records:
    spec = IngestSpec(corpus="t", sources=[str(path)], **kw)
    unit = IngestUnit(name="00000-0000", path=str(path), format=fmt, compression=comp,
                      size=path.stat().st_size)
    out = Records()
    for b, _ in read_unit(unit, spec):
        for i, t in enumerate(b.text):
            out.add(b.location[i], t, b.source_id[i], b.lang[i], b.align_key[i], b.flags[i])
        out.rejects += b.rejects
    return out


def test_common_licenses_every_file_is_read():
    """Apache-2.0, MPL-2.0, ... ('.0'/'.1' is no format) are plain text records, not skipped."""
    d = fx.need(fx.LICENCES)
    plan = core.plan_ingest(IngestSpec(corpus="legal", sources=[str(d)]))
    read = {Path(i["path"]).name for i in plan.inputs}
    for name in ("Apache-2.0", "MPL-2.0", "CC0-1.0", "GFDL-1.2", "GFDL-1.3", "LGPL-2.1",
                 "MPL-1.1"):
        if (d / name).is_file():
            assert name in read
    assert {u.format for u in plan.units} == {"txt"}
    # the symlinks GPL -> GPL-3 etc. are the same files: listed as skipped, with the reason
    links = {p.name for p in d.iterdir() if p.is_symlink()}
    assert {Path(s.path).name for s in plan.skipped} == links
    assert all(s.reason.startswith("same file as ") for s in plan.skipped)
    assert read | links == {p.name for p in d.iterdir()}  # every entry read or listed


@pytest.mark.parametrize("depth", [20_000, 1_000_000])
def test_deeply_nested_json_line_is_a_reject_not_a_crash(tmp_path, depth):
    """pyarrow's JSON reader segfaults on the 20,000-deep object, orjson on the 1,000,000 one."""
    p = tmp_path / "deep.jsonl"
    p.write_bytes(b'{"text": "before"}\n{"text": "x", "meta": ' + b"[" * depth + b"]" * depth
                  + b'}\n{"text": "after"}\n')
    out = _child(p, "jsonl")
    assert out["texts"] == ["before", "after"]
    assert [r[:2] for r in out["rejects"]] == [["line:2", "bad_json"]]
    assert "recursion" in out["rejects"][0][2]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "po"])
def test_one_huge_record_is_too_long_and_memory_stays_bounded(tmp_path, fmt):
    """A 256 MB line (in gzip) is skipped to its end as too_long; peak RSS stays far below it."""
    mb = 256
    p = tmp_path / f"huge.{fmt}.gz"
    head = {"jsonl": b'{"text": "', "csv": b'id,text\n1,"', "po": b'msgid "x"\nmsgstr "'}[fmt]
    tail = {"jsonl": b'"}\n{"text": "a good line"}\n', "csv": b'"\n2,a good line\n',
            "po": b'"\n\nmsgid "y"\nmsgstr "a good line"\n'}[fmt]
    with gzip.open(p, "wb", compresslevel=1) as fh:
        fh.write(head)
        block = b"licence " * (1 << 17)
        for _ in range(mb):
            fh.write(block)
        fh.write(tail)
    out = _child(p, fmt, "gzip")
    assert out["texts"] == ["a good line"]
    assert [r[1] for r in out["rejects"]] == ["too_long"]
    assert out["rss_mb"] < 200, out["rss_mb"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "po", "txt"])
def test_max_chars_bounds_what_one_record_may_hold(tmp_path, fmt):
    """A small max_chars: an 8 MB record is read in pieces, too_long, next record intact."""
    big = "x" * (8 << 20)
    body = {"jsonl": json.dumps({"text": big}) + '\n{"text": "fine"}\n',
            "csv": f'text\n"{big}"\nfine\n',
            "po": f'msgid "a"\nmsgstr ""\n"{big}"\n\nmsgid "b"\nmsgstr "fine"\n',
            "txt": f"{big}\n\nfine\n"}[fmt]
    p = tmp_path / f"x.{fmt}"
    p.write_text(body)
    kw = {"split_paragraphs": True} if fmt == "txt" else {}
    out = _child(p, fmt, max_chars=1000, **kw)
    assert out["texts"] == ["fine"] and [r[1] for r in out["rejects"]] == ["too_long"]
    assert out["rss_mb"] < 100, out["rss_mb"]  # the 8 MB record is never held


def test_csv_field_over_many_lines_is_too_long(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text('id,text\n1,"' + "a line of a very long field\n" * 5000 + '"\n2,fine\n')
    r = _read(p, "csv", max_chars=1000)
    assert r.text == ["fine"] and [x[1] for x in r.rejects] == ["too_long"]


def test_fifo_device_and_symlink_loop_never_hang(tmp_path):
    d = tmp_path / "src"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "a.txt").write_text(fx.need(fx.LICENCES / "BSD").read_text())
    os.mkfifo(d / "pipe.txt")
    (d / "sub" / "loop").symlink_to(d)  # a directory symlink loop
    (d / "null").symlink_to("/dev/null")
    script = ("import json, sys\nfrom tokenfoundry.schemas.ingest import IngestSpec\n"
              "from tokenfoundry.tasks.ingest.core import plan_ingest\n"
              "for src in sys.argv[1:]:\n"
              "    plan = plan_ingest(IngestSpec(corpus='x', sources=[src]))\n"
              "    print(json.dumps({'inputs': [i['path'] for i in plan.inputs],\n"
              "                      'skipped': [s.model_dump() for s in plan.skipped]}))\n")
    p = subprocess.run([sys.executable, "-c", script, str(d), str(d / "**" / "*.txt")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    walked, globbed = [json.loads(x) for x in p.stdout.splitlines()]
    for out in (walked, globbed):
        assert out["inputs"] == [str(d / "sub" / "a.txt")]  # once, not once per loop turn
        reasons = {Path(s["path"]).name: s["reason"] for s in out["skipped"]}
        assert reasons["pipe.txt"].startswith("a FIFO") and "not followed" in reasons["loop"]
    assert reasons_of(walked)["null"].startswith("a character device")


def reasons_of(out: dict) -> dict[str, str]:
    return {Path(s["path"]).name: s["reason"] for s in out["skipped"]}


def test_huge_plural_index_is_a_small_fast_reject(tmp_path):
    p = tmp_path / "de.po"
    p.write_text('msgid "file"\nmsgid_plural "files"\nmsgstr[0] "Datei"\n'
                 'msgstr[300000000] "Dateien"\n\nmsgid "ok"\nmsgstr "gut"\n')
    r = _read(p, "po")
    assert r.text == ["gut"]
    assert [(x[0], x[1]) for x in r.rejects] == [("line:4", "corrupt_file")]
    assert "plural index 300000000 > 16" in r.rejects[0][2]


def test_non_utf8_file_name_is_listed_not_a_crash(workspace, tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "good.txt").write_text("A licence sentence, fine and plain.")
    bad = os.path.join(os.fsencode(d), b"caf\xe9.txt")
    with open(bad, "wb") as fh:
        fh.write(b"Text in a file whose name is Latin-1.")
    r = core.ingest(workspace, IngestSpec(corpus="n", sources=[str(d)], lang_id=False))
    assert (r.read, r.kept) == (1, 1)
    assert [(s.path, "not valid UTF-8" in s.reason) for s in r.skipped] == [
        (str(d / "caf\\xe9.txt"), True)]
    assert json.dumps(r.model_dump()).encode("utf-8")  # the result is valid UTF-8 JSON
    assert ds.dataset(r.dataset_path).to_table().column("source").to_pylist() == [
        str(d / "good.txt")]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom_are_decoded(tmp_path, encoding):
    text = fx.need(fx.LICENCES / "GPL-3").read_text()
    p = tmp_path / "gpl.txt"

    def encode(t: str) -> bytes:  # "utf-16"/"utf-32" write a BOM themselves
        return (codecs.BOM_UTF16_BE if encoding == "utf-16-be" else b"") + t.encode(encoding)

    p.write_bytes(encode(text))
    assert _read(p, "txt").text == [text]
    paras = _read(p, "txt", split_paragraphs=True).text
    assert paras == [x for x in (q.rstrip("\n") for q in text.split("\n\n")) if x.strip()]
    j = tmp_path / "g.jsonl"
    j.write_bytes(encode("\n".join(json.dumps({"text": q}) for q in text.split("\n\n"))
                         + "\n"))
    assert "".join(_read(j, "jsonl").text) == text.replace("\n\n", "")


def test_utf16_without_bom_names_the_encoding_and_the_fix(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(fx.need(fx.LICENCES / "BSD").read_text().encode("utf-16-le"))
    r = _read(p, "txt")
    assert r.text == [] and [x[1] for x in r.rejects] == ["binary"]
    assert "UTF-16LE" in r.rejects[0][2] and "iconv -f UTF-16LE -t UTF-8" in r.rejects[0][2]


def test_walk_lists_binary_hidden_and_unknown_files(workspace, tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "LICENSE").write_text(fx.need(fx.LICENCES / "BSD").read_text())
    (d / "notes.rst").write_text("A reStructuredText note, read as text.")
    (d / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    (d / ".hidden").write_text("hidden")
    (d / ".git").mkdir()
    r = core.ingest(workspace, IngestSpec(corpus="w", sources=[str(d)], lang_id=False))
    assert r.kept == 2 and {Path(s.source).name for s in r.sources} == {"LICENSE", "notes.rst"}
    reasons = {Path(s.path).name: s.reason for s in r.skipped}
    assert set(reasons) == {"logo.png", ".hidden", ".git"}
    assert reasons["logo.png"].startswith("unknown ending '.png' and not text")
    again = core.ingest(workspace, IngestSpec(corpus="w", sources=[str(d)], lang_id=False))
    assert again.reused and again.skipped == r.skipped  # kept in the manifest
    assert normalise_text  # (imported for symmetry with the core tests)
