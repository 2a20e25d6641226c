"""evaluate --text PATH, train --corpus PATH and the parallel-set builder read through ingest's
readers: one format list, one cut-stream rule, one gettext key."""

from __future__ import annotations

import json

import pytest

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.evaluate.parallel import _catalog, build_parallel_from_mo, seg_id_of
from tokenfoundry.tasks.evaluate.texts import read_texts
from tokenfoundry.tasks.ingest import core
from tf_fixtures import ingest as fx


def test_evaluate_cut_zstd_stream_is_an_error_not_silent(tmp_path):
    paras = fx.licence_paragraphs()
    p = fx.write_jsonl(tmp_path / "held.jsonl.zst", paras * 3, "zstd")
    assert read_texts(str(p)).docs == paras * 3
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(BadInputError, match=r"held\.jsonl\.zst: line:\d+: truncated"):
        read_texts(str(p))


def test_evaluate_reads_every_ingest_format(tmp_path):
    d = tmp_path / "texts"
    d.mkdir()
    paras = fx.licence_paragraphs(("MPL-2.0",))
    (d / "Apache-2.0").write_bytes(fx.need(fx.LICENCES / "Apache-2.0").read_bytes())
    fx.write_csv(d / "c.csv", paras[:5])  # no "text" column: skipped in a directory
    fx.write_jsonl(d / "p.jsonl.gz", paras[5:10], "gzip")
    (d / "de.mo").write_bytes(fx.need(fx.LOCALE / "de/LC_MESSAGES/sed.mo").read_bytes())
    (d / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    ts = read_texts(str(d))
    assert ts.docs[0] == (fx.LICENCES / "Apache-2.0").read_text()  # '.0' is read as text
    assert ts.docs[-5:] == paras[5:10]
    assert "de" in ts.langs and ts.skipped == 2  # the csv and the png
    with pytest.raises(BadInputError, match="c.csv: line:1: missing_field"):
        read_texts(str(d / "c.csv"))


def test_train_path_corpus_reads_jsonl_records_not_whole_files(tmp_path):
    """A jsonl PATH is one document per line (it was one document per file)."""
    from tokenfoundry.schemas.train import TrainSpec
    from tokenfoundry.tasks.train import data

    paras = fx.licence_paragraphs(("GPL-3",))
    d = tmp_path / "corpus"
    d.mkdir()
    fx.write_jsonl(d / "a.jsonl", paras)
    (d / "MPL-2.0").write_bytes(fx.need(fx.LICENCES / "MPL-2.0").read_bytes())
    spec = TrainSpec.model_validate({"corpora": [str(d)], "model": "bpe", "vocab_size": 300,
                                     "holdout_fraction": 0.0})
    sources = data.resolve_sources(Workspace(tmp_path / "ws"), spec)
    plan = data.plan_sample(sources, spec)
    texts = [t for b in data.stream(plan) for t in b]
    assert sorted(texts) == sorted(paras + [(fx.LICENCES / "MPL-2.0").read_text()])


def test_one_gettext_key_for_ingest_and_the_parallel_set(workspace, tmp_path):
    mo = fx.need(fx.LOCALE / "de/LC_MESSAGES/sed.mo")
    r = core.ingest(workspace, IngestSpec(corpus="g", sources=[str(mo)], lang_id=False))
    rows = workspace.snapshot("g", r.snapshot_id).dataset().to_table(
        columns=["align_key", "text"]).to_pylist()
    singular = {x["align_key"]: x["text"] for x in rows if "\x00" not in x["align_key"]}
    assert singular == _catalog(mo)  # the same messages under the same keys
    table = build_parallel_from_mo(fx.LOCALE, langs=["de", "en"], domains=["sed"])
    de = {s: t for s, lg, t in zip(*(table.column(c).to_pylist() for c in
                                     ("seg_id", "lang", "text"))) if lg == "de"}
    assert de == {seg_id_of(k): v for k, v in singular.items()}
    assert json  # (json is used by the fixtures module)
