"""gettext catalogs: ``.po``/``.pot`` (text) and ``.mo`` (binary), and their alignment keys.

A catalog maps a source-language message (msgid, optionally with a msgctxt) to its translation,
so catalogs of one domain in many languages are parallel text. :func:`message_key` and
:func:`align_key` are the one definition of that alignment, used by ingest (the ``align_key``
column) and by the parallel-set builder (``tasks.evaluate.parallel``).

Both parsers are written here, because no library gives the same guarantees: ``polib`` reads a
broken entry silently (``msgid "broken`` becomes ``"broke"``) and raises one error for a whole
file, and holds the file in memory; the stdlib's ``gettext`` decodes a whole .mo at once, drops
plural indices and message positions, and fails the catalog on one undecodable message. Here:

- ``.po``: line by line through :func:`~.base.read_lines` (lines and entries over the limits
  are ``too_long`` rejects); a syntax error is one ``corrupt_file`` reject at ``line:N`` and the
  parser skips to the next blank line; ``msgstr[k]`` with k > :data:`MAX_PLURAL_FORMS` is a
  reject (gettext languages have at most 6 forms); fuzzy and obsolete (``#~``) entries and the
  header are not records.
- ``.mo``: the header and offset tables are read, then each message by seek + read, so memory is
  one message; a message over the limit is a ``too_long`` reject, an offset beyond the end of the
  file a ``truncated`` one.
"""

from __future__ import annotations

import codecs
import io
import posixpath
import re
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from tokenfoundry.tasks.ingest.readers.base import (
    Reader,
    Records,
    line_limit,
    read_lines,
    text_limit,
    unescape_surrogates,
)
from tokenfoundry.schemas.ingest import IngestSpec

#: Largest plural index accepted in a .po ``msgstr[k]`` (gettext languages use at most 6).
MAX_PLURAL_FORMS = 16


def message_key(msgctxt: str | None, msgid: str) -> str:
    """The key gettext looks a message up by: ``msgctxt \\x04 msgid`` (just msgid without one)."""
    return msgid if msgctxt is None else f"{msgctxt}\x04{msgid}"


def align_key(key: str, plural_index: int | None = None) -> str:
    """The alignment key of one text of a message: its :func:`message_key`, and for plural
    forms ``\\x00`` and the form's index (form 0 of every language aligns with the msgid)."""
    return key if plural_index is None else f"{key}\x00{plural_index}"


# ---- locales and headers ----------------------------------------------------------------------

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


def header_fields(header: str) -> dict[str, str]:
    out = {}
    for line in header.split("\n"):
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip().lower()] = v.strip()
    return out


def charset_of(fields: dict[str, str]) -> str:
    m = re.search(r"charset=([A-Za-z0-9_.:-]+)", fields.get("content-type", ""))
    cs = (m.group(1) if m else "utf-8").lower()
    if cs in ("charset", "") or cs.startswith("utf8") or cs.startswith("utf-8"):
        return "utf-8"
    try:
        codecs.lookup(cs)
        return cs
    except LookupError:
        return "utf-8"


def catalog_lang(fields: dict[str, str], path: str) -> str | None:
    return normalise_locale(fields.get("language", "")) or lang_from_path(path)


# ---- records ----------------------------------------------------------------------------------

class _Records:
    """Record emission shared by .po and .mo entries (the reader's current batch)."""

    def __init__(self, reader: Reader, spec: IngestSpec):
        self.reader, self.spec = reader, spec

    def entry(self, loc: str, ctxt: str | None, msgid: str, plural: str | None,
              msgstrs: list[str], lang: str | None, charset: str) -> None:
        batch: Records = self.reader.batch
        key = message_key(ctxt, msgid)
        policy = self.spec.utf8
        if self.spec.include_msgid:
            for k, src in enumerate([msgid] if plural is None else [msgid, plural]):
                text, rep, detail = unescape_surrogates(src, policy)
                suffix = "" if plural is None else f"[{k}]"
                akey = align_key(key, None if plural is None else k)
                if text is None:
                    batch.reject(f"{loc}:msgid{suffix}", "invalid_utf8", detail, src)
                else:
                    batch.add(f"{loc}:msgid{suffix}", text, None, "en", akey,
                              ["utf8_repaired"] if rep else None)
        for k, s in enumerate(msgstrs):
            if not s:
                continue  # an untranslated plural form is not a record
            sub = loc if plural is None else f"{loc}[{k}]"
            text, rep, detail = unescape_surrogates(s, policy)
            if text is None:
                batch.reject(sub, "invalid_utf8", f"{detail} (catalog charset {charset})", s)
                continue
            batch.add(sub, text, None, lang, align_key(key, None if plural is None else k),
                      ["utf8_repaired"] if rep else None)


