"""Per-record processing of a reader batch: normalise, filter, identify the language, hash.

:func:`process_records` turns one :class:`~tokenfoundry.tasks.ingest.readers.Records` batch into
the kept rows (a table in ``CORPUS_SCHEMA``) and the reject rows, each with its reason.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.schemas.tables import CORPUS_SCHEMA, REJECTS_SCHEMA
from tokenfoundry.tasks.ingest.langid import UNDETERMINED, identify
from tokenfoundry.tasks.ingest.normalise import normalise_text
from tokenfoundry.tasks.ingest.quality import alpha_fraction, repeated_line_fraction
from tokenfoundry.tasks.ingest.readers import Records, excerpt_of


class _Batch:
    """One processed batch: the kept rows as a table, and the rejects as columns."""

    __slots__ = ("table", "rej", "reasons", "langs", "kept_bytes")

    def __init__(self) -> None:
        self.table: pa.Table | None = None
        self.rej: dict[str, list] = {n: [] for n in REJECTS_SCHEMA.names}
        self.reasons: Counter[str] = Counter()
        self.langs: Counter[str] = Counter()
        self.kept_bytes = 0

    @property
    def kept(self) -> int:
        return 0 if self.table is None else self.table.num_rows

    def reject(self, corpus: str, source: str, loc: str, reason: str, detail: str,
               excerpt: str) -> None:
        r = self.rej
        r["corpus"].append(corpus)
        r["source"].append(source)
        r["location"].append(loc)
        r["reason"].append(reason)
        r["detail"].append(detail)
        r["excerpt"].append(excerpt)
        self.reasons[reason] += 1


#: C0 control bytes other than \t and \n (\r included: line endings are rewritten with them).
_C0_LUT = np.zeros(256, bool)
_C0_LUT[[*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F]] = True
_EMPTY, _SHORT, _LONG, _ALPHA, _REPEAT, _SURROGATE = 1, 2, 3, 4, 5, 6
_REASON = {_EMPTY: "empty", _SHORT: "too_short", _LONG: "too_long", _ALPHA: "low_alpha_fraction",
           _REPEAT: "repeated_lines", _SURROGATE: "invalid_utf8"}


def _control_rows(data_np: np.ndarray, offs: np.ndarray, n: int) -> np.ndarray:
    """Rows holding a C0 control (other than \t, \n) or a C1 control (UTF-8 C2 80..C2 9F)."""
    low = np.flatnonzero(data_np < 0x20)  # vector compares, not a fancy-indexed lookup
    low = low[_C0_LUT[data_np[low]]]
    pos = np.concatenate([low, np.flatnonzero(data_np == 0x7F)])
    c2 = np.flatnonzero(data_np[:-1] == 0xC2)
    if len(c2):
        nxt = data_np[c2 + 1]
        pos = np.concatenate([pos, c2[(nxt >= 0x80) & (nxt <= 0x9F)]])
    rows = np.zeros(n, bool)
    if len(pos):
        rows[np.searchsorted(offs, pos, side="right") - 1] = True
    return rows


def _as_arrow(texts: list[str]) -> tuple[pa.Array, list[int]]:
    """A large_string array of the texts, and the rows that had lone surrogates (blanked)."""
    try:
        return pa.array(texts, pa.large_string()), []
    except (UnicodeEncodeError, pa.ArrowInvalid):
        bad = []
        clean = []
        for i, t in enumerate(texts):
            try:
                t.encode("utf-8")
                clean.append(t)
            except UnicodeEncodeError:
                bad.append(i)
                clean.append("")
        return pa.array(clean, pa.large_string()), bad


def _buffers(arr: pa.Array) -> tuple[np.ndarray, memoryview, np.ndarray]:
    """(offsets int64 [n+1], data buffer, data as uint8 up to the last row's end)."""
    n = len(arr)
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], np.int64)[arr.offset: arr.offset + n + 1]
    data = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
    data_np = np.frombuffer(data, np.uint8)[: int(offs[-1])] if n else np.zeros(0, np.uint8)
    return offs, data, data_np


