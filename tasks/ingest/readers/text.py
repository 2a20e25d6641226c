"""txt/md (and any file whose name has no known ending but whose bytes are text).

One record per file (location ``file``), or with ``split_paragraphs`` one per blank-line
separated paragraph (location ``line:N`` of its first line). A file or paragraph with more bytes
than :func:`~.base.text_limit` is a ``too_long`` reject, read to its end without being held.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from tokenfoundry.tasks.ingest.readers.base import Reader, decode_utf8, read_lines, text_limit

_BLANK = re.compile(rb"^[ \t\r\f\v]*$")


class TextReader(Reader):
    """Plain text: a whole file, or its paragraphs."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.lineno = 0

    def position(self) -> tuple[str, str]:
        if not self.spec.split_paragraphs:
            return "file", ""
        return f"line:{self.lineno + 1}", f" after line {self.lineno}"

    def records(self, fh: io.BufferedReader) -> Iterator[None]:
        if self.spec.split_paragraphs:
            yield from self._paragraphs(fh)
            return
        limit = text_limit(self.spec)
        data = fh.read(limit + 1)
        if len(data) > limit:
            excerpt = data[:800]
            del data
            while fh.read(1 << 20):  # to the end: a cut stream after this is still a fault
                pass
            self.batch.reject("file", "too_long",
                              f"more than {limit} bytes (max_chars {self.spec.max_chars})",
                              excerpt)
            return
        self._add("file", data)

    def _add(self, loc: str, data: bytes) -> None:
        text, repaired, detail = decode_utf8(data, self.spec.utf8)
        if text is None:
            self.batch.reject(loc, "invalid_utf8", detail, data)
        else:
            self.batch.add(loc, text, None, None, None, ["utf8_repaired"] if repaired else None)

    def _paragraphs(self, fh: io.BufferedReader) -> Iterator[None]:
        limit = text_limit(self.spec)
        lines: list[bytes] = []
        size = 0
        start = 0
        too_long = False
        excerpt = b""
        rows = self.spec.batch_rows
        for line in read_lines(fh, limit):
            self.lineno += 1
            if not isinstance(line, int) and _BLANK.match(line.rstrip(b"\n")):
                if too_long:
                    self.batch.reject(f"line:{start}", "too_long",
                                      f"a paragraph of more than {limit} bytes (max_chars "
                                      f"{self.spec.max_chars})", excerpt)
                elif lines:
                    self._add(f"line:{start}", b"".join(lines).rstrip(b"\r\n"))
                lines, size, too_long = [], 0, False
                if self.batch.full(rows):
                    yield
                continue
            if not lines and not too_long:
                start = self.lineno
                excerpt = b"" if isinstance(line, int) else line[:800]
            if too_long:
                continue
            if isinstance(line, int) or size + len(line) > limit:
                too_long, lines = True, []
                continue
            lines.append(line)
            size += len(line)
        if too_long:
            self.batch.reject(f"line:{start}", "too_long",
                              f"a paragraph of more than {limit} bytes (max_chars "
                              f"{self.spec.max_chars})", excerpt)
        elif lines:
            self._add(f"line:{start}", b"".join(lines).rstrip(b"\r\n"))
