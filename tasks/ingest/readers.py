"""Readers: stream records out of the places text lives, in batches, with faults as rejects.

One reader per format (txt/md, jsonl, csv, parquet, gettext po/mo). Each takes an
:class:`IngestUnit` and the spec, and yields ``(Records, bytes_done)`` pairs: a batch of decoded
records (text, location, source_id, lang, align_key, flags) plus the reject rows met while
reading, and how far into the unit it got (for progress). Memory is bounded by the batch size
(and, for txt/md documents, by ``max_chars``), never by the input size.

Faults inside a stream (a cut gzip/zstd stream, a broken Parquet row group) become one
``truncated`` reject at the place of the fault; records read before it are kept. A file that
cannot be opened as its format at all becomes one ``corrupt_file`` (or ``missing_field``,
``wrong_type``, ``binary``) reject, so every file contributes to ``read == kept + rejected``.

The gettext readers are written by hand (a .po parser and a .mo parser of a few dozen lines),
because the stdlib's ``gettext`` drops locations, plural indices and undecodable messages.
"""

from __future__ import annotations

import csv
import gzip
import io
import posixpath
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson
import zstandard

from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit

_CHUNK = 4 * 1024 * 1024
_SNIFF = 8192
_ZSTD_IN = 128 * 1024
_ZSTD_OUT = 1024 * 1024
_BATCH_TEXT_BYTES = 32 * 1024 * 1024
EXCERPT_CHARS = 200


@dataclass
class Records:
    """A batch of decoded records (parallel lists) plus the rejects met while reading them.

    ``text`` is a list of str, or (JSONL fast path) a pyarrow string array of the same length.
    """

    location: list[str] = field(default_factory=list)
    text: Any = field(default_factory=list)  # list[str] | pyarrow string array
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


def open_raw(path: str) -> BinaryIO:
    """Open a local path or an fsspec URI for binary reading."""
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def open_stream(unit: IngestUnit) -> tuple[BinaryIO, BinaryIO]:
    """(decompressed buffered stream, raw file) for a unit; the raw file's tell() is progress."""
    raw = open_raw(unit.path)
    # Compressed streams are read in small steps, so that the records before a cut in the
    # stream reach the caller before the error does.
    if unit.compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    if unit.compression == "zstd":
        return io.BufferedReader(_ZstdReader(raw), _ZSTD_OUT), raw
    if unit.start:
        raw.seek(unit.start)
    return io.BufferedReader(raw, _CHUNK) if not isinstance(raw, io.BufferedReader) else raw, raw


STREAM_ERRORS = (EOFError, OSError, zstandard.ZstdError, gzip.BadGzipFile, ValueError)


def describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def is_binary(head: bytes) -> bool:
    return b"\x00" in head


# ---- jsonl ------------------------------------------------------------------------------------

_JSONL_BLOCK = 16 * 1024 * 1024


def _read_upto(fh: BinaryIO, want: int) -> tuple[bytes, BaseException | None]:
    """Up to ``want`` bytes and then to the end of that line; on a stream fault, what was read
    before it and the fault (so records before a cut are not lost)."""
    parts: list[bytes] = []
    got = 0
    try:
        while got < want:
            piece = fh.read1(min(1 << 20, want - got))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        if parts and not parts[-1].endswith(b"\n"):
            parts.append(fh.readline())
        return b"".join(parts), None
    except STREAM_ERRORS as e:
        return b"".join(parts), e


class _JsonlLines:
    """The per-line JSONL path (exact errors per line): used for blocks the fast path refuses."""

    def __init__(self, spec: IngestSpec):
        self.policy, self.tf = spec.utf8, spec.text_field
        self.id_key = spec.id_field or "id"
        self.lang_key = spec.lang_field or "lang"

    def add(self, batch: Records, line: bytes, lineno: int) -> None:
        if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            return
        loc = f"line:{lineno}"
        flags = None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            text, repaired, detail = decode_utf8(line, self.policy)
            if text is None:
                batch.reject(loc, "invalid_utf8", detail, line)
                return
            if not repaired:
                batch.reject(loc, "bad_json", str(e), line)
                return
            try:
                obj = orjson.loads(text)
                flags = ["utf8_repaired"]
            except orjson.JSONDecodeError as e2:
                batch.reject(loc, "bad_json", str(e2), line)
                return
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


