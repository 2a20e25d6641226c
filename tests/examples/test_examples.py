"""The contract: every shipped pipeline works as a user runs it (issue 13).

Each test runs one shipped pipeline end to end on this machine's real text, through the command a
user types (``python -m tokenfoundry.flows.cli ...``, never a ``tokenfoundry`` found on PATH),
from a workspace outside the repository (``tmp_path``, also the working directory), and asserts
that its gates pass and that it publishes a version that loads and round-trips text.

``tokenfoundry quickstart`` runs exactly as shipped. The examples run from a copy of the shipped
YAML; the multilingual one (about 12 minutes in full) runs with the documented size cap
``run --max-bytes`` and is otherwise unchanged. A green suite with a broken example is a broken
suite: nothing here is skipped or marked xfail when a gate fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

#: Example -> the size cap its test runs with (None: as shipped). multilingual: 29 languages'
#: catalogs, capped so that every language keeps a share (see `run --help`).
EXAMPLES = {"quickstart": None, "legal": None, "code": None, "multilingual": "20MB"}


def _cli(args: list[str], cwd: Path, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run([sys.executable, "-m", "tokenfoundry.flows.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def _summary(ws: Path, ref: str, manifest: dict) -> str:
    """One line for the log (pytest -rA): gates, held-out documents, vocabulary asked/got."""
    (ev,) = ws.glob("pipelines/*/evaluate/*/evaluation.json")
    (tr,) = ws.glob("pipelines/*/train/*/train_report.json")
    docs = {d["name"]: d["docs"] for d in json.loads(ev.read_text())["datasets"]}
    vocab = json.loads(tr.read_text())["vocab"]
    gates = ", ".join(f"{g['expr']} ({g['value']:.4g})" for g in manifest["gates"])
    return (f"published {ref}; gates passed: {gates}; held-out docs {docs}; vocabulary "
            f"{vocab['size']} of {vocab['target']} asked")


def _check_published(registry: Path, ref: str) -> dict:
    """The version exists, its manifest records passing gates, and its tokenizer works."""
    from tokenfoundry.storage.registry import Registry, load_tokenizer

    name, _, version = ref.partition("@")
    reg = Registry(str(registry))
    assert reg.versions(name) == [int(version)]
    manifest = reg.manifest(name, int(version)).model_dump(mode="json")
    gates = manifest["gates"]
    assert gates and all(g["passed"] for g in gates), gates
    tok = load_tokenizer(ref, str(registry))
    text = "Permission is hereby granted, free of charge, to any person obtaining a copy"
    assert tok.decode(tok.encode(text).ids) == text
    return manifest


def test_quickstart_as_shipped(tmp_path):
    r = _cli(["quickstart", "--workspace", "ws"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    assert "published quickstart-bpe@1" in r.stdout
    assert "gates FAILED" not in r.stdout
    manifest = _check_published(tmp_path / "ws" / "registry", "quickstart-bpe@1")
    assert {g["expr"] for g in manifest["gates"]} == {"roundtrip_errors == 0",
                                                      "bytes_per_token >= 2.5"}
    # it evaluated on enough held-out text of each corpus it trained on
    (ev,) = (tmp_path / "ws" / "pipelines" / "quickstart" / "evaluate").glob("*/evaluation.json")
    docs = {d["name"]: d["docs"] for d in json.loads(ev.read_text())["datasets"]}
    assert docs["licences:heldout"] >= 100 and docs["gettext:heldout"] >= 1000, docs
    print(_summary(tmp_path / "ws", "quickstart-bpe@1", manifest))


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e != "quickstart"])
def test_example_pipeline_passes_its_gates_and_publishes(example, tmp_path):
    from tokenfoundry.flows.quickstart import example_text

    spec = tmp_path / f"{example}.yaml"
    spec.write_text(example_text(example))  # what a user copies out of examples/
    cap = EXAMPLES[example]
    args = ["run", spec.name, "--workspace", "ws", "--json"]
    r = _cli(args + (["--max-bytes", cap] if cap else []), cwd=tmp_path)
    assert r.stdout.strip(), r.stderr[-3000:]
    result = json.loads(r.stdout)
    failed = [(g["expr"], g.get("value")) for g in result.get("gates", []) if not g["passed"]]
    assert not failed, f"{example}: gates failed {failed}; nothing published"
    assert r.returncode == 0, r.stderr[-3000:]
    assert result["status"] == "published" and result["gates_passed"]
    ref = result["published"]["ref"]
    assert ref.endswith("@1")
    manifest = _check_published(tmp_path / "ws" / "registry", ref)
    # every stage of a first run did its work, and the table says what the gates said
    assert not any(s["reused"] for s in result["stages"])
    assert [s["output"] for s in result["stages"] if s["stage"] == "evaluate"] == [
        f"gates passed ({len(result['gates'])} of {len(result['gates'])})"]
    print(f"{example}: " + _summary(tmp_path / "ws", ref, manifest))
