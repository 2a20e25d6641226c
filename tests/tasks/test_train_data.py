"""Training data: held-out rule, deterministic budgets, temperature mixing, inputs by path."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.train import TrainSpec
from tokenfoundry.storage.splits import heldout_threshold, is_heldout, split_key
from tokenfoundry.tasks.train import data
from tf_fixtures import train as fx


def _plan(ws, **kw):
    spec = TrainSpec(vocab_size=1000, **kw)
    return data.plan_sample(data.resolve_sources(ws, spec), spec)


def _docs(ws, corpus):
    snap = ws.resolve(corpus)
    return snap.dataset().to_table(columns=["doc_id", "lang", "text", "n_bytes", "content_hash"]).to_pylist()


def test_heldout_documents_never_reach_the_stream(workspace):
    fx.legal_snapshot(workspace)
    docs = _docs(workspace, "legal")
    plan = _plan(workspace, corpora=["legal"], holdout_fraction=0.2)
    stats = data.StreamStats()
    streamed = Counter(t for batch in data.stream(plan, stats) for t in batch)
    # the corpus' threshold: 20 %, or at least min(100, n // 5) documents (storage.splits)
    below = heldout_threshold([split_key(d["content_hash"]) for d in docs], 0.2)
    assert plan.heldout_below == {"legal": below}
    held = [d for d in docs if is_heldout(d["content_hash"], 0.2, below)]
    kept = [d for d in docs if not is_heldout(d["content_hash"], 0.2, below)]
    assert len(held) >= min(100, len(docs) // 5) and 40 < len(held) < 130  # ~20% of 408
    assert plan.heldout_docs == len(held) == stats.heldout_seen
    assert stats.total_docs == len(kept) and sum(streamed.values()) == len(kept)
    assert Counter(d["text"] for d in kept) == streamed
    only_held = {d["text"] for d in held} - {d["text"] for d in kept}
    assert only_held and not only_held & set(streamed)


def test_max_bytes_budget_is_met_deterministically(workspace):
    fx.legal_snapshot(workspace)
    plan = _plan(workspace, corpora=["legal"], max_bytes=40_000)
    s1, s2 = data.StreamStats(), data.StreamStats()
    a = [t for b in data.stream(plan, s1) for t in b]
    b = [t for b in data.stream(_plan(workspace, corpora=["legal"], max_bytes=40_000), s2)
         for t in b]
    assert a == b
    assert 0.99 * 40_000 <= s1.total_bytes <= 40_000
    other = [t for b in data.stream(_plan(workspace, corpora=["legal"], max_bytes=40_000,
                                          seed=7)) for t in b]
    assert other != a  # another seed, another sample


def test_max_docs_budget(workspace):
    fx.legal_snapshot(workspace)
    stats = data.StreamStats()
    plan = _plan(workspace, corpora=["legal"], max_docs=50)
    n = sum(len(b) for b in data.stream(plan, stats))
    assert n == stats.total_docs and 48 <= n <= 50


def test_temperature_mixing_probabilities(workspace):
    recs = fx.gettext_records(langs=("de", "fr", "ja"))
    # make the mix unbalanced: keep every German message, a tenth of the others
    recs = [r for i, r in enumerate(recs) if r["lang"] == "de" or i % 10 == 0]
    from tokenfoundry.tasks.train.snapshots import write_snapshot

    write_snapshot(workspace, "ui", recs)
    docs = _docs(workspace, "ui")
    n = Counter()
    for d in docs:
        if not is_heldout(d["content_hash"], 0.05):
            n[d["lang"]] += d["n_bytes"]
    for alpha in (0.3, 1.0):
        plan = _plan(workspace, corpora=["ui"], mix_by="lang", mix_alpha=alpha)
        z = sum(v ** alpha for v in n.values())
        expect = {k: v ** alpha / z for k, v in n.items()}
        for k, g in plan.groups.items():
            assert g.target_fraction == pytest.approx(expect[k], rel=1e-9)
        stats = data.StreamStats()
        for _ in data.stream(plan, stats):
            pass
        for k, v in stats.mix().items():
            assert v == pytest.approx(expect[k], abs=0.01), (alpha, k)
    # alpha 0.3 flattens: German's share drops from ~0.8 to under 0.5
    assert expect["de"] > 0.75
    plan = _plan(workspace, corpora=["ui"], mix_by="lang", mix_alpha=0.3)
    assert plan.groups["de"].target_fraction < 0.5
    assert plan.groups["fr"].factor > 1 and plan.groups["de"].factor < 1


def test_languages_filter_and_missing_language(workspace):
    fx.gettext_snapshot(workspace, langs=("de", "fr"))
    plan = _plan(workspace, corpora=["ui"], languages=["fr"])
    texts = [t for b in data.stream(plan) for t in b]
    assert texts and plan.excluded_lang_docs > 1000
    fr = {d["text"] for d in _docs(workspace, "ui") if d["lang"] == "fr"}
    assert set(texts) <= fr
    with pytest.raises(BadInputError, match="languages: no training text in \\['pt'\\]"):
        _plan(workspace, corpora=["ui"], languages=["pt"])


def test_inputs_by_path_parquet_and_text(tmp_path, workspace):
    paras = [r["text"] for r in fx.legal_records(names=("MPL-2.0",))]
    pq.write_table(pa.table({"text": paras}), tmp_path / "plain.parquet")
    plan = _plan(workspace, corpora=[str(tmp_path / "plain.parquet")], holdout_fraction=0.0)
    assert [t for b in data.stream(plan) for t in b] == paras
    (tmp_path / "txt").mkdir()
    for i, p in enumerate(paras[:5]):
        (tmp_path / "txt" / f"{i}.txt").write_text(p)
    plan = _plan(workspace, corpora=[str(tmp_path / "txt")], holdout_fraction=0.0)
    assert sorted(t for b in data.stream(plan) for t in b) == sorted(paras[:5])
    pq.write_table(pa.table({"body": paras}), tmp_path / "bad.parquet")
    with pytest.raises(BadInputError, match="no 'text' column"):
        _plan(workspace, corpora=[str(tmp_path / "bad.parquet")])


def test_missing_and_empty_snapshots(workspace):
    with pytest.raises(BadInputError, match="no snapshots"):
        _plan(workspace, corpora=["nothing"])
    from tokenfoundry.tasks.train.snapshots import write_snapshot

    write_snapshot(workspace, "empty", [])
    with pytest.raises(BadInputError, match="empty"):
        _plan(workspace, corpora=["empty"])
