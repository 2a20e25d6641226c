from __future__ import annotations

import duckdb

from tokenfoundry.storage.splits import heldout_sql, is_heldout


def test_python_and_duckdb_agree_on_the_heldout_split():
    ids = [f"doc-{i}" for i in range(5000)]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest(?) AS doc_id", [ids])
    sql_held = {r[0] for r in con.execute(f"SELECT doc_id FROM t WHERE {heldout_sql(0.1)}").fetchall()}
    py_held = {d for d in ids if is_heldout(d, 0.1)}
    assert sql_held == py_held
    assert 400 < len(py_held) < 600  # ~10%
    assert not any(is_heldout(d, 0.0) for d in ids)
