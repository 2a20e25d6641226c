"""The reader base: open a unit, sniff it, iterate its records, turn every fault into a reject.

Each format (:mod:`.text`, :mod:`.jsonl`, :mod:`.csv`, :mod:`.parquet`, :mod:`.gettext`) is a
:class:`Reader` subclass that only writes :meth:`Reader.records`; what every format needs is
written here once (as datatrove's ``readers/base.py`` does):

- *sniff*: a text file starting with a UTF-16/UTF-32 byte-order mark is transcoded to UTF-8
  (:func:`sniff`); NUL bytes in the first 8 KiB make the file one ``binary`` reject, naming
  UTF-16 without a BOM (and the ``iconv`` fix) when the NULs say so;
- *truncated stream*: a cut gzip/zstd stream or an I/O error mid-file is one ``truncated``
  reject at the place of the fault; the records before it are kept;
- *bounded reading*: :func:`read_lines` never holds more than ``limit`` bytes of one line; a
  longer line is read to its end in 1 MiB pieces and becomes a ``too_long`` reject. Limits
  come from ``max_chars``: :func:`text_limit` (raw text, 4 UTF-8 bytes per character) and
  :func:`line_limit` (quoted/escaped records: 12 bytes per character, as ``\\uXXXX`` pairs, plus
  1 MiB for the other fields). A reader's memory is therefore a few times ``line_limit`` plus
  one batch, whatever the input holds (13 MB lines for the default max_chars 1,000,000).

Readers yield ``(Records, bytes_done)``: a batch of records and rejects, and how far into the
unit they got (compressed bytes for compressed streams), for progress.
"""

from __future__ import annotations

import codecs
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import zstandard

from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit

SNIFF = 8192
_CHUNK = 4 * 1024 * 1024
_PIECE = 1 << 20
_ZSTD_IN = 128 * 1024
_ZSTD_OUT = 1024 * 1024
_BATCH_TEXT_BYTES = 32 * 1024 * 1024
EXCERPT_CHARS = 200


@dataclass
class Records:
    """A batch of decoded records (parallel lists) plus the rejects met while reading them."""

    location: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    source_id: list[str | None] = field(default_factory=list)
    lang: list[str | None] = field(default_factory=list)
    align_key: list[str | None] = field(default_factory=list)
    flags: list[list[str] | None] = field(default_factory=list)
    rejects: list[tuple[str, str, str, str]] = field(default_factory=list)  # loc, reason, detail, excerpt
    text_bytes: int = 0

    def add(self, location: str, text: str, source_id: str | None = None, lang: str | None = None,
            align_key: str | None = None, flags: list[str] | None = None) -> None:
        self.location.append(location)
        self.text.append(text)
        self.source_id.append(source_id)
        self.lang.append(lang)
        self.align_key.append(align_key)
        self.flags.append(flags)
        self.text_bytes += len(text)

    def reject(self, location: str, reason: str, detail: str, excerpt: str | bytes = "") -> None:
        self.rejects.append((location, reason, detail, excerpt_of(excerpt)))

    def split(self, rows: int) -> list[Records]:
        """This batch as pieces of at most ``rows`` records (the rejects go with the first)."""
        if len(self.text) <= rows:
            return [self]
        out = []
        for i in range(0, len(self.text), rows):
            j = i + rows
            piece = Records(self.location[i:j], self.text[i:j], self.source_id[i:j],
                            self.lang[i:j], self.align_key[i:j], self.flags[i:j],
                            self.rejects if i == 0 else [])
            piece.text_bytes = sum(map(len, piece.text))
            out.append(piece)
        return out

    @property
    def size(self) -> int:
        return len(self.text) + len(self.rejects)

    def full(self, rows: int) -> bool:
        return len(self.text) >= rows or self.text_bytes >= _BATCH_TEXT_BYTES \
            or len(self.rejects) >= rows


