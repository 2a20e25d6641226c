"""The dedup core on small real text: licence paragraphs with realistic edits."""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash

from tokenfoundry.schemas.config import validate_spec
from tokenfoundry.schemas.dedup import DedupSpec
from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.tables import CORPUS_SCHEMA
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.dedup.core import dedup
from tokenfoundry.tasks.dedup.minhash import jaccard, shingle_set


def make_snapshot(ws: Workspace, corpus: str, texts: list[str | None], sid: str = "ing-1",
                  source: str = "/usr/share/common-licenses", refs=("ingest", "latest"),
                  schema: pa.Schema = CORPUS_SCHEMA) -> list[str]:
    """An ingest-stage snapshot of ``texts`` (doc ids returned in row order)."""
    rows = []
    for i, t in enumerate(texts):
        body = t or ""
        rows.append(dict(
            doc_id=xxhash.xxh3_128_hexdigest(f"{corpus}/{source}/{i}".encode()), corpus=corpus,
            source=source, source_id=None, location=f"para:{i:05d}", lang="en", lang_score=None,
            align_key=None, text=body, n_bytes=len(body.encode()), n_chars=len(body),
            content_hash=xxhash.xxh3_128_hexdigest(body.encode()), flags=[]))
    table = pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA).select(schema.names)
    with ws.writer(corpus, sid, schema=schema, stage="ingest") as w:
        w.write(table)
        w.commit(counts={"read": len(rows), "kept": len(rows), "rejected": 0})
    for r in refs:
        ws.set_ref(corpus, r, sid)
    return [r["doc_id"] for r in rows]


def distinct_paragraphs(licence_dir: Path, n: int, min_words: int = 50) -> list[str]:
    """n licence paragraphs that are pairwise dissimilar (word 5-gram Jaccard < 0.2)."""
    out, sets = [], []
    for name in sorted(p.name for p in licence_dir.iterdir() if p.is_file()):
        for para in (licence_dir / name).read_text(errors="replace").split("\n\n"):
            if len(para.split()) < min_words:
                continue
            s = shingle_set(para)
            if all(jaccard(s, o) < 0.2 for o in sets):
                out.append(para)
                sets.append(s)
                if len(out) == n:
                    return out
    pytest.skip(f"needs {n} distinct licence paragraphs")


def typo_edit(text: str, k: int = 1, near_end: bool = False) -> str:
    """k word-level edits a copy-editor makes: a typo, a changed word, a dropped word.

    ``near_end``: the edits fall on the last words (fewer shingles change: Jaccard >= 0.9, where
    LSH misses a pair with probability < 0.001, so exact counts can be asserted).
    """
    w = text.split()
    for j in range(k):
        i = len(w) - 2 - j if near_end else (7 * j + 3) % len(w)
        if j % 3 == 0:
            w[i] = w[i][:2] + w[i][1:] if len(w[i]) > 2 else w[i] + "s"  # doubled letter
        elif j % 3 == 1:
            w[i] = "Licensee" if w[i] != "Licensee" else "Licensor"
        else:
            del w[i]
    return " ".join(w)


def rewrite(text: str) -> str:
    """A heavy rewrite: every third word replaced (Jaccard well below 0.5)."""
    return " ".join(("shall" if i % 3 == 1 else x) for i, x in enumerate(text.split()))


def read_clusters(ws: Workspace, result) -> dict[str, str]:
    t = pq.read_table(result.clusters_path)
    return dict(zip(t.column("doc_id").to_pylist(), t.column("cluster_id").to_pylist()))


def kept_ids(result) -> list[str]:
    return pq.read_table(result.dataset_path, columns=["doc_id"]).column("doc_id").to_pylist()


@pytest.fixture(scope="module")
def paras(licence_dir):
    return distinct_paragraphs(licence_dir, 40)