# ---- .mo --------------------------------------------------------------------------------------

class CatalogError(ValueError):
    """A .mo file that is not one, or that breaks at message ``index``."""

    def __init__(self, reason: str, detail: str, index: int | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.index = reason, detail, index


class MoCatalog:
    """A .mo file read message by message: header and offset tables first, then seek + read."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        head = fh.read(20)
        if len(head) < 20:
            raise CatalogError("corrupt_file", f"{len(head)} bytes: too short for a .mo catalog")
        magic = struct.unpack("<I", head[:4])[0]
        if magic == 0x950412DE:
            self.order = "<"
        elif magic == 0xDE120495:
            self.order = ">"
        else:
            raise CatalogError("corrupt_file", f"bad .mo magic 0x{magic:08x}")
        _rev, self.n, o_off, t_off = struct.unpack(self.order + "4I", head[4:20])
        fh.seek(o_off)
        self.otab = fh.read(8 * self.n)
        fh.seek(t_off)
        self.ttab = fh.read(8 * self.n)
        self.fields: dict[str, str] = {}
        if self.n and self._lengths(0)[0] == 0:
            _key, value = self.raw(0, 1 << 20)
            if value is not None:
                self.fields = header_fields(value.decode("utf-8", errors="replace"))
        self.charset = charset_of(self.fields)

    def _lengths(self, i: int) -> tuple[int, int, int, int]:
        if 8 * i + 8 > min(len(self.otab), len(self.ttab)):
            raise CatalogError("truncated", f"catalog breaks at message {i} of {self.n}: its "
                               "offset table ends early", i)
        klen, koff = struct.unpack_from(self.order + "2I", self.otab, 8 * i)
        vlen, voff = struct.unpack_from(self.order + "2I", self.ttab, 8 * i)
        return klen, koff, vlen, voff

    def raw(self, i: int, limit: int) -> tuple[bytes | None, bytes | None]:
        """(msgid bytes, msgstr bytes) of message i; None for a side longer than ``limit``."""
        klen, koff, vlen, voff = self._lengths(i)
        out = []
        for n, off in ((klen, koff), (vlen, voff)):
            if n > limit:
                out.append(None)
                continue
            self.fh.seek(off)
            data = self.fh.read(n)
            if len(data) < n:
                raise CatalogError("truncated", f"catalog breaks at message {i} of {self.n}: "
                                   "offset beyond the end of the file", i)
            out.append(data)
        return out[0], out[1]

    def messages(self, limit: int) -> Iterator[tuple[int, str | None, str, str | None,
                                                     list[str] | None]]:
        """(index, msgctxt, msgid, msgid_plural, msgstr forms) of every message but the header,
        decoded with the catalog's charset (``surrogateescape``); forms None: over ``limit``."""
        cs = self.charset
        for i in range(self.n):
            k, v = self.raw(i, limit)
            if k == b"":
                continue
            if k is None or v is None:
                yield i, None, "", None, None
                continue
            key = k.decode(cs, errors="surrogateescape")
            ctxt, sep, msgid = key.rpartition("\x04")
            msgid, psep, plural = msgid.partition("\x00")
            forms = v.decode(cs, errors="surrogateescape").split("\x00")
            yield i, ctxt if sep else None, msgid, plural if psep else None, forms


class MoReader(Reader):
    """A binary gettext catalog; locations ``msg:i`` (the message's index)."""

    sniffs_text = False

    def open(self) -> io.BufferedReader:
        from tokenfoundry.tasks.ingest.readers.base import open_raw

        self.raw = open_raw(self.unit.path)
        return self.raw  # type: ignore[return-value]

    def records(self, fh: io.BufferedReader) -> Iterator[None]:
        spec = self.spec
        try:
            cat = MoCatalog(fh)
        except CatalogError as e:
            self.batch.reject("file", e.reason, e.detail)
            return
        lang = spec.lang or catalog_lang(cat.fields, self.unit.path)
        out = _Records(self, spec)
        limit = text_limit(spec) * 16  # every plural form together
        done = 0
        try:
            for i, ctxt, msgid, plural, forms in cat.messages(limit):
                done = i
                if forms is None:
                    self.batch.reject(f"msg:{i}", "too_long", f"a message of more than {limit} "
                                      f"bytes (max_chars {spec.max_chars})")
                else:
                    out.entry(f"msg:{i}", ctxt, msgid, plural, forms, lang, cat.charset)
                if self.batch.full(spec.batch_rows):
                    self._done = int(self.unit.size * i / max(1, cat.n))
                    yield
        except CatalogError as e:
            self.batch.reject(f"msg:{e.index if e.index is not None else done}", e.reason,
                              e.detail)

    _done = 0

    def done(self) -> int:
        return self._done


# ---- .po --------------------------------------------------------------------------------------

_PO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b",
               "f": "\f", "v": "\v", "?": "?", "'": "'"}