def _jsonl_fast(block: bytes, first_line: int, spec: IngestSpec) -> Records | None:
    """Parse a block of complete lines with pyarrow's (multi-threaded) JSON reader, or None when
    the block needs the per-line path (any bad line, a missing/odd field, blank lines, a BOM)."""
    import pyarrow as pa
    import pyarrow.json as pj

    n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    try:
        table = pj.read_json(io.BytesIO(block), read_options=pj.ReadOptions(block_size=1 << 20))
    except pa.lib.ArrowException:
        return None
    if table.num_rows != n_lines or spec.text_field not in table.column_names:
        return None
    text = table.column(spec.text_field)
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)) \
            or text.null_count:
        return None
    id_key = spec.id_field or "id"
    lang_key = spec.lang_field or "lang"
    sids: list | None = None
    langs: list | None = None
    try:
        text = text.combine_chunks()
        text.validate(full=True)  # UTF-8 check
        if id_key in table.column_names:
            col = table.column(id_key)
            if pa.types.is_integer(col.type):
                col = col.cast(pa.string())
            elif not pa.types.is_string(col.type) and not pa.types.is_null(col.type):
                return None
            sids = col.to_pylist()
        if lang_key in table.column_names:
            col = table.column(lang_key)
            if pa.types.is_null(col.type):
                pass
            elif not pa.types.is_string(col.type):
                return None
            else:
                langs = [x if x else None for x in col.to_pylist()]
    except pa.lib.ArrowException:
        return None
    n = table.num_rows
    r = Records()
    r.text = text
    r.location = [f"line:{k}" for k in range(first_line, first_line + n)]
    r.source_id = sids if sids is not None else [None] * n
    r.lang = langs if langs is not None else [None] * n
    r.align_key = [None] * n
    r.flags = [None] * n
    r.text_bytes = len(block)
    return r


def read_jsonl(unit: IngestUnit, spec: IngestSpec) -> Iterator[tuple[Records, int]]:
    """JSONL in blocks of complete lines: pyarrow parses clean blocks (C++, threads); a block
    with any problem goes line by line through orjson, so every bad line gets its own reject."""
    fh, raw = open_stream(unit)
    lines = _JsonlLines(spec)
    lineno = unit.first_line - 1
    pos = unit.start
    end = unit.end
    compressed = unit.compression is not None
    try:
        if unit.start == 0:
            try:
                head = fh.peek(_SNIFF)[:_SNIFF]
            except STREAM_ERRORS:
                head = b""
            if is_binary(head):
                batch = Records()
                batch.reject("file", "binary", "NUL bytes in the first 8 KiB: not a text file",
                             head)
                yield batch, unit.size
                return
        while True:
            want = _JSONL_BLOCK if end is None else min(_JSONL_BLOCK, end - pos)
            if want <= 0:
                break
            block, fault = _read_upto(fh, want)
            if fault is not None:  # keep the complete lines before the fault
                cut = block.rfind(b"\n") + 1
                block = block[:cut]
            if block:
                pos += len(block)
                fast = None if (lineno == 0 and block.startswith(b"\xef\xbb\xbf")) \
                    else _jsonl_fast(block, lineno + 1, spec)
                if fast is not None:
                    batch = fast
                    lineno += len(fast.text)
                else:
                    batch = Records()
                    parts = block.split(b"\n")
                    if block.endswith(b"\n"):
                        parts.pop()
                    for line in parts:
                        lineno += 1
                        lines.add(batch, line, lineno)
                done = (raw.tell() if compressed else pos) - unit.start
            else:
                batch = Records()
                done = 0
            if fault is not None:
                batch.reject(f"line:{lineno + 1}", "truncated",
                             f"stream breaks after line {lineno}: {describe(fault)}", "")
                yield batch, (end or unit.size) - unit.start
                return
            if not block:
                break
            yield batch, done
    finally:
        fh.close()
        raw.close()


# ---- csv --------------------------------------------------------------------------------------