def test_exact_and_near_duplicates_on_licence_paragraphs(workspace, paras):
    base = paras[:30]
    copies = base[:5]  # verbatim copies
    near = [typo_edit(p, 1, near_end=True) for p in base[5:10]]  # Jaccard ~0.9 to their source
    far = [rewrite(p) for p in base[10:13]]  # same topic, heavily rewritten: not duplicates
    reflowed = [base[13].replace(" ", "\n", 5).upper()]  # same words, other case/line breaks
    texts = base + copies + near + far + reflowed
    ids = make_snapshot(workspace, "legal", texts)
    for i, p in enumerate(near):
        assert 0.9 <= jaccard(shingle_set(base[5 + i]), shingle_set(p)) < 0.98
    for i, p in enumerate(far):
        assert jaccard(shingle_set(base[10 + i]), shingle_set(p)) < 0.3

    r = dedup(workspace, DedupSpec(corpus="legal"))
    assert (r.input, r.exact_duplicates, r.near_duplicates, r.kept) == (44, 5, 6, 33)
    assert r.input == r.kept + r.exact_duplicates + r.near_duplicates
    kept = kept_ids(r)
    assert kept == ids[:30] + ids[40:43]  # originals ranked first (location order) are kept
    clusters = read_clusters(workspace, r)
    assert set(clusters) == set(ids)  # every input doc, once
    for i in range(5):
        assert clusters[ids[30 + i]] == ids[i]  # exact copy -> its original
        assert clusters[ids[35 + i]] == ids[5 + i]  # near copy -> its original
    assert clusters[ids[43]] == ids[13]
    assert all(clusters[d] == d for d in kept)
    assert r.clusters == 11
    snap = workspace.snapshot("legal", r.snapshot_id)
    assert snap.manifest.parent == "ing-1" and snap.manifest.stage == "dedup"
    assert workspace.get_ref("legal", "dedup") == r.snapshot_id
    assert workspace.get_ref("legal", "latest") == r.snapshot_id
    report = Path(r.report_path).read_text()
    assert "| near_duplicates | 6 |" in report and "| 2 | 11 |" in report
    ex = snap.manifest.stats["examples"]
    assert ex and all(abs(e["estimated_jaccard"] - e["jaccard"]) < 0.15 for e in ex)


@pytest.mark.parametrize("verify", ["jaccard", "estimate"])
def test_small_labelled_set_precision_and_recall(workspace, paras, verify):
    texts = list(paras)
    texts += [typo_edit(p, 1) for p in paras[:14]]  # one edit: Jaccard 0.84-0.95, duplicates
    texts += [typo_edit(p, 5) for p in paras[14:20]]  # five edits: Jaccard 0.33-0.73, not
    texts += [rewrite(p) for p in paras[20:24]]  # heavy rewrites: not duplicates
    for p in paras[24:28]:
        half = p.split()
        texts.append(" ".join(half[: len(half) // 2]))  # the first half only: J ~0.45
    ids = make_snapshot(workspace, "lab", texts)
    sets = [shingle_set(t) for t in texts]
    truth = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2)
             if jaccard(sets[i], sets[j]) >= 0.8}
    assert len(truth) == 14
    r = dedup(workspace, DedupSpec(corpus="lab", threshold=0.8, verify=verify))
    clusters = read_clusters(workspace, r)
    pred = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2)
            if clusters[ids[i]] == clusters[ids[j]]}
    tp = len(pred & truth)
    assert tp / len(pred) >= 0.95 and tp / len(truth) >= 0.9


def test_rerun_and_sharding_give_the_same_snapshot(tmp_path, paras):
    texts = paras[:20] + [typo_edit(p, 1, near_end=True) for p in paras[:8]] + paras[:4]
    results = []
    for n, (shard_rows, workers) in enumerate([(65_536, 1), (5, 1), (7, 2)]):
        ws = Workspace(tmp_path / f"ws{n}")
        make_snapshot(ws, "legal", texts)
        r = dedup(ws, DedupSpec(corpus="legal"), shard_rows=shard_rows, workers=workers)
        results.append((r.snapshot_id, read_clusters(ws, r), kept_ids(r),
                        ws.snapshot("legal", r.snapshot_id).manifest.counts))
        again = dedup(ws, DedupSpec(corpus="legal", snapshot="ing-1"))
        assert again.reused and again.snapshot_id == r.snapshot_id
    assert results[0] == results[1] == results[2]
    assert results[0][3]["near_duplicates"] == 8 and results[0][3]["exact_duplicates"] == 4