_PO_ESC = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)")
_CHARSET = re.compile(rb"charset=([A-Za-z0-9_.:-]+)")


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


class _TooLong(ValueError):
    pass


class PoReader(Reader):
    """A text gettext catalog; locations ``line:N`` (the entry's first keyword line)."""

    what = "a .po catalog"

    def __init__(self, *a: Any, **k: Any):
        super().__init__(*a, **k)
        self.lineno = 0

    def position(self) -> tuple[str, str]:
        return f"line:{self.lineno + 1}", f" after line {self.lineno}"

    def records(self, fh: io.BufferedReader) -> Iterator[None]:
        spec, unit = self.spec, self.unit
        m = _CHARSET.search(fh.peek(8192)[:8192])
        charset = charset_of({"content-type": f"charset={m.group(1).decode()}"} if m else {})
        out = _Records(self, spec)
        limit, entry_limit = line_limit(spec), text_limit(spec) * 16
        lang: str | None = spec.lang
        header_seen = False
        cur: dict[str, Any] = {}
        last: str | None = None
        fuzzy = skipping = False
        start = size = 0

        def finish() -> None:
            nonlocal cur, fuzzy, lang, header_seen, last, size
            if "msgid" in cur and not cur.get("obsolete"):
                msgid = cur["msgid"]
                if msgid == "" and "msgctxt" not in cur and not header_seen:
                    header_seen = True
                    fields = header_fields(cur.get("msgstr", {}).get(0, ""))
                    if lang is None:
                        lang = catalog_lang(fields, unit.path)
                elif not fuzzy:
                    forms = cur.get("msgstr", {})
                    msgstrs = [forms.get(k, "") for k in range(max(forms) + 1)] if forms else []
                    if any(msgstrs):
                        out.entry(f"line:{start}", cur.get("msgctxt"), msgid,
                                  cur.get("msgid_plural"), msgstrs,
                                  lang if lang is not None else lang_from_path(unit.path), charset)
            cur, fuzzy, last, size = {}, False, None, 0

        for raw_line in read_lines(fh, limit):
            self.lineno += 1
            n = self.lineno
            line = "" if isinstance(raw_line, int) else \
                raw_line.decode(charset, errors="surrogateescape").rstrip("\r\n")
            s = line.strip()
            if skipping:
                if s:
                    continue
                skipping = False
            try:
                if isinstance(raw_line, int):
                    raise _TooLong(f"a line of {raw_line} bytes, more than {limit}")
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
                    size += len(val)
                    if size > entry_limit:
                        raise _TooLong(f"an entry of more than {entry_limit} characters")
                    if last.startswith("msgstr"):
                        k = cur["msgstr"]
                        k[max(k)] += val
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
                    idx = 0 if kw == "msgstr" else _plural_index(kw)
                    cur.setdefault("msgstr", {})[idx] = _po_unquote(rest)
                    last = "msgstr"
                else:
                    raise ValueError(f"unknown keyword {kw[:20]!r}")
                size += len(rest)
            except _TooLong as e:
                self.batch.reject(f"line:{n}", "too_long", f"{e} (max_chars {spec.max_chars})",
                                  line)
                cur, fuzzy, last, size, skipping = {}, False, None, 0, True
            except (ValueError, KeyError) as e:
                self.batch.reject(f"line:{n}", "corrupt_file", f"bad .po syntax: {e}", line)
                cur, fuzzy, last, size, skipping = {}, False, None, 0, True
            if self.batch.full(spec.batch_rows):
                yield
        finish()


def _plural_index(kw: str) -> int:
    """k of ``msgstr[k]``, at most :data:`MAX_PLURAL_FORMS`."""
    inner = kw[7:-1] if kw.endswith("]") else ""
    if not inner.isdigit():
        raise ValueError(f"bad plural index in {kw[:30]!r}")
    if len(inner) > 3 or int(inner) > MAX_PLURAL_FORMS:
        shown = inner if len(inner) <= 12 else inner[:12] + "..."
        raise ValueError(f"plural index {shown} > {MAX_PLURAL_FORMS} (gettext languages have "
                         "at most 6 plural forms)")
    return int(inner)