def read_csv(unit: IngestUnit, spec: IngestSpec) -> Iterator[tuple[Records, int]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    policy, rows = spec.utf8, spec.batch_rows
    fh, raw = open_stream(unit)
    batch = Records()
    try:
        text_io = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text_io)
        try:
            head = fh.peek(_SNIFF)[:_SNIFF]
            if is_binary(head):
                batch.reject("file", "binary", "NUL bytes in the first 8 KiB: not a text file", head)
                yield batch, unit.size
                return
            header = next(reader, None)
            if header is None:
                yield batch, unit.size
                return
            header = [h.strip() for h in header]
            if spec.text_field not in header:
                batch.reject("line:1", "missing_field",
                             f"no column {spec.text_field!r} (columns: {', '.join(header[:12])}); "
                             "pass --text-field", ",".join(header))
                yield batch, unit.size
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
                except csv.Error as e:
                    batch.reject(f"line:{reader.line_num}", "bad_csv", str(e), "")
                    continue
                loc = f"line:{reader.line_num}"
                if not row:
                    continue
                if len(row) <= ti:
                    batch.reject(loc, "bad_csv", f"{len(row)} fields, header has {len(header)}",
                                 ",".join(row))
                    continue
                text, repaired, detail = unescape_surrogates(row[ti], policy)
                if text is None:
                    batch.reject(loc, "invalid_utf8", detail, row[ti])
                    continue
                sid = row[ii] if ii is not None and ii < len(row) else None
                lg = row[li] if li is not None and li < len(row) and row[li] else None
                batch.add(loc, text, sid, lg, None, ["utf8_repaired"] if repaired else None)
                if batch.full(rows):
                    yield batch, raw.tell()
                    batch = Records()
        except STREAM_ERRORS as e:
            batch.reject(f"line:{reader.line_num + 1}", "truncated",
                         f"stream breaks after line {reader.line_num}: {describe(e)}", "")
        yield batch, unit.size
    finally:
        fh.close()
        raw.close()


# ---- parquet ----------------------------------------------------------------------------------

