"""The held-out split: a rule on content (not paths), the same in Python and DuckDB, with a
minimum held-out count for small corpora."""

from __future__ import annotations

import duckdb
import xxhash

from tokenfoundry.storage import splits
from tokenfoundry.storage.splits import heldout_sql, heldout_threshold, is_heldout, split_key


def _hashes(n: int, tag: str = "doc") -> list[str]:
    return [xxhash.xxh3_128_hexdigest(f"{tag} {i}".encode()) for i in range(n)]


def test_python_and_duckdb_agree_on_the_heldout_split():
    hashes = _hashes(5000)
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest(?) AS content_hash", [hashes])
    sql_held = {r[0] for r in con.execute(
        f"SELECT content_hash FROM t WHERE {heldout_sql(0.1)}").fetchall()}
    py_held = {h for h in hashes if is_heldout(h, 0.1)}
    assert sql_held == py_held
    assert 400 < len(py_held) < 600  # ~10%
    assert not any(is_heldout(h, 0.0) for h in hashes)
    # with the table expression, the minimum rule is applied too; 5000 docs at 10 %: no change
    with_min = {r[0] for r in con.execute(
        f"SELECT content_hash FROM t WHERE {heldout_sql(0.1, source='t')}").fetchall()}
    assert with_min == py_held


def test_the_split_depends_on_the_text_not_on_the_path():
    # the same text under two paths has one content hash, hence one split; doc ids differ
    text = "Permission is hereby granted, free of charge, to any person obtaining a copy"
    h = xxhash.xxh3_128_hexdigest(text.encode())
    assert is_heldout(h, 0.5) == is_heldout(xxhash.xxh3_128_hexdigest(text.encode()), 0.5)
    assert splits.text_hash(text) == duckdb.connect().execute(
        "SELECT md5(?)", [text]).fetchone()[0]


def test_a_small_corpus_holds_out_its_lowest_keys_instead_of_none():
    hashes = _hashes(60, "licence")  # ~55 licences: 5 % would give 0-6
    keys = [split_key(h) for h in hashes]
    t = heldout_threshold(keys, 0.05)
    held = sorted(k for k in keys if k < t)
    assert len(held) == 12  # min(MIN_HELDOUT_DOCS=100, 60 // 5)
    assert held == sorted(keys)[:12]  # the lowest keys
    # Python and DuckDB agree on the threshold and therefore on the documents
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest(?) AS content_hash", [hashes])
    sql_t = con.execute(f"SELECT {splits.threshold_sql('t', 0.05)}").fetchone()[0]
    assert sql_t == t
    n = con.execute(f"SELECT count(*) FROM t WHERE {heldout_sql(0.05, source='t')}").fetchone()[0]
    assert n == 12
    # a big corpus keeps the fraction; a fraction of 0 holds out nothing; 3 docs: none
    big = [split_key(h) for h in _hashes(10_000)]
    assert heldout_threshold(big, 0.05) == splits.fraction_threshold(0.05)
    assert heldout_threshold(keys, 0.0) == 0
    assert heldout_threshold(keys[:3], 0.05) <= splits.fraction_threshold(0.05) or \
        sum(k < heldout_threshold(keys[:3], 0.05) for k in keys[:3]) == 0
    assert con.execute(f"SELECT count(*) FROM t WHERE {heldout_sql(0.0, source='t')}"
                       ).fetchone()[0] == 0
