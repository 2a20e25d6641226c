"""JSONL (``.jsonl``/``.ndjson``, plain, gzip or zstd): one record per line, one path.

Each line is decoded (strict UTF-8, or repaired under ``utf8: repair``) and parsed by the
stdlib's ``json``, whose C scanner raises ``RecursionError`` on deep nesting: a hostile line is
a ``bad_json`` reject and never reaches a parser that can crash the process (pyarrow's JSON
reader segfaults on an object nested 20,000 ``[`` deep, orjson on 1,000,000). A line longer than
:func:`~.base.line_limit` bytes is a ``too_long`` reject, skipped to its end unparsed.
Large uncompressed files are cut into line-aligned units (``unit.start``/``unit.end``) that
are read independently; line numbers continue from ``unit.first_line``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from tokenfoundry.tasks.ingest.readers.base import Reader, decode_utf8, line_limit, read_lines


class JsonlReader(Reader):
    """JSON objects, one per line; ``text_field`` is the text, ``id``/``lang`` keys optional."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.lineno = self.unit.first_line - 1
        spec = self.spec
        self.policy, self.tf = spec.utf8, spec.text_field
        self.id_key = spec.id_field or "id"
        self.lang_key = spec.lang_field or "lang"

    def position(self) -> tuple[str, str]:
        return f"line:{self.lineno + 1}", f" after line {self.lineno}"

    def records(self, fh: io.BufferedReader) -> Iterator[None]:
        limit = line_limit(self.spec)
        left = None if self.unit.end is None else self.unit.end - self.unit.start
        rows = self.spec.batch_rows
        for line in read_lines(fh, limit):
            self.lineno += 1
            if isinstance(line, int):
                self.batch.reject(f"line:{self.lineno}", "too_long",
                                  f"a line of {line} bytes, more than {limit} (max_chars "
                                  f"{self.spec.max_chars}); skipped unparsed", "")
                n = line
            else:
                self.line(line)
                n = len(line)
            if left is not None:
                left -= n
            if self.batch.full(rows):
                yield
            if left is not None and left <= 0:
                return

    def line(self, line: bytes) -> None:
        if not line.strip():
            return
        loc = f"line:{self.lineno}"
        batch = self.batch
        text, repaired, detail = decode_utf8(line, self.policy)
        if text is None:
            batch.reject(loc, "invalid_utf8", detail, line)
            return
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            batch.reject(loc, "bad_json", str(e), line)
            return
        except RecursionError:
            batch.reject(loc, "bad_json", "nested deeper than the parser's recursion limit", line)
            return
        flags = ["utf8_repaired"] if repaired else None
        if type(obj) is not dict:
            batch.reject(loc, "bad_json", f"a JSON {type(obj).__name__}, not an object", line)
            return
        t = obj.get(self.tf)
        if type(t) is str:
            sid = obj.get(self.id_key)
            lg = obj.get(self.lang_key)
            batch.add(loc, t, None if sid is None else str(sid),
                      lg if type(lg) is str and lg else None, None, flags)
        elif t is None:
            batch.reject(loc, "missing_field",
                         f"no {self.tf!r} key (keys: {', '.join(list(obj)[:8])})", line)
        else:
            batch.reject(loc, "wrong_type", f"{self.tf!r} is a {type(t).__name__}, not a string",
                         line)
