"""Errors on the command line: one ``error:`` block (or one JSON object), the right exit code,
a hint for a full disk and an unreachable Prefect API, tracebacks only with --verbose."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tokenfoundry.flows.cli import app

CLI = [sys.executable, "-m", "tokenfoundry.flows.cli"]


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120
         ) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_json_error_object_for_bad_input(tmp_path):
    p = _cli("dedup", "--corpus", "nothing", "--workspace", str(tmp_path), "--json")
    assert p.returncode == 2
    doc = json.loads(p.stdout)  # exactly one JSON object
    assert doc["exit_code"] == 2 and doc["error_type"] == "BadInputError"
    assert "corpus 'nothing' has no snapshots" in doc["error"]
    assert "Traceback" not in p.stderr


def test_usage_error_with_json_is_one_object_and_exit_2():
    p = _cli("dedup", "--corpuss", "x", "--json")
    assert p.returncode == 2
    doc = json.loads(p.stdout)
    assert doc["exit_code"] == 2 and "--corpuss" in doc["error"]
    p = _cli("gc", "--grace-hours", "soon")
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr


def test_human_error_is_one_block_without_traceback(tmp_path):
    p = _cli("dedup", "--corpus", "nothing", "--workspace", str(tmp_path))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error: corpus 'nothing' has no snapshots")
    assert p.stderr.count("\n") == 1
    v = _cli("dedup", "--corpus", "nothing", "--workspace", str(tmp_path), "--verbose")
    assert v.returncode == 2 and "Traceback (most recent call last)" in v.stderr
    assert "BadInputError" in v.stderr


def _raise_in_dedup(monkeypatch, exc: BaseException) -> None:
    import tokenfoundry.tasks.dedup.core as core

    def boom(*_a, **_k):
        raise exc

    monkeypatch.setattr(core, "dedup", boom)


def _run(args: list[str]):
    return CliRunner().invoke(app, args)


def test_full_disk_anywhere_is_a_disk_full_message(monkeypatch, tmp_path):
    _raise_in_dedup(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                                         str(tmp_path / "x.parquet")))
    r = _run(["dedup", "--corpus", "c", "--workspace", str(tmp_path), "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["error"].startswith("no space left on the device")
    assert str(tmp_path / "x.parquet") in doc["error"] and "tokenfoundry gc" in doc["error"]


def test_disk_full_error_carries_root_and_sizes_in_json(monkeypatch, tmp_path):
    from tokenfoundry.schemas.errors import DiskFull

    _raise_in_dedup(monkeypatch, DiskFull(str(tmp_path), str(tmp_path / "part.parquet"),
                                          needed=5 * 1024 * 1024, free=4096))
    r = _run(["dedup", "--corpus", "c", "--workspace", str(tmp_path), "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert (doc["root"], doc["bytes_needed"], doc["bytes_free"]) == (str(tmp_path),
                                                                    5 * 1024 * 1024, 4096)
    assert f"workspace/registry {tmp_path}" in doc["error"] and "5.0 MB more" in doc["error"]
    assert "(4.0 KB free)" in doc["error"]
    assert r.stderr.startswith("error: no space left on the device")


def test_unreachable_prefect_api_says_how_to_go_back_to_ephemeral(monkeypatch, tmp_path):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    _raise_in_dedup(monkeypatch, RuntimeError("Failed to reach API at http://127.0.0.1:9/api/"))
    r = _run(["dedup", "--corpus", "c", "--workspace", str(tmp_path)])
    assert r.exit_code == 1
    assert "cannot reach the Prefect API at http://127.0.0.1:9/api" in r.stderr
    assert "prefect config unset PREFECT_API_URL" in r.stderr
    assert "Traceback" not in r.stderr


def test_internal_error_is_one_line_and_verbose_has_the_traceback(monkeypatch, tmp_path):
    _raise_in_dedup(monkeypatch, KeyError("shard"))
    r = _run(["dedup", "--corpus", "c", "--workspace", str(tmp_path)])
    assert r.exit_code == 1
    assert r.stderr.strip() == ("error: internal error: KeyError: 'shard' (run again with "
                                "--verbose for the traceback)")
    r = _run(["dedup", "--corpus", "c", "--workspace", str(tmp_path), "--verbose"])
    assert r.exit_code == 1 and "Traceback (most recent call last)" in r.stderr


def test_a_result_printed_before_the_error_carries_it(monkeypatch, tmp_path):
    """A command that emitted its --json result and then failed (e.g. a gate) prints one
    object: the result plus error and exit_code."""
    import tokenfoundry.flows.cli.gc as gc_cli
    from tokenfoundry.schemas.errors import GateFailed

    def emit_then_fail(obj):
        gc_cli_emit(obj)
        raise GateFailed("bytes_per_token >= 9: value 3.1")

    gc_cli_emit = gc_cli.emit_json
    monkeypatch.setattr(gc_cli, "emit_json", emit_then_fail)
    r = _run(["gc", "--workspace", str(tmp_path), "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["bytes_freed"] == 0 and doc["exit_code"] == 1
    assert doc["error"] == "bytes_per_token >= 9: value 3.1"


def test_prefect_setup_runs_before_prefect_is_imported(tmp_path):
    """Every command door applies the one set-up (analytics off, 120 s start-up timeout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DO_NOT"))}
    code = (
        "import os, sys\n"
        "from typer.testing import CliRunner\n"
        "from tokenfoundry.flows.cli import app\n"
        f"r = CliRunner().invoke(app, ['gc', '--workspace', {str(tmp_path)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'],\n"
        "      os.environ['PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS'],\n"
        "      os.environ['PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS'], 'prefect' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["false", "120",
                                "tokenfoundry.flows.prefect_console.QuietConsoleHandler",
                                "False"]


def test_quiet_console_handler_leaves_failed_runs_to_the_prefect_logs(monkeypatch):
    import io

    from tokenfoundry.flows.prefect_console import QuietConsoleHandler

    def record(name: str, level: int, exc: bool = False) -> logging.LogRecord:
        info = None
        if exc:
            try:
                raise ValueError("gate")
            except ValueError:
                info = sys.exc_info()
        return logging.LogRecord(name, level, __file__, 1, "Finished in state Failed", None,
                                 info)

    stream = io.StringIO()
    h = QuietConsoleHandler(stream=stream)
    monkeypatch.setenv("TOKENFOUNDRY_VERBOSE", "0")
    h.emit(record("prefect.flow_runs", logging.ERROR, exc=True))
    h.emit(record("prefect.task_runs", logging.ERROR))
    assert stream.getvalue() == ""
    h.emit(record("prefect.flow_runs", logging.WARNING))  # retries and warnings still show
    h.emit(record("prefect.other", logging.ERROR, exc=True))  # without its traceback
    text = stream.getvalue()
    assert text.count("Finished in state Failed") == 2 and "Traceback" not in text
    monkeypatch.setenv("TOKENFOUNDRY_VERBOSE", "1")
    h.emit(record("prefect.flow_runs", logging.ERROR, exc=True))
    assert "Traceback" in stream.getvalue()


@pytest.mark.prefect
@pytest.mark.slow
def test_flow_door_has_no_telemetry_traceback_and_one_error_block(tmp_path):
    """``--flow`` starts the ephemeral API with the same set-up as the other doors: no
    "database is locked" telemetry traceback, and a failure is one ``error:`` line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DO_NOT"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    p = _cli("dedup", "--corpus", "nothing", "--workspace", str(tmp_path / "ws"), "--flow",
             env=env, timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "database is locked" not in p.stderr and "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: corpus 'nothing' has no snapshots"), p.stderr[-3000:]
    assert not [ln for ln in lines if "ERROR" in ln], p.stderr[-3000:]


@pytest.mark.slow
def test_a_stopped_server_gives_the_way_back_to_ephemeral_mode(tmp_path):
    """PREFECT_API_URL still points at a server that is gone: `run` says so in one block."""
    import socket

    import yaml

    from tf_fixtures.pipeline import tiny_spec

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec([])), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "home"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    p = _cli("run", str(spec), "--workspace", str(tmp_path / "ws"), "--json", env=env)
    assert p.returncode == 1, p.stderr[-2000:]
    doc = json.loads(p.stdout)
    assert doc["error"].startswith(f"cannot reach the Prefect API at http://127.0.0.1:{port}/api")
    assert doc["hint"] == "prefect config unset PREFECT_API_URL"
    assert "Traceback" not in p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.startswith("error:")] == \
        [ln for ln in p.stderr.splitlines() if ln.strip()][-1:]


def test_a_ref_with_a_superscript_digit_is_one_line_not_a_traceback(tmp_path):
    """``tok@²``: str.isdigit() accepts '²' but int() refuses it. Whatever the registry does,
    the CLI prints one line and no traceback."""
    r = _run(["registry", "--registry", str(tmp_path / "reg"), "show", "tok@²"])
    assert r.exit_code in (1, 2) and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1


def test_a_ref_with_a_superscript_digit_is_bad_input(tmp_path):
    r = _run(["registry", "--registry", str(tmp_path / "reg"), "show", "tok@²"])
    assert r.exit_code == 2 and "invalid version or alias '²'" in r.stderr
