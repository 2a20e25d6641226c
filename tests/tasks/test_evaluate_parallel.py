"""Parallel segments from real gettext catalogs."""

from __future__ import annotations

import gettext
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.tasks.evaluate.parallel import (
    build_parallel_from_mo,
    read_parallel,
    seg_id_of,
    write_parallel,
)

LOCALE = Path("/usr/share/locale")


def _has(lang: str, domain: str) -> bool:
    return (LOCALE / lang / "LC_MESSAGES" / f"{domain}.mo").is_file()


@pytest.mark.skipif(not (_has("de", "iso_639") and _has("fr", "iso_639")),
                    reason="needs iso-codes gettext catalogs")
def test_build_from_mo_aligns_by_msgid(tmp_path):
    table = build_parallel_from_mo(LOCALE, langs=["de", "fr", "en"], domains=["iso_639"])
    rows = table.to_pylist()
    by = {}
    for r in rows:
        by.setdefault(r["seg_id"], {})[r["lang"]] = r["text"]
    # the English side is the msgid, and each translation is what gettext returns for it
    cat = gettext.GNUTranslations(open(LOCALE / "de" / "LC_MESSAGES" / "iso_639.mo", "rb"))
    checked = 0
    for sid, langs in by.items():
        if "de" in langs:
            assert "en" in langs
            assert seg_id_of(langs["en"]) == sid
            assert cat.gettext(langs["en"]) == langs["de"]
            checked += 1
    assert checked > 100
    assert {r["lang"] for r in rows} == {"de", "fr", "en"}
    # one row per (segment, language): the pivot comes from the msgids only, even where a
    # locale directory named like the pivot ("en") exists
    pairs = [(r["seg_id"], r["lang"]) for r in rows]
    assert len(pairs) == len(set(pairs))
    p = write_parallel(table, tmp_path / "par.parquet")
    seg, lang, text = read_parallel(p)
    assert len(seg) == table.num_rows and pq.read_table(p).column_names[:3] == ["seg_id", "lang",
                                                                                 "text"]


def test_read_parallel_errors(tmp_path):
    import pyarrow as pa

    with pytest.raises(BadInputError, match="no such file"):
        read_parallel(tmp_path / "missing.parquet")
    pq.write_table(pa.table({"seg_id": ["1"], "text": ["x"]}), tmp_path / "a.parquet")
    with pytest.raises(BadInputError, match=r"missing column\(s\) \['lang'\]"):
        read_parallel(tmp_path / "a.parquet")
    pq.write_table(pa.table({"seg_id": ["1"], "lang": ["de"], "text": ["x"]}), tmp_path / "b.parquet")
    with pytest.raises(BadInputError, match="pivot language 'en'"):
        read_parallel(tmp_path / "b.parquet")
    with pytest.raises(BadInputError, match="no such locale directory"):
        build_parallel_from_mo(tmp_path / "nope")
