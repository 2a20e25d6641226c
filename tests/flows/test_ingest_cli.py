"""``tokenfoundry ingest`` as a user runs it: exit codes 0/1/2, one JSON object, the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LICENCES = Path("/usr/share/common-licenses")
MO = Path("/usr/share/locale/de/LC_MESSAGES/sed.mo")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from tokenfoundry.flows.cli import main; main()",
                           *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    if not (LICENCES / "GPL-3").exists() or not MO.exists():
        pytest.skip("needs Debian licences and gettext catalogs")
    d = tmp_path_factory.mktemp("src")
    (d / "GPL-3").write_bytes((LICENCES / "GPL-3").read_bytes())
    (d / "sed.mo").write_bytes(MO.read_bytes())
    (d / "bad.jsonl").write_text('{"text": "A fine licence sentence."}\n{"text": 1}\n')
    return d


def test_json_output_exit_0_then_reuse(tmp_path, src):
    ws = tmp_path / "ws"
    p = _run("ingest", "--corpus", "cli", "--source", str(src), "-w", str(ws), "--json",
             "--lang", "de")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # exactly one JSON object on stdout
    assert {"snapshot_id", "read", "kept", "rejected", "rejects_by_reason", "dataset_path",
            "rejects_path"} <= set(out)
    assert out["read"] == out["kept"] + out["rejected"] and out["rejects_by_reason"] == {
        "wrong_type": 1}
    assert Path(out["dataset_path"], "_manifest.json").is_file()
    assert Path(out["rejects_path"]).is_dir() and not out["reused"]
    again = json.loads(_run("ingest", "--corpus", "cli", "--source", str(src), "-w", str(ws),
                            "--json", "--lang", "de").stdout)
    assert again["reused"] and again["snapshot_id"] == out["snapshot_id"]
    human = _run("ingest", "--corpus", "cli", "--source", str(src), "-w", str(ws), "--lang", "de")
    assert human.returncode == 0 and "rejects by reason" in human.stdout
    assert "wrong_type" in human.stdout and out["snapshot_id"] in human.stdout


def test_strict_exits_1_after_writing(tmp_path, src):
    p = _run("ingest", "--corpus", "cli", "--source", str(src / "bad.jsonl"), "-w",
             str(tmp_path / "ws"), "--json", "--strict", "--no-lang-id")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["rejected"] == 1 and Path(out["dataset_path"], "_manifest.json").is_file()
    assert "--strict" in p.stderr and "wrong_type" in p.stderr


@pytest.mark.parametrize("args,needle", [
    (["--source", "/nonexistent/path"], "no such file"),
    (["--source", os.path.realpath(sys.executable)], "and not text: NUL bytes"),  # ELF
    (["--source", str(LICENCES), "--utf8", "ignore"], "utf8"),
    (["--source", str(LICENCES), "--min-chars", "0"], "min_chars"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, needle):
    ws = tmp_path / "ws"
    p = _run("ingest", "--corpus", "cli", "-w", str(ws), "--json", *args)
    assert p.returncode == 2
    err = json.loads(p.stdout)  # --json: exactly one JSON error object on stdout
    assert err["exit_code"] == 2 and needle in err["error"] and needle in p.stderr
    assert not ws.exists()


def test_help_has_an_example():
    p = _run("ingest", "--help")
    assert p.returncode == 0 and "tokenfoundry ingest --corpus legal --source" in p.stdout


def test_common_licenses_are_all_records_and_skips_are_listed(tmp_path):
    """Apache-2.0, MPL-2.0, ... are records; the symlinks are listed in --json and the summary."""
    if not (LICENCES / "Apache-2.0").exists():
        pytest.skip("needs /usr/share/common-licenses")
    args = ("ingest", "--corpus", "legal", "--source", str(LICENCES), "-w", str(tmp_path / "ws"),
            "--no-lang-id")
    p = _run(*args, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    kept = {Path(s["source"]).name: s["kept"] for s in out["sources"]}
    for name in ("Apache-2.0", "MPL-2.0", "CC0-1.0", "GFDL-1.2", "GFDL-1.3", "LGPL-2.1",
                 "MPL-1.1"):
        assert kept[name] == 1
    links = sorted(p.name for p in LICENCES.iterdir() if p.is_symlink())
    assert sorted(Path(s["path"]).name for s in out["skipped"]) == links
    assert all(set(s) == {"path", "reason"} for s in out["skipped"])
    assert len(kept) + len(links) == len(list(LICENCES.iterdir()))  # every entry accounted for
    human = _run(*args)
    assert human.returncode == 0 and f"skipped {len(links)} file(s)" in human.stdout
    if links:
        assert f"{LICENCES / links[0]}: same file as" in human.stdout