def process_records(records: Records, source: str, spec: IngestSpec) -> _Batch:
    """Normalise, filter, identify and hash one batch of records.

    Vectorised where it pays: Arrow kernels and one numpy pass over the data buffer find the
    rows that are plain ASCII without control characters (already NFC/NFKC, nothing to
    remove); those keep their Arrow bytes untouched. Only the other rows become Python strings
    for ``unicodedata`` and the control-character regex, and only rows that changed are
    re-encoded. Hashes are xxh3-128 per row over the UTF-8 bytes (buffer slices, no copies).
    """
    out = _Batch()
    corpus = spec.corpus
    for loc, reason, detail, excerpt in records.rejects:
        out.reject(corpus, source, loc, reason, detail, excerpt)
    n = len(records.text)
    if n == 0:
        return out
    form = spec.normalization
    arr, bad = _as_arrow(records.text)
    offs, data, data_np = _buffers(arr)
    o = offs.tolist()
    lengths = np.diff(offs)
    has_ctrl = _control_rows(data_np, offs, n)
    non_ascii = ~pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    dirty = non_ascii | has_ctrl
    empty = pc.utf8_is_space(arr).to_numpy(zero_copy_only=False) | (lengths == 0)
    n_bytes = lengths.copy()
    n_chars = lengths.copy()
    code = np.zeros(n, np.int8)
    strs: dict[int, str] = {}  # decoded (normalised) text of the per-row rows
    changed: dict[int, str] = {}
    for i in np.flatnonzero(dirty).tolist():
        s0 = str(data[o[i]:o[i + 1]], "utf-8")
        s = normalise_text(s0, form, bool(has_ctrl[i]))
        if s != s0:
            changed[i] = s
            n_bytes[i] = len(s.encode("utf-8"))
        strs[i] = s
        n_chars[i] = len(s)
        empty[i] = not s or s.isspace()
    for i in bad:
        code[i] = _SURROGATE
    code[(code == 0) & empty] = _EMPTY
    code[(code == 0) & (n_chars < spec.min_chars)] = _SHORT
    code[(code == 0) & (n_chars > spec.max_chars)] = _LONG

    def text_of(i: int) -> str:
        t = strs.get(i)
        return t if t is not None else str(data[o[i]:o[i + 1]], "utf-8")

    alpha: dict[int, float] = {}
    if spec.min_alpha_fraction > 0.0:
        for i in np.flatnonzero(code == 0).tolist():
            af = alpha_fraction(text_of(i))
            if af < spec.min_alpha_fraction:
                code[i] = _ALPHA
                alpha[i] = af
    repeat: dict[int, float] = {}
    if spec.max_repeated_line_fraction < 1.0:
        for i in np.flatnonzero(code == 0).tolist():
            rf = repeated_line_fraction(text_of(i))
            if rf > spec.max_repeated_line_fraction:
                code[i] = _REPEAT
                repeat[i] = rf

    for i in np.flatnonzero(code).tolist():
        c = int(code[i])
        loc = records.location[i]
        if c == _SURROGATE:
            out.reject(corpus, source, loc, "invalid_utf8", "lone surrogate in the text",
                       excerpt_of(records.text[i].encode("utf-8", "replace")))
            continue
        detail = {
            _EMPTY: "no text after normalisation",
            _SHORT: f"{n_chars[i]} characters < min_chars {spec.min_chars}",
            _LONG: f"{n_chars[i]} characters > max_chars {spec.max_chars}",
            _ALPHA: f"alpha fraction {alpha.get(i, 0):.3f} < {spec.min_alpha_fraction}",
            _REPEAT: f"repeated-line fraction {repeat.get(i, 0):.3f} > "
                     f"{spec.max_repeated_line_fraction}",
        }[c]
        out.reject(corpus, source, loc, _REASON[c], detail, excerpt_of(text_of(i)))

    kept = np.flatnonzero(code == 0)
    if not len(kept):
        return out
    kept_list = kept.tolist()
    if changed:
        mask = np.zeros(n, bool)
        idx = sorted(changed)
        mask[idx] = True
        arr = pc.replace_with_mask(arr, pa.array(mask),
                                   pa.array([changed[i] for i in idx], pa.large_string()))
    text_kept = arr.take(pa.array(kept, pa.int64())) if len(kept) < n else arr
    k_offs, k_data, _ = _buffers(text_kept)
    h128 = xxhash.xxh3_128_hexdigest
    ko = k_offs.tolist()
    hashes = [h128(k_data[ko[j]:ko[j + 1]]) for j in range(len(kept_list))]
    prefix = f"{corpus}\x00{source}\x00".encode("utf-8", "surrogatepass")
    locs = [records.location[i] for i in kept_list]
    doc_ids = [h128(prefix + loc.encode("utf-8", "surrogatepass")) for loc in locs]

    forced = spec.lang
    src_langs = records.lang
    langs: list[str] = []
    scores: list[float | None] = []
    for i in kept_list:
        lang = forced or src_langs[i]
        score = None
        if lang is None:
            if spec.lang_id:
                lang, score = identify(text_of(i), spec.lang_id_min_score, spec.lang_id_chars,
                                           spec.lang_id_backend)
            else:
                lang = UNDETERMINED
        langs.append(lang)
        scores.append(score)
    k = len(kept_list)
    kept_nb = n_bytes[kept]
    out.table = pa.Table.from_arrays([
        pa.array(doc_ids, pa.string()),
        pa.array([corpus] * k, pa.string()),
        pa.array([source] * k, pa.string()),
        pa.array([records.source_id[i] for i in kept_list], pa.string()),
        pa.array(locs, pa.string()),
        pa.array(langs, pa.string()),
        pa.array(scores, pa.float32()),
        pa.array([records.align_key[i] for i in kept_list], pa.string()),
        text_kept,
        pa.array(kept_nb, pa.int64()),
        pa.array(n_chars[kept], pa.int64()),
        pa.array(hashes, pa.string()),
        pa.array([records.flags[i] for i in kept_list], pa.list_(pa.string())),
    ], schema=CORPUS_SCHEMA)
    out.langs.update(langs)
    out.kept_bytes = int(kept_nb.sum())
    return out