def excerpt_of(x: str | bytes) -> str:
    if isinstance(x, bytes):
        x = x[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    x = x[:EXCERPT_CHARS]
    return x.encode("utf-8", errors="replace").decode("utf-8")  # no lone surrogates


def text_limit(spec: IngestSpec) -> int:
    """Bytes of raw UTF-8 text that can still hold ``max_chars`` characters."""
    return 4 * spec.max_chars


def line_limit(spec: IngestSpec) -> int:
    """Bytes of one quoted/escaped record (a JSONL line, a CSV or .po line) worth parsing."""
    return 12 * spec.max_chars + _PIECE


# ---- decoding ---------------------------------------------------------------------------------

def decode_utf8(data: bytes, policy: str) -> tuple[str | None, bool, str]:
    """Strict UTF-8 decode. Returns (text or None, repaired?, detail of the first bad byte)."""
    try:
        return data.decode("utf-8"), False, ""
    except UnicodeDecodeError as e:
        detail = f"invalid UTF-8 byte 0x{data[e.start]:02x} at offset {e.start}: {e.reason}"
        if policy == "repair":
            return data.decode("utf-8", errors="replace"), True, detail
        return None, False, detail


def unescape_surrogates(text: str, policy: str) -> tuple[str | None, bool, str]:
    """Text decoded with ``surrogateescape``: check/repair it as if decoding strictly."""
    try:
        text.encode("utf-8")
        return text, False, ""
    except UnicodeEncodeError:
        raw = text.encode("utf-8", errors="surrogateescape")
        return decode_utf8(raw, policy)


_BOMS = [(codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be")]


def sniff(head: bytes) -> tuple[str | None, int, str]:
    """(encoding, BOM length, why-not) of a text file from its first bytes.

    A BOM decides (UTF-32 before UTF-16: FF FE 00 00 starts both). Without one, NUL bytes mean
    binary (encoding None), with the reason; NULs on every other byte are named UTF-16.
    """
    for bom, enc in _BOMS:
        if head.startswith(bom):
            return enc, len(bom), ""
    if b"\x00" not in head:
        return "utf-8", 0, ""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    half = len(head) // 2
    if half >= 8 and max(even, odd) > 0.4 * half and min(even, odd) < 0.05 * half:
        enc = "UTF-16LE" if odd > even else "UTF-16BE"
        return None, 0, (f"NUL bytes on every other byte: looks like {enc} text without a "
                         f"byte-order mark; convert it: iconv -f {enc} -t UTF-8 FILE > FILE.txt")
    return None, 0, "NUL bytes in the first 8 KiB: not a text file"


# ---- streams ----------------------------------------------------------------------------------

class TruncatedStream(EOFError):
    """A compressed stream ended before its end-of-stream marker."""


class _ZstdReader(io.RawIOBase):
    """A zstd decompressing reader that notices a cut stream (python-zstandard silently stops)."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._dobj = self._dctx.decompressobj()
        self._buf = b""
        self._eof = False
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf and not self._eof:
            chunk = self._raw.read(_ZSTD_IN)
            if not chunk:
                self._eof = True
                if self._in_frame and not self._dobj.eof:
                    raise TruncatedStream("zstd stream ends before the end of its frame")
                break
            out = []
            while chunk:
                self._in_frame = True
                out.append(self._dobj.decompress(chunk))
                if self._dobj.eof:
                    chunk = self._dobj.unused_data
                    self._dobj = self._dctx.decompressobj()
                    self._in_frame = False
                else:
                    chunk = b""
            self._buf = b"".join(out)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Transcoder(io.RawIOBase):
    """UTF-16/UTF-32 bytes in, UTF-8 bytes out (unpaired surrogates become U+FFFD)."""

    def __init__(self, fh: BinaryIO, encoding: str):
        self._fh = fh
        self._dec = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._buf = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf and not self._eof:
            chunk = self._fh.read(_ZSTD_IN)
            self._eof = not chunk
            self._buf = self._dec.decode(chunk, final=self._eof).encode("utf-8")
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def open_raw(path: str) -> BinaryIO:
    """Open a local path or an fsspec URI for binary reading."""
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def open_stream(unit: IngestUnit) -> tuple[io.BufferedReader, BinaryIO]:
    """(decompressed buffered stream, raw file) for a unit; the raw file's tell() is progress.

    Compressed streams are read in small steps, so the records before a cut in the stream reach
    the caller before the error does.
    """
    raw = open_raw(unit.path)
    if unit.compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]
    if unit.compression == "zstd":
        return io.BufferedReader(_ZstdReader(raw), _ZSTD_OUT), raw
    if unit.start:
        raw.seek(unit.start)
    return io.BufferedReader(raw, _CHUNK), raw  # type: ignore[arg-type]


STREAM_ERRORS = (EOFError, OSError, zstandard.ZstdError, gzip.BadGzipFile, ValueError)


def describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def read_lines(fh: io.BufferedReader, limit: int) -> Iterator[bytes | int]:
    """Physical lines (with their ``\\n``) of at most ``limit`` bytes; a longer line is read to
    its end in 1 MiB pieces, never held, and given as its length (an int)."""
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            n = len(line)
            while line and not line.endswith(b"\n"):
                line = fh.readline(_PIECE)
                n += len(line)
            yield n
            continue
        yield line


# ---- the base ---------------------------------------------------------------------------------

class Reader:
    """Read one unit: ``iter(Reader(unit, spec))`` gives ``(Records, bytes_done)`` pairs.

    Subclasses write :meth:`records` (a generator over the opened stream that adds to
    ``self.batch`` and yields whenever the batch is full) and :meth:`position` (where a fault
    would be, for the ``truncated`` reject).
    """

    #: text formats: sniff BOM/NUL and transcode UTF-16/32
    sniffs_text = True
    #: what the format is, for the binary reject
    what = "a text file"

    def __init__(self, unit: IngestUnit, spec: IngestSpec):
        self.unit, self.spec = unit, spec
        self.batch = Records()
        self.raw: BinaryIO | None = None

    def records(self, fh: io.BufferedReader) -> Iterator[None]:
        raise NotImplementedError

    def position(self) -> tuple[str, str]:
        """(location of the next record, " after ..." for the detail) if the stream broke now."""
        return "file", ""

    def done(self) -> int:
        try:
            return max(0, self.raw.tell() - self.unit.start) if self.raw is not None else 0
        except (OSError, ValueError):
            return 0

    @property
    def end(self) -> int:
        return (self.unit.end if self.unit.end is not None else self.unit.size) - self.unit.start

    def open(self) -> io.BufferedReader:
        fh, self.raw = open_stream(self.unit)
        return fh

    def __iter__(self) -> Iterator[tuple[Records, int]]:
        try:
            fh = first = self.open()
        except OSError as e:
            self.batch.reject("file", "corrupt_file", f"cannot open it: {describe(e)}", "")
            yield self.batch, self.end
            return
        try:
            try:
                if self.sniffs_text and self.unit.start == 0:
                    head = fh.peek(SNIFF)[:SNIFF]
                    enc, bom, why = sniff(head)
                    if enc is None:
                        self.batch.reject("file", "binary", why.replace("a text file", self.what),
                                          head)
                        yield self.batch, self.end
                        return
                    fh.read(bom)
                    if enc != "utf-8":
                        fh = io.BufferedReader(_Transcoder(fh, enc), _ZSTD_OUT)
                for _ in self.records(fh):
                    yield self.batch, min(self.done(), self.end)
                    self.batch = Records()
            except STREAM_ERRORS as e:
                loc, after = self.position()
                self.batch.reject(loc, "truncated", f"stream breaks{after}: {describe(e)}", "")
            yield self.batch, self.end
        finally:
            fh.close()
            first.close()
            if self.raw is not None:
                self.raw.close()
