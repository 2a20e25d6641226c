"""``tokenfoundry registry ...``: exit codes (0 ok, 1 check failed, 2 bad input), one JSON object
on stdout with --json, messages naming the file; one real subprocess run against S3 (moto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from typer.testing import CliRunner

from tokenfoundry.flows.cli import app
from tf_fixtures import registry as fx


fx.load(globals())


def run(*args: str) -> tuple[int, dict | None, str]:
    res = CliRunner().invoke(app, ["registry", *args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    obj = None
    if "--json" in args and res.stdout.strip():
        lines = res.stdout.strip().splitlines()
        assert len(lines) == 1, f"--json must print exactly one line: {res.stdout!r}"
        obj = json.loads(lines[0])
    return res.exit_code, obj, res.stderr


def test_cli_publish_list_show_promote_pull_verify_gc(tmp_path, tokenizer_dir):
    reg = str(tmp_path / "reg")
    code, obj, _ = run("--registry", reg, "publish", str(tokenizer_dir), "--name", "legal-bpe",
                       "--json")
    assert code == 0 and obj["ref"] == "legal-bpe@1" and obj["reused"] is False
    assert obj["files"] == len(list(tokenizer_dir.iterdir()))
    code, obj, _ = run("--registry", reg, "publish", str(tokenizer_dir), "--name", "legal-bpe",
                       "--json")
    assert code == 0 and (obj["version"], obj["reused"]) == (1, True)
    code, obj, _ = run("--registry", reg, "promote", "legal-bpe@1", "--alias", "production",
                       "--json")
    assert code == 0 and obj == {"ref": "legal-bpe@1", "name": "legal-bpe", "version": 1,
                                 "alias": "production", "previous": None, "changed": True}
    code, obj, _ = run("--registry", reg, "list", "--json")
    assert code == 0 and obj["tokenizers"][0]["aliases"] == {"latest": 1, "production": 1}
    code, obj, _ = run("--registry", reg, "show", "legal-bpe@production", "--json")
    assert code == 0 and obj["version"] == 1
    assert {f["path"] for f in obj["manifest"]["files"]} == {p.name for p in
                                                              tokenizer_dir.iterdir()}
    code, obj, _ = run("--registry", reg, "pull", "legal-bpe@production", "--to",
                       str(tmp_path / "pulled"), "--json")
    assert code == 0 and Path(obj["path"], "tokenizer.json").read_bytes() == \
        (tokenizer_dir / "tokenizer.json").read_bytes()
    code, obj, _ = run("--registry", reg, "verify", "legal-bpe", "--json")
    assert code == 0 and obj["ok"] is True and obj["problems"] == []
    code, obj, _ = run("--registry", reg, "gc", "--json")
    assert code == 0 and obj["removed"] == [] and obj["bytes_freed"] == 0
    # human output goes to stdout as a table
    res = CliRunner().invoke(app, ["registry", "--registry", reg, "list"])
    assert res.exit_code == 0 and "legal-bpe" in res.stdout and "production" in res.stdout


def test_cli_tampered_file_exits_1_naming_it(tmp_path, tokenizer_dir):
    reg = str(tmp_path / "reg")
    assert run("--registry", reg, "publish", str(tokenizer_dir), "--name", "t", "--json")[0] == 0
    p = tmp_path / "reg" / "t" / "1" / "tokenizer_config.json"
    p.write_bytes(p.read_bytes().replace(b"{", b"[", 1))
    code, obj, stderr = run("--registry", reg, "verify", "t@1", "--json")
    assert code == 1 and obj["ok"] is False
    assert [x["path"] for x in obj["problems"]] == ["tokenizer_config.json"]
    assert "tokenizer_config.json" in stderr
    code, obj, stderr = run("--registry", reg, "pull", "t@1", "--to", str(tmp_path / "o"),
                            "--no-cache", "--json")
    assert code == 1 and obj is None and "tokenizer_config.json: sha256 mismatch" in stderr
    assert not (tmp_path / "o").exists()


def test_cli_bad_input_exits_2(tmp_path, tokenizer_dir):
    reg = str(tmp_path / "reg")
    code, _, stderr = run("--registry", reg, "publish", str(tmp_path / "nope"), "--name", "x")
    assert code == 2 and "directory not found" in stderr
    code, _, stderr = run("--registry", reg, "publish", str(tokenizer_dir), "--name", "../x")
    assert code == 2 and "invalid registry name" in stderr
    code, _, stderr = run("--registry", reg, "show", "missing@3")
    assert code == 2 and "no such version" in stderr
    code, _, stderr = run("--registry", reg, "import", str(tmp_path / "missing.tar.gz"))
    assert code == 2 and "no such bundle" in stderr
    code, _, stderr = run("--registry", reg, "gc", "--grace-hours", "-1")
    assert code == 2 and "--grace-hours" in stderr


def test_cli_failed_gate_publishes_nothing(tmp_path, tokenizer_dir):
    reg = str(tmp_path / "reg")
    ev = tmp_path / "eval" / "evaluation.json"
    ev.parent.mkdir()
    ev.write_text(json.dumps({
        "candidate": "legal", "tokenizers": {"legal": {"bytes_per_token": 3.1}},
        "gates": [{"expr": "bytes_per_token >= 4.0", "metric": "bytes_per_token", "op": ">=",
                   "threshold": 4.0, "value": 3.1, "passed": False}],
        "gates_passed": False}))
    code, _, stderr = run("--registry", reg, "publish", str(tokenizer_dir), "--name", "legal",
                          "--evaluation", str(ev))
    assert code == 1 and "bytes_per_token >= 4.0" in stderr
    assert not (tmp_path / "reg" / "legal").exists()


def test_cli_export_import_and_refused_bundle(tmp_path, tokenizer_dir):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    run("--registry", a, "publish", str(tokenizer_dir), "--name", "legal-bpe")
    code, obj, _ = run("--registry", a, "export", "legal-bpe@1", "--to",
                       str(tmp_path / "x.tar.gz"), "--json")
    assert code == 0 and obj["path"].endswith("x.tar.gz")
    code, obj, _ = run("--registry", b, "import", str(tmp_path / "x.tar.gz"), "--json")
    assert code == 0 and (obj["ref"], obj["reused"]) == ("legal-bpe@1", False)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(tmp_path / "x.tar.gz") as src, tarfile.open(evil, "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
        ti = tarfile.TarInfo("legal-bpe-1/escape")
        ti.type, ti.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        dst.addfile(ti)
    c = str(tmp_path / "c")
    code, obj, stderr = run("--registry", c, "import", str(evil), "--json")
    assert code == 1 and obj is None and "legal-bpe-1/escape" in stderr
    assert not Path(c).exists()


def test_cli_subprocess_against_s3(moto_s3, tmp_path, tokenizer_dir):
    reg = f"s3://{fx.new_bucket(moto_s3)}/tokenizers"
    env = {**os.environ, "TOKENFOUNDRY_REGISTRY": reg}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from tokenfoundry.flows.cli import main; "
                               "main()", "registry", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    r = cli("publish", str(tokenizer_dir), "--name", "legal-bpe", "--alias", "staging", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["uri"] == f"{reg}/legal-bpe/1" and obj["aliases"] == {"latest": 1, "staging": 1}
    r = cli("pull", "legal-bpe@staging", "--to", str(tmp_path / "p"), "--json")
    assert r.returncode == 0, r.stderr
    assert fx.tree_bytes(tmp_path / "p") == {
        **fx.tree_bytes(tokenizer_dir),
        "manifest.json": (tmp_path / "p" / "manifest.json").read_bytes()}