def test_shards_spanning_many_ingest_parts_give_the_same_snapshot(tmp_path):
    """Ingest writes one part per source file; a shard packs many of them (or cuts one)."""
    from tokenfoundry.schemas.ingest import IngestSpec
    from tokenfoundry.tasks.ingest.core import ingest

    if not Path("/usr/share/common-licenses").is_dir():
        pytest.skip("needs /usr/share/common-licenses")
    results = []
    for n, shard_rows in enumerate([65_536, 37, 5000]):
        ws = Workspace(tmp_path / f"ws{n}")
        ing = ingest(ws, IngestSpec(corpus="lic", sources=["/usr/share/common-licenses"],
                                    split_paragraphs=True, min_chars=40, lang="en"))
        files = ws.snapshot("lic", ing.snapshot_id).manifest.files
        assert len(files) >= 8  # many parts
        r = dedup(ws, DedupSpec(corpus="lic"), shard_rows=shard_rows)
        results.append((r.snapshot_id, read_clusters(ws, r), kept_ids(r),
                        ws.snapshot("lic", r.snapshot_id).manifest.counts))
    assert results[0] == results[1] == results[2]
    assert results[0][3]["near_duplicates"] + results[0][3]["exact_duplicates"] > 0


def test_spec_changes_the_snapshot_id(workspace, paras):
    make_snapshot(workspace, "legal", paras[:10])
    a = dedup(workspace, DedupSpec(corpus="legal"))
    b = dedup(workspace, DedupSpec(corpus="legal", threshold=0.7))
    assert a.snapshot_id != b.snapshot_id and not b.reused


def test_incremental_run_keeps_only_what_is_new(workspace, paras):
    make_snapshot(workspace, "nightly", paras[:20], sid="ing-day1")
    day1 = dedup(workspace, DedupSpec(corpus="nightly", incremental=True))
    assert (day1.kept, day1.exact_duplicates) == (20, 0)
    # day 2: yesterday's documents again (one re-exported under another path) plus 6 new
    texts = paras[:20] + paras[:1] + paras[20:26]
    make_snapshot(workspace, "nightly", texts, sid="ing-day2", source="/mirror/licences")
    day2 = dedup(workspace, DedupSpec(corpus="nightly", incremental=True))
    assert (day2.input, day2.kept, day2.exact_duplicates, day2.near_duplicates) == (27, 6, 21, 0)
    kept_text = pq.read_table(day2.dataset_path, columns=["text"]).column("text").to_pylist()
    assert sorted(kept_text) == sorted(paras[20:26])
    clusters = read_clusters(workspace, day2)
    day1_ids = set(kept_ids(day1))
    assert sum(c in day1_ids for c in clusters.values()) == 21  # duplicates point at day 1 docs
    # explicit --against and a non-incremental run give other snapshots
    full = dedup(workspace, DedupSpec(corpus="nightly"))
    assert full.kept == 26 and full.snapshot_id != day2.snapshot_id
    explicit = dedup(workspace, DedupSpec(corpus="nightly", incremental=True,
                                          against=[day1.snapshot_id]))
    assert explicit.kept == 6
    with pytest.raises(BadInputError, match="no snapshot 'nope'"):
        dedup(workspace, DedupSpec(corpus="nightly", incremental=True, against=["nope"]))