def read_parquet(unit: IngestUnit, spec: IngestSpec) -> Iterator[tuple[Records, int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    batch = Records()
    raw = open_raw(unit.path)
    try:
        try:
            pf = pq.ParquetFile(raw)
            schema = pf.schema_arrow
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
            batch.reject("file", "corrupt_file", f"not a readable Parquet file: {describe(e)}", "")
            yield batch, unit.size
            return
        names = schema.names
        tf = spec.text_field
        if tf not in names:
            batch.reject("file", "missing_field",
                         f"no column {tf!r} (columns: {', '.join(names[:12])}); pass --text-field",
                         "")
            yield batch, unit.size
            return
        ttype = schema.field(tf).type
        is_text = pa.types.is_string(ttype) or pa.types.is_large_string(ttype) or \
            getattr(pa.types, "is_string_view", lambda t: False)(ttype)
        is_bin = pa.types.is_binary(ttype) or pa.types.is_large_binary(ttype)
        if not (is_text or is_bin):
            batch.reject("file", "wrong_type", f"column {tf!r} is {ttype}, not a string", "")
            yield batch, unit.size
            return
        idf = spec.id_field or ("id" if "id" in names else None)
        lf = spec.lang_field or ("lang" if "lang" in names else None)
        cols = [tf] + [c for c in (idf, lf) if c in names]
        total_rows = pf.metadata.num_rows or 1
        row = 0
        try:
            for rb in pf.iter_batches(batch_size=spec.batch_rows, columns=cols):
                texts = rb.column(tf).to_pylist()
                sids = rb.column(idf).to_pylist() if idf in rb.schema.names else None
                langs = rb.column(lf).to_pylist() if lf in rb.schema.names else None
                for j, t in enumerate(texts):
                    row += 1
                    loc = f"row:{row}"
                    flags = None
                    if t is None:
                        batch.reject(loc, "missing_field", f"{tf!r} is null", "")
                        continue
                    if is_bin:
                        t2, repaired, detail = decode_utf8(t, spec.utf8)
                        if t2 is None:
                            batch.reject(loc, "invalid_utf8", detail, t)
                            continue
                        t = t2
                        flags = ["utf8_repaired"] if repaired else None
                    sid = sids[j] if sids is not None else None
                    lg = langs[j] if langs is not None else None
                    batch.add(loc, t, None if sid is None else str(sid),
                              lg if isinstance(lg, str) and lg else None, None, flags)
                yield batch, int(unit.size * row / total_rows)
                batch = Records()
        except Exception as e:  # noqa: BLE001 - a broken page/row group mid-file
            batch.reject(f"row:{row + 1}", "truncated",
                         f"Parquet data breaks after row {row}: {describe(e)}", "")
        yield batch, unit.size
    finally:
        raw.close()


# ---- txt / md ---------------------------------------------------------------------------------

_BLANK = re.compile(rb"^[ \t\r\f\v]*$")


def read_text(unit: IngestUnit, spec: IngestSpec) -> Iterator[tuple[Records, int]]:
    fh, raw = open_stream(unit)
    batch = Records()
    policy = spec.utf8
    lang = None
    try:
        try:
            head = fh.peek(_SNIFF)[:_SNIFF]
            if is_binary(head):
                batch.reject("file", "binary", "NUL bytes in the first 8 KiB: not a text file",
                             head)
                yield batch, unit.size
                return
            if not spec.split_paragraphs:
                limit = spec.max_chars * 4
                data = fh.read(limit + 1)
                if len(data) > limit:
                    batch.reject("file", "too_long",
                                 f"more than {limit} bytes (max_chars {spec.max_chars})", data)
                else:
                    text, repaired, detail = decode_utf8(data, policy)
                    if text is None:
                        batch.reject("file", "invalid_utf8", detail, data)
                    else:
                        batch.add("file", text, None, lang, None,
                                  ["utf8_repaired"] if repaired else None)
            else:
                yield from _paragraphs(fh, raw, unit, spec, batch)
                return
        except STREAM_ERRORS as e:
            batch.reject("file", "truncated", f"stream breaks: {describe(e)}", "")
        yield batch, unit.size
    finally:
        fh.close()
        raw.close()


def _paragraphs(fh: BinaryIO, raw: BinaryIO, unit: IngestUnit, spec: IngestSpec,
                batch: Records) -> Iterator[tuple[Records, int]]:
    lines: list[bytes] = []
    start = 0
    lineno = 0

    def flush() -> None:
        nonlocal lines
        if lines:
            data = b"".join(lines).rstrip(b"\r\n")
            loc = f"line:{start}"
            text, repaired, detail = decode_utf8(data, spec.utf8)
            if text is None:
                batch.reject(loc, "invalid_utf8", detail, data)
            else:
                batch.add(loc, text, None, None, None, ["utf8_repaired"] if repaired else None)
            lines = []

    try:
        for line in fh:
            lineno += 1
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if _BLANK.match(line.rstrip(b"\n")):
                flush()
                if batch.full(spec.batch_rows):
                    yield batch, raw.tell()
                    batch = Records()
                continue
            if not lines:
                start = lineno
            lines.append(line)
        flush()
    except STREAM_ERRORS as e:
        batch.reject(f"line:{lineno + 1}", "truncated",
                     f"stream breaks after line {lineno}: {describe(e)}", "")
    yield batch, unit.size


# ---- gettext ----------------------------------------------------------------------------------

_LANG_IN_PATH = re.compile(r"/([A-Za-z]{2,3}(?:_[A-Za-z0-9]{2,8})?(?:@[A-Za-z]+)?)/LC_MESSAGES/")
_LOCALE_STEM = re.compile(r"[a-z]{2,3}(?:_[A-Z]{2}|_[A-Za-z]{4})?(?:@[a-z]+)?")


def normalise_locale(code: str) -> str | None:
    """gettext locale code -> our lang value: 'pt_BR.UTF-8' -> 'pt-BR', 'sr@latin' stays."""
    code = code.strip().split(".")[0]
    if not code or not re.fullmatch(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*(@[A-Za-z]+)?", code):
        return None
    base, _, mod = code.partition("@")
    parts = re.split(r"[_-]", base)
    out = "-".join([parts[0].lower(), *parts[1:]])
    return f"{out}@{mod}" if mod else out


def lang_from_path(path: str) -> str | None:
    m = _LANG_IN_PATH.search(path.replace("\\", "/"))
    if m:
        return normalise_locale(m.group(1))
    stem = posixpath.basename(path).split(".")[0]
    if _LOCALE_STEM.fullmatch(stem):
        return normalise_locale(stem)
    return None


def _header_fields(header: str) -> dict[str, str]:
    out = {}
    for line in header.split("\n"):
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip().lower()] = v.strip()
    return out


def _charset(header_fields: dict[str, str]) -> str:
    m = re.search(r"charset=([A-Za-z0-9_.:-]+)", header_fields.get("content-type", ""))
    cs = (m.group(1) if m else "utf-8").lower()
    if cs in ("charset", "") or cs.startswith("utf8") or cs.startswith("utf-8"):
        return "utf-8"
    try:
        import codecs

        codecs.lookup(cs)
        return cs
    except LookupError:
        return "utf-8"


def _catalog_lang(spec: IngestSpec, fields: dict[str, str], path: str) -> str | None:
    return normalise_locale(fields.get("language", "")) or lang_from_path(path)


class _Gettext:
    """Shared record emission for .po and .mo entries."""

    def __init__(self, spec: IngestSpec, batch: Records):
        self.spec, self.batch = spec, batch

    def entry(self, loc: str, ctxt: str | None, msgid: str, plural: str | None,
              msgstrs: list[str], lang: str | None, charset: str) -> None:
        key = msgid if ctxt is None else f"{ctxt}\x04{msgid}"
        policy = self.spec.utf8
        if self.spec.include_msgid:
            for k, src in enumerate([msgid] if plural is None else [msgid, plural]):
                text, rep, detail = unescape_surrogates(src, policy)
                suffix = "" if plural is None else f"[{k}]"
                akey = key if plural is None else f"{key}\x00{k}"
                if text is None:
                    self.batch.reject(f"{loc}:msgid{suffix}", "invalid_utf8", detail, src)
                else:
                    self.batch.add(f"{loc}:msgid{suffix}", text, None, "en", akey,
                                   ["utf8_repaired"] if rep else None)
        for k, s in enumerate(msgstrs):
            if not s:
                continue  # an untranslated plural form is not a record
            sub = loc if plural is None else f"{loc}[{k}]"
            akey = key if plural is None else f"{key}\x00{k}"
            text, rep, detail = unescape_surrogates(s, policy)
            if text is None:
                self.batch.reject(sub, "invalid_utf8", f"{detail} (catalog charset {charset})", s)
                continue
            self.batch.add(sub, text, None, lang, akey, ["utf8_repaired"] if rep else None)


def read_mo(unit: IngestUnit, spec: IngestSpec) -> Iterator[tuple[Records, int]]:
    batch = Records()
    with open_raw(unit.path) as fh:
        data = fh.read()
    if len(data) < 20:
        batch.reject("file", "corrupt_file", f"{len(data)} bytes: too short for a .mo catalog",
                     data)
        yield batch, unit.size
        return
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        end = "<"
    elif magic == 0xDE120495:
        end = ">"
    else:
        batch.reject("file", "corrupt_file", f"bad .mo magic 0x{magic:08x}", data[:64])
        yield batch, unit.size
        return
    _rev, n, o_off, t_off = struct.unpack(end + "4I", data[4:20])
    entries = []
    try:
        for i in range(n):
            klen, koff = struct.unpack_from(end + "2I", data, o_off + 8 * i)
            vlen, voff = struct.unpack_from(end + "2I", data, t_off + 8 * i)
            if koff + klen > len(data) or voff + vlen > len(data):
                raise struct.error("offset beyond the end of the file")
            entries.append((data[koff:koff + klen], data[voff:voff + vlen]))
    except struct.error as e:
        batch.reject(f"msg:{len(entries)}", "truncated",
                     f"catalog breaks at message {len(entries)} of {n}: {e}", "")
    fields: dict[str, str] = {}
    for k, v in entries:
        if k == b"":
            fields = _header_fields(v.decode("utf-8", errors="replace"))
    charset = _charset(fields)
    lang = spec.lang or _catalog_lang(spec, fields, unit.path)
    g = _Gettext(spec, batch)
    for i, (k, v) in enumerate(entries):
        if k == b"":
            continue
        key = k.decode(charset, errors="surrogateescape")
        ctxt, sep, msgid = key.rpartition("\x04")
        ctxt = ctxt if sep else None
        msgid, psep, plural = msgid.partition("\x00")
        forms = v.decode(charset, errors="surrogateescape").split("\x00")
        g.entry(f"msg:{i}", ctxt, msgid, plural if psep else None, forms, lang, charset)
        if batch.full(spec.batch_rows):
            yield batch, int(unit.size * i / max(1, len(entries)))
            batch = g.batch = Records()
    yield batch, unit.size


_PO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b",
               "f": "\f", "v": "\v", "?": "?", "'": "'"}
_PO_ESC = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)")


