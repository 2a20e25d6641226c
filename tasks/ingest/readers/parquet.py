"""Parquet: ``text_field`` (string or binary) per row, ``id``/``lang`` columns optional.

A file pyarrow cannot open is one ``corrupt_file`` reject; a page or row group that breaks
mid-file is a ``truncated`` reject at the first row not read (rows before it are kept).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from tokenfoundry.tasks.ingest.readers.base import Reader, decode_utf8, describe, open_raw


class ParquetReader(Reader):
    """Rows of a Parquet file, in batches of ``batch_rows``."""

    sniffs_text = False

    def open(self) -> io.BufferedReader:
        self.raw = open_raw(self.unit.path)
        return self.raw  # type: ignore[return-value]

    def done(self) -> int:
        return self._done

    _done = 0

    def records(self, fh: io.BufferedReader) -> Iterator[None]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        spec, unit = self.spec, self.unit
        try:
            pf = pq.ParquetFile(fh)
            schema = pf.schema_arrow
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
            self.batch.reject("file", "corrupt_file", f"not a readable Parquet file: {describe(e)}")
            return
        names = schema.names
        tf = spec.text_field
        if tf not in names:
            self.batch.reject("file", "missing_field", f"no column {tf!r} (columns: "
                              f"{', '.join(names[:12])}); pass --text-field")
            return
        ttype = schema.field(tf).type
        is_text = pa.types.is_string(ttype) or pa.types.is_large_string(ttype) or \
            getattr(pa.types, "is_string_view", lambda t: False)(ttype)
        is_bin = pa.types.is_binary(ttype) or pa.types.is_large_binary(ttype)
        if not (is_text or is_bin):
            self.batch.reject("file", "wrong_type", f"column {tf!r} is {ttype}, not a string")
            return
        idf = spec.id_field or ("id" if "id" in names else None)
        lf = spec.lang_field or ("lang" if "lang" in names else None)
        cols = [tf] + [c for c in (idf, lf) if c in names]
        total_rows = pf.metadata.num_rows or 1
        row = 0
        batches = pf.iter_batches(batch_size=spec.batch_rows, columns=cols)
        while True:
            try:
                rb = next(batches)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - a broken page/row group mid-file
                self.batch.reject(f"row:{row + 1}", "truncated",
                                  f"Parquet data breaks after row {row}: {describe(e)}")
                return
            texts = rb.column(tf).to_pylist()
            sids = rb.column(idf).to_pylist() if idf in rb.schema.names else None
            langs = rb.column(lf).to_pylist() if lf in rb.schema.names else None
            for j, t in enumerate(texts):
                row += 1
                loc = f"row:{row}"
                flags = None
                if t is None:
                    self.batch.reject(loc, "missing_field", f"{tf!r} is null")
                    continue
                if is_bin:
                    t2, repaired, detail = decode_utf8(t, spec.utf8)
                    if t2 is None:
                        self.batch.reject(loc, "invalid_utf8", detail, t)
                        continue
                    t = t2
                    flags = ["utf8_repaired"] if repaired else None
                sid = sids[j] if sids is not None else None
                lg = langs[j] if langs is not None else None
                self.batch.add(loc, t, None if sid is None else str(sid),
                               lg if isinstance(lg, str) and lg else None, None, flags)
            self._done = int(unit.size * row / total_rows)
            yield
