"""CSV (header row; ``text_field`` names the text column, ``id``/``lang`` columns optional).

The stdlib ``csv`` parser reads lines that :func:`~.base.read_lines` has bounded: a physical
line longer than :func:`~.base.line_limit` bytes is a ``too_long`` reject (skipped to its end;
the parser starts afresh on the next line), and a field longer than :func:`~.base.text_limit`
characters (a quoted field over many lines) is a ``too_long`` reject through
``csv.field_size_limit``. Locations are ``line:N``, the last physical line of the row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from tokenfoundry.tasks.ingest.readers.base import (
    Reader,
    line_limit,
    read_lines,
    text_limit,
    unescape_surrogates,
)


class _TooLong(Exception):
    """A physical line over the limit (its length in bytes)."""


class _Lines:
    """The csv parser's input: bounded lines decoded with ``surrogateescape``, counted."""

    def __init__(self, fh: io.BufferedReader, limit: int):
        self.it = read_lines(fh, limit)
        self.lineno = 0
        self.quotes = 0  # '"' characters since the last complete row (odd: inside a field)

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.it)
        self.lineno += 1
        if isinstance(line, int):
            raise _TooLong(line)
        self.quotes += line.count(b'"')
        return line.decode("utf-8", errors="surrogateescape")

    def skip_field(self) -> None:
        """After a too-long quoted field: drop lines up to the one that closes it."""
        try:
            while self.quotes % 2:
                next(self)
        except (StopIteration, _TooLong):
            pass
        self.quotes = 0


class CsvReader(Reader):
    """Rows of a CSV file with a header."""

    lines: _Lines | None = None

    def position(self) -> tuple[str, str]:
        n = self.lines.lineno if self.lines is not None else 0
        return f"line:{n + 1}", f" after line {n}"

    def records(self, fh: io.BufferedReader) -> Iterator[None]:
        spec, batch_rows = self.spec, self.spec.batch_rows
        policy = spec.utf8
        limit, field_limit = line_limit(spec), text_limit(spec)
        csv.field_size_limit(field_limit)
        lines = self.lines = _Lines(fh, limit)
        reader = csv.reader(lines)

        def too_long(loc: str, what: str) -> None:
            self.batch.reject(loc, "too_long", f"{what} (max_chars {spec.max_chars})", "")

        try:
            header = next(reader, None)
        except _TooLong as e:
            too_long("line:1", f"a header line of {e.args[0]} bytes, more than {limit}")
            return
        if header is None:
            return
        header = [h.strip() for h in header]
        if spec.text_field not in header:
            self.batch.reject("line:1", "missing_field",
                              f"no column {spec.text_field!r} (columns: {', '.join(header[:12])}); "
                              "pass --text-field", ",".join(header))
            return
        ti = header.index(spec.text_field)
        idf = spec.id_field or ("id" if "id" in header else None)
        ii = header.index(idf) if idf in header else None
        lf = spec.lang_field or "lang"
        li = header.index(lf) if lf in header else None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except _TooLong as e:
                too_long(f"line:{lines.lineno}", f"a line of {e.args[0]} bytes, more than {limit}")
                lines.quotes = 0
                continue
            except csv.Error as e:
                if "field larger than field limit" in str(e):
                    too_long(f"line:{lines.lineno}", f"a field of more than {field_limit} "
                             "characters")
                    lines.skip_field()
                else:
                    self.batch.reject(f"line:{lines.lineno}", "bad_csv", str(e), "")
                continue
            loc = f"line:{lines.lineno}"
            lines.quotes = 0
            if not row:
                continue
            if len(row) <= ti:
                self.batch.reject(loc, "bad_csv", f"{len(row)} fields, header has {len(header)}",
                                  ",".join(row))
                continue
            text, repaired, detail = unescape_surrogates(row[ti], policy)
            if text is None:
                self.batch.reject(loc, "invalid_utf8", detail, row[ti])
                continue
            sid = row[ii] if ii is not None and ii < len(row) else None
            lg = row[li] if li is not None and li < len(row) and row[li] else None
            self.batch.add(loc, text, sid, lg, None, ["utf8_repaired"] if repaired else None)
            if self.batch.full(batch_rows):
                yield