def _po_unquote(s: str) -> str:
    s = s.strip()
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise ValueError(f"expected a quoted string, got {s[:40]!r}")

    def sub(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e[0] in "01234567":
            return chr(int(e, 8))
        return _PO_ESCAPES.get(e, e)

    return _PO_ESC.sub(sub, s[1:-1])


def read_po(unit: IngestUnit, spec: IngestSpec) -> Iterator[tuple[Records, int]]:
    fh, raw = open_stream(unit)
    batch = Records()
    try:
        data = fh.read()
    except STREAM_ERRORS as e:
        batch.reject("file", "truncated", f"stream breaks: {describe(e)}", "")
        yield batch, unit.size
        return
    finally:
        fh.close()
        raw.close()
    if is_binary(data[:_SNIFF]):
        batch.reject("file", "binary", "NUL bytes in the first 8 KiB: not a .po catalog", data)
        yield batch, unit.size
        return
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    m = re.search(rb"charset=([A-Za-z0-9_.:-]+)", data[:8192])
    charset = _charset({"content-type": f"charset={m.group(1).decode()}"} if m else {})
    text = data.decode(charset, errors="surrogateescape").replace("\r\n", "\n")
    lines = text.split("\n")
    g = _Gettext(spec, batch)
    lang: str | None = spec.lang
    header_seen = False
    cur: dict[str, Any] = {}
    last: str | None = None
    fuzzy = False
    start = 0

    def finish() -> None:
        nonlocal cur, fuzzy, lang, header_seen, last
        if "msgid" in cur and not cur.get("obsolete"):
            msgid = cur["msgid"]
            if msgid == "" and "msgctxt" not in cur and not header_seen:
                header_seen = True
                fields = _header_fields(cur.get("msgstr", {}).get(0, ""))
                if lang is None:
                    lang = _catalog_lang(spec, fields, unit.path)
            elif not fuzzy:
                forms = cur.get("msgstr", {})
                msgstrs = [forms.get(k, "") for k in range(max(forms) + 1)] if forms else []
                if any(msgstrs):
                    g.entry(f"line:{start}", cur.get("msgctxt"), msgid, cur.get("msgid_plural"),
                            msgstrs, lang if lang is not None else lang_from_path(unit.path),
                            charset)
        cur, fuzzy, last = {}, False, None

    for n, line in enumerate(lines, 1):
        s = line.strip()
        try:
            if not s:
                finish()
                continue
            if s.startswith("#~"):
                cur["obsolete"] = True
                continue
            if s.startswith("#"):
                if "msgid" in cur and "msgstr" in cur:
                    finish()
                if s.startswith("#,") and "fuzzy" in s:
                    fuzzy = True
                continue
            if s.startswith('"'):
                if last is None:
                    raise ValueError("a continuation string without a keyword before it")
                val = _po_unquote(s)
                if last.startswith("msgstr"):
                    k = cur["msgstr"]
                    idx = max(k)
                    k[idx] += val
                else:
                    cur[last] += val
                continue
            kw, _, rest = s.partition(" ")
            if kw in ("msgctxt", "msgid") and "msgstr" in cur:
                finish()
            if kw in ("msgctxt", "msgid") and not cur:
                start = n
            if kw in ("msgctxt", "msgid", "msgid_plural"):
                cur[kw] = _po_unquote(rest)
                last = kw
            elif kw == "msgstr" or kw.startswith("msgstr["):
                idx = 0 if kw == "msgstr" else int(kw[7:-1])
                cur.setdefault("msgstr", {})[idx] = _po_unquote(rest)
                last = "msgstr"
            else:
                raise ValueError(f"unknown keyword {kw[:20]!r}")
        except (ValueError, KeyError) as e:
            batch.reject(f"line:{n}", "corrupt_file", f"bad .po syntax: {e}", line)
            cur, fuzzy, last = {}, False, None
            # skip to the next blank line: the broken entry is one reject
        if batch.full(spec.batch_rows):
            yield batch, int(unit.size * n / max(1, len(lines)))
            batch = g.batch = Records()
    finish()
    yield batch, unit.size


READERS = {
    "jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet, "txt": read_text,
    "md": read_text, "po": read_po, "mo": read_mo,
}


def read_unit(unit: IngestUnit, spec: IngestSpec) -> Iterator[tuple[Records, int]]:
    """Batches of records (and rejects) of one unit, with the bytes of the unit done so far."""
    return READERS[unit.format](unit, spec)
