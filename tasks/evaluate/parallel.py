"""Parallel text: building aligned segments from gettext catalogs, and the token premium.

Token premium (Petrov et al. 2023, "Language Model Tokenizers Introduce Unfairness Between
Languages"): for language L and pivot P (English), over the segments aligned in both,

    premium(L) = Σ_s |T(s_L)| / Σ_s |T(s_P)|

after dropping pairs where more than 10 % of either side's characters end up as UNK. Parity
summarises the spread: ``parity = max premium / min premium`` over all languages (the pivot's
premium is 1), plus max, min and standard deviation.

gettext catalogs are parallel by construction: each ``.mo`` maps an English msgid to its
translation, so the msgid is the alignment key and the English text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.tasks.evaluate.adapters import Encoded, TokenizerAdapter

PARALLEL_SCHEMA = pa.schema([
    pa.field("seg_id", pa.string(), nullable=False),
    pa.field("lang", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("domain", pa.string()),
])


def seg_id_of(key: str) -> str:
    """Segment id of a gettext message: xxh3-64 hex of its alignment key, the same key ingest
    writes to ``align_key`` (``tasks.ingest.readers.gettext.message_key``: ``msgctxt\\x04msgid``,
    or the msgid alone)."""
    return xxhash.xxh3_64_hexdigest(key.encode("utf-8", "surrogatepass"))


def _catalog(path: Path) -> dict[str, str]:
    """``message key -> translation`` of one .mo catalog, read by ingest's gettext reader.

    Singular messages only (plural forms and the header are not segments). A catalog holding
    bytes that are not valid in the charset its header declares is left out whole (its text
    cannot be trusted as that language's); a file that is not a catalog, or breaks part-way,
    gives nothing.
    """
    from tokenfoundry.tasks.ingest.readers.gettext import CatalogError, MoCatalog, message_key

    out: dict[str, str] = {}
    with open(path, "rb") as fh:
        try:
            cat = MoCatalog(fh)
            for _i, ctxt, msgid, plural, forms in cat.messages(1 << 24):
                if plural is not None or forms is None or len(forms) != 1:
                    continue
                key = message_key(ctxt, msgid)
                try:
                    key.encode("utf-8")
                    forms[0].encode("utf-8")
                except UnicodeEncodeError:
                    return {}  # undecodable bytes (surrogate-escaped by the reader)
                out[key] = forms[0]
        except CatalogError:
            return {}
    return out


def build_parallel_from_mo(locale_dir: str | Path = "/usr/share/locale",
                           langs: Iterable[str] | None = None,
                           domains: Iterable[str] | None = None,
                           min_chars: int = 1, pivot: str = "en") -> pa.Table:
    """Aligned segments (seg_id, lang, text, domain) from ``<locale>/LC_MESSAGES/*.mo``.

    The English side is the msgid; each locale's msgstr is its translation; ``seg_id`` is
    :func:`seg_id_of` the message key. Plural forms and the catalog header are skipped; a
    message in several catalogs keeps the first translation (catalogs in sorted order).
    ``langs`` restricts locales (e.g. ``["de", "fr", "pt_BR"]``); ``domains`` restricts
    catalogs by file stem (e.g. ``["glib20", "gtk30"]``).
    """
    root = Path(locale_dir)
    if not root.is_dir():
        raise BadInputError(f"{root}: no such locale directory (expected <lang>/LC_MESSAGES/*.mo)")
    want_langs = set(langs) if langs is not None else None
    want_domains = set(domains) if domains is not None else None
    english: dict[str, tuple[str, str]] = {}
    rows_seg: list[str] = []
    rows_lang: list[str] = []
    rows_text: list[str] = []
    rows_dom: list[str] = []
    for loc in sorted(p for p in root.iterdir() if p.is_dir()):
        lang = loc.name
        if lang == pivot or (want_langs is not None and lang not in want_langs):
            continue  # the pivot side is the msgid itself
        seen: set[str] = set()
        for mo in sorted((loc / "LC_MESSAGES").glob("*.mo")):
            if want_domains is not None and mo.stem not in want_domains:
                continue
            for key, msgstr in _catalog(mo).items():
                if not key or len(msgstr.strip()) < min_chars:
                    continue
                sid = seg_id_of(key)
                if sid in seen:
                    continue
                seen.add(sid)
                en = key.split("\x04", 1)[-1]
                if len(en.strip()) < min_chars:
                    continue
                english.setdefault(sid, (en, mo.stem))
                rows_seg.append(sid)
                rows_lang.append(lang)
                rows_text.append(msgstr)
                rows_dom.append(mo.stem)
    if want_langs is None or pivot in want_langs:
        for sid, (en, dom) in english.items():
            rows_seg.append(sid)
            rows_lang.append(pivot)
            rows_text.append(en)
            rows_dom.append(dom)
    return pa.table({"seg_id": rows_seg, "lang": rows_lang, "text": rows_text,
                     "domain": rows_dom}, schema=PARALLEL_SCHEMA)


def write_parallel(table: pa.Table, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, p, compression="zstd")
    return p


def read_parallel(path: str | Path, pivot: str = "en", max_rows: int | None = None
                  ) -> tuple[list[str], list[str], list[str]]:
    """(seg_ids, langs, texts) from a Parquet file with seg_id, lang, text columns."""
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"--parallel {p}: no such file; give a Parquet file with columns "
                            "seg_id, lang, text")
    try:
        t = pq.read_table(p)
    except Exception as e:  # noqa: BLE001
        raise BadInputError(f"--parallel {p}: not a readable Parquet file: {e}") from None
    missing = [c for c in ("seg_id", "lang", "text") if c not in t.column_names]
    if missing:
        raise BadInputError(f"--parallel {p}: missing column(s) {missing}; needs seg_id, lang, "
                            "text (aligned segments)")
    if max_rows is not None:
        t = t.slice(0, max_rows)
    seg = [str(x) for x in t.column("seg_id").to_pylist()]
    lang = [str(x) for x in t.column("lang").to_pylist()]
    text = [x if isinstance(x, str) else "" for x in t.column("text").to_pylist()]
    if pivot not in set(lang):
        raise BadInputError(f"--parallel {p}: no segments in the pivot language {pivot!r}; the "
                            "premium is relative to it (set pivot_lang)")
    return seg, lang, text


def unk_char_share(adapter: TokenizerAdapter, enc: Encoded, texts: list[str]) -> np.ndarray:
    """Per segment: share of characters that end up as UNK (0 for tokenizers without UNK).

    Measured as the characters lost when the UNK tokens are dropped:
    ``1 - len(decode(ids without UNK)) / len(normalise(text))``.
    """
    share = np.zeros(len(texts), dtype=np.float64)
    if adapter.unk_id is None or len(enc.ids) == 0:
        return share
    docs = np.unique(np.repeat(np.arange(len(texts)), enc.counts)[enc.ids == adapter.unk_id])
    rest = [[t for t in ids if t != adapter.unk_id] for ids in enc.lists(docs.tolist())]
    for d, decoded in zip(docs.tolist(), adapter.decode_batch(rest)):
        n = max(len(adapter.normalize(texts[d])), 1)
        share[d] = max(0.0, 1.0 - len(decoded.strip()) / n)
    return share


def segment_codes(seg_ids: list[str], langs: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(distinct seg ids, seg code per row, distinct languages, language code per row, first
    row of each (seg_id, lang)) - text-side, the same for every tokenizer: compute once."""
    seg_u, seg_code = np.unique(np.asarray(seg_ids, dtype=object).astype(str), return_inverse=True)
    lang_u, lang_code = np.unique(np.asarray(langs, dtype=object).astype(str), return_inverse=True)
    # one segment per (seg_id, lang): later duplicates are ignored
    pair = seg_code.astype(np.int64) * len(lang_u) + lang_code
    _, first = np.unique(pair, return_index=True)
    keep = np.zeros(len(pair), dtype=bool)
    keep[first] = True
    return seg_u, seg_code, lang_u, lang_code, keep


def token_premium(seg_ids: list[str], langs: list[str], counts: np.ndarray,
                  unk_share: np.ndarray, pivot: str = "en", max_unk_share: float = 0.1,
                  codes: tuple | None = None
                  ) -> tuple[dict[str, float], dict[str, int], dict[str, int]]:
    """Premium per language vs ``pivot``; also pairs used and pairs dropped for UNK, per language.

    Segment ids and languages become integer codes (``codes``: a precomputed
    :func:`segment_codes` of the same rows); sums are bincounts.
    """
    seg_u, seg_code, lang_u, lang_code, keep = codes or segment_codes(seg_ids, langs)
    if pivot not in set(lang_u.tolist()):
        return {}, {}, {}
    p = int(np.flatnonzero(lang_u == pivot)[0])
    counts = np.asarray(counts, dtype=np.float64)
    unk_share = np.asarray(unk_share)
    n_l = len(lang_u)
    ok = (unk_share <= max_unk_share) & keep
    piv_count = np.full(len(seg_u), -1.0)
    piv_ok = np.zeros(len(seg_u), dtype=bool)
    is_p = (lang_code == p) & keep
    piv_count[seg_code[is_p]] = counts[is_p]
    piv_ok[seg_code[is_p]] = ok[is_p]
    has_pair = (piv_count[seg_code] >= 0) & keep
    valid = has_pair & ok & piv_ok[seg_code]
    dropped = has_pair & ~valid
    sum_l = np.bincount(lang_code[valid], weights=counts[valid], minlength=n_l)
    sum_p = np.bincount(lang_code[valid], weights=piv_count[seg_code[valid]], minlength=n_l)
    used = np.bincount(lang_code[valid], minlength=n_l)
    drop = np.bincount(lang_code[dropped], minlength=n_l)
    premium = {str(lang_u[i]): float(sum_l[i] / sum_p[i]) for i in range(n_l)
               if used[i] > 0 and sum_p[i] > 0}
    return (premium, {str(lang_u[i]): int(used[i]) for i in range(n_l)},
            {str(lang_u[i]): int(drop[i]) for i in range(n_l) if drop[i]})


def parity_summary(premium: dict[str, float]) -> dict[str, float | None]:
    """parity = max/min premium, with premium_max, premium_min, premium_std (spread)."""
    if not premium:
        return {"parity": None, "premium_max": None, "premium_min": None, "premium_std": None}
    v = np.array(list(premium.values()), dtype=np.float64)
    return {"parity": float(v.max() / v.min()) if v.min() > 0 else None,
            "premium_max": float(v.max()), "premium_min": float(v.min()),
            "premium_std": float(v.std())}
