"""What ``train`` leaves behind: all-or-nothing ``--out``, an honest vocabulary size (asked vs
got, ``--strict``), a byte-length histogram in bytes, and the same tokenizer byte for byte from
the same text at another path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenfoundry.flows.cli import app
from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.train import TrainSpec
from tokenfoundry.tasks.train import core, outputs
from tf_fixtures import train as fx


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from tokenfoundry.storage.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("outputs") / "ws")
    fx.legal_snapshot(ws)
    return ws


def _train(ws, out, **kw):
    spec = TrainSpec(corpora=["legal"], model=kw.pop("model", "bpe"),
                     vocab_size=kw.pop("vocab_size", 600), **kw)
    return core.train(ws, spec, str(out))


def test_a_short_vocabulary_is_reported_and_strict_fails_without_writing(ws, tmp_path):
    r = CliRunner().invoke(app, ["train", "--workspace", ws.uri, "--corpus", "legal",
                                 "--model", "bpe", "--vocab-size", "60000",
                                 "--out", str(tmp_path / "big"), "--json"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    short = obj["shortfall"]
    assert obj["requested_vocab_size"] == 60000 and short["asked"] == 60000
    assert short["got"] == obj["vocab_size"] < 60000
    assert "min_frequency=2" in short["why"]
    report = json.loads((tmp_path / "big" / "train_report.json").read_text())
    assert report["vocab"]["shortfall"] == short
    # the human summary says it too
    r = CliRunner().invoke(app, ["train", "--workspace", ws.uri, "--corpus", "legal",
                                 "--vocab-size", "60000", "--out", str(tmp_path / "big")])
    assert r.exit_code == 0 and f"of 60000 asked" in r.output
    # --strict: exit 1 (a check the data failed, as a gate), and --out is left as it was
    before = (tmp_path / "big" / "tokenizer.json").read_bytes()
    r = CliRunner().invoke(app, ["train", "--workspace", ws.uri, "--corpus", "legal",
                                 "--vocab-size", "60000", "--strict", "--min-frequency", "3",
                                 "--out", str(tmp_path / "big")])
    assert r.exit_code == 1 and "of 60000 asked" in r.output
    assert (tmp_path / "big" / "tokenizer.json").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["big"]  # no temporary directory left
    # a reachable size is no shortfall, strict or not
    res = _train(ws, tmp_path / "ok", vocab_size=600, strict=True)
    assert res.shortfall is None and res.vocab_size == 600


def test_superbpe_that_never_reaches_its_transition_point_says_so(ws, tmp_path):
    res = _train(ws, tmp_path / "sb", model="superbpe", vocab_size=60000,
                 superbpe_transition=50000)
    assert res.shortfall is not None
    assert "stage 1 stopped at" in res.shortfall.why and "transition point 50000" in \
        res.shortfall.why


def test_byte_level_length_histogram_counts_bytes(ws, tmp_path):
    res = _train(ws, tmp_path / "h")
    vocab = json.loads(Path(res.report).read_text())["vocab"]
    assert vocab["length_unit"] == "bytes"
    assert vocab["length_histogram"]["1"] == 256  # every byte, 0x80-0xFF included
    assert sum(vocab["length_histogram"].values()) == vocab["model_vocab"]


def test_out_is_replaced_whole_or_not_at_all(ws, tmp_path, monkeypatch):
    out = tmp_path / "tok"
    first = _train(ws, out, vocab_size=600)
    old = {n: (out / n).read_bytes() for n in os.listdir(out)}

    def full_disk(*a, **k):  # the disk fills between tokenizer.json and train_report.json
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "write_report", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _train(ws, out, vocab_size=700)
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == old  # old tokenizer + report
    assert sorted(os.listdir(tmp_path)) == ["tok"]  # the temporary directory is gone
    monkeypatch.undo()
    second = _train(ws, out, vocab_size=700)
    assert second.vocab_size == 700 and second.vocab_sha256 != first.vocab_sha256
    report = json.loads((out / "train_report.json").read_text())
    assert report["result"]["vocab_sha256"] == second.vocab_sha256
    assert oct((out).stat().st_mode & 0o777) != oct(0o700)
    # a directory that is not a training output is never replaced
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="holds other files"):
        _train(ws, other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_a_kill_between_writes_leaves_the_old_output(ws, tmp_path):
    """kill -9 in the middle of writing: the old tokenizer and its report stay together."""
    out = tmp_path / "tok"
    _train(ws, out, vocab_size=600)
    old = {n: (out / n).read_bytes() for n in os.listdir(out)}
    script = (
        "import os, sys\n"
        "from tokenfoundry.storage.workspace import Workspace\n"
        "from tokenfoundry.schemas.train import TrainSpec\n"
        "from tokenfoundry.tasks.train import core, outputs\n"
        "def die(*a, **k):\n"
        "    os.kill(os.getpid(), 9)\n"
        "outputs.write_report = die\n"
        f"core.train(Workspace({ws.uri!r}), TrainSpec(corpora=['legal'], vocab_size=700), "
        f"{str(out)!r})\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == old


def test_same_text_at_another_path_gives_the_same_tokenizer_byte_for_byte(tmp_path):
    """Two workspaces, two copies of the sources at different paths: one tokenizer."""
    licences = Path("/usr/share/common-licenses")
    if not licences.is_dir():
        pytest.skip("needs /usr/share/common-licenses")
    outs = []
    for where in ("a/deep/copy", "b"):
        src = tmp_path / where / "sources"
        src.mkdir(parents=True)
        for name in ("GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1", "Artistic", "GFDL-1.3"):
            shutil.copy(licences / name, src / f"{name}.txt")
        ws = tmp_path / where / "ws"
        for args in (["ingest", "--corpus", "legal", "--source", str(src), "--lang", "en"],
                     ["train", "--corpus", "legal", "--model", "bpe", "--vocab-size", "800",
                      "--holdout-fraction", "0.1", "--max-bytes", "200000",
                      "--out", str(tmp_path / where / "tok")]):
            r = subprocess.run([sys.executable, "-m", "tokenfoundry.flows.cli", *args,
                                "--workspace", str(ws), "--json"], capture_output=True,
                               text=True, timeout=300, cwd=tmp_path / where)
            assert r.returncode == 0, r.stderr[-2000:]
        outs.append(json.loads(r.stdout))
    a, b = (Path(o["tokenizer_json"]).read_bytes() for o in outs)
    assert a == b
    assert outs[0]["heldout_docs"] == outs[1]["heldout_docs"] > 0
    assert outs[0]["docs"] == outs[1]["docs"] and outs[0]["bytes"] == outs[1]["bytes"]