def test_short_empty_and_null_rows_follow_the_documented_rules(workspace, paras):
    texts = [paras[0], "See the COPYING file.", "see the copying file", "MIT", "", "   ", None,
             "-- * --", paras[1]]
    ids = make_snapshot(workspace, "odd", texts)
    r = dedup(workspace, DedupSpec(corpus="odd"))
    # "" and None both have the empty text's hash (exact); "   " and "-- * --" have no words and
    # never take part in near-dup; the two spellings of "see the copying file" are one shingle.
    assert (r.input, r.exact_duplicates, r.near_duplicates, r.kept) == (9, 1, 1, 7)
    kept = kept_ids(r)
    assert ids[2] not in kept and ids[6] not in kept and ids[3] in kept and ids[5] in kept


def test_boilerplate_lines_are_removed(workspace, paras):
    header = "Copyright (C) 2024 Example Corp. All rights reserved."
    footer = "SPDX-License-Identifier: Apache-2.0"
    texts = [f"{header}\n{p}\n{footer}" for p in paras[:6]] + [f"{header}\n{footer}", paras[6]]
    make_snapshot(workspace, "bp", texts)
    r = dedup(workspace, DedupSpec(corpus="bp", boilerplate_min_docs=3))
    assert (r.boilerplate_lines, r.boilerplate_only, r.kept) == (2, 1, 7)
    assert r.input == r.kept + r.exact_duplicates + r.near_duplicates + r.boilerplate_only
    t = pq.read_table(r.dataset_path).to_pylist()
    assert [x["text"] for x in t[:6]] == paras[:6]
    assert t[0]["flags"] == ["boilerplate_removed"] and t[6]["flags"] == []
    assert t[0]["n_chars"] == len(paras[0])
    assert t[0]["content_hash"] == xxhash.xxh3_128_hexdigest(paras[0].encode())


def test_bad_input_is_a_clear_error(workspace, paras):
    with pytest.raises(BadInputError, match="tokenfoundry ingest --corpus none"):
        dedup(workspace, DedupSpec(corpus="none"))
    make_snapshot(workspace, "empty", [])
    with pytest.raises(BadInputError, match="empty"):
        dedup(workspace, DedupSpec(corpus="empty"))
    make_snapshot(workspace, "legal", paras[:3])
    with pytest.raises(BadInputError, match="no snapshot 'missing'"):
        dedup(workspace, DedupSpec(corpus="legal", snapshot="missing"))
    schema = pa.schema([f for f in CORPUS_SCHEMA if f.name != "content_hash"])
    make_snapshot(workspace, "nohash", paras[:3], schema=schema)
    with pytest.raises(BadInputError, match="missing column.*content_hash"):
        dedup(workspace, DedupSpec(corpus="nohash"))
    for bad, msg in [({"corpus": "x", "bands": 10}, "give both bands and rows"),
                     ({"corpus": "x", "bands": 20, "rows": 10}, "exceeds num_perm"),
                     ({"corpus": "x", "threshold": 1.5}, "threshold"),
                     ({"corpus": "x", "shingle": 3}, "unknown key")]:
        with pytest.raises(BadInputError, match=msg):
            validate_spec(DedupSpec, bad, "dedup")
    assert workspace.list_snapshots("none") == []


def test_fsspec_workspace_gives_the_same_result(tmp_path, paras):
    texts = paras[:12] + paras[:3] + [typo_edit(p, 1, near_end=True) for p in paras[3:6]]
    local, remote = Workspace(tmp_path / "ws"), Workspace(f"memory://dedup-test-{tmp_path.name}")
    for ws in (local, remote):
        make_snapshot(ws, "legal", texts)
    a, b = dedup(local, DedupSpec(corpus="legal")), dedup(remote, DedupSpec(corpus="legal"))
    assert b.dataset_path.startswith("memory://") and a.snapshot_id == b.snapshot_id
    assert (b.exact_duplicates, b.near_duplicates, b.kept) == (a.exact_duplicates,
                                                               a.near_duplicates, a.kept) == (3, 3, 12)
    assert remote.snapshot("legal", b.snapshot_id).dataset("clusters").to_table().num_rows == 18
