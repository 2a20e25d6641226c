"""Bilingual dictionaries (English -> target language) for WECHSEL's Procrustes alignment, offline.

WECHSEL (Minixhofer et al., NAACL 2022) aligns the source and target static word vectors with
orthogonal Procrustes over bilingual-dictionary pairs; its repository ships MUSE-style
``english<TAB>target`` word lists (CPJKU/wechsel ``dicts/data/<language>.txt``) that it downloads.
Nothing is downloaded here; the sources are what Debian installs:

- ``freedict-eng-XXX`` (e.g. ``freedict-eng-deu``): a FreeDict dictd database
  (``/usr/share/dictd/freedict-eng-XXX.index`` + ``.dict.dz``, package ``dict-freedict-eng-XXX``).
  Pairs are one-word headwords with each one-word translation on the definition's first line
  (grammar tags ``<...>``, ``[...]`` and ``(...)`` removed): ~270k pairs for eng-deu.
- ``gettext:LL`` (e.g. ``gettext:uk``): one-word ``msgid -> msgstr`` pairs of the installed gettext
  catalogs ``/usr/share/locale/LL/LC_MESSAGES/*.mo`` (accelerators ``_``/``&`` and a trailing
  ``:``/``.``/``…`` removed). Debian 12 has no English-Ukrainian FreeDict; this gives ~11k pairs.
- a path to a text file of ``english<TAB>target`` lines (WECHSEL's format; any whitespace too).

``auto`` picks by target language: ``uk`` -> ``gettext:uk``, otherwise ``freedict-eng-<ISO 639-3>``.
A dictionary that is not installed raises InitError naming the file and the package to install.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
from pathlib import Path

from tokenfoundry.tasks.extend.init import InitError

DICTD_DIR = Path("/usr/share/dictd")
LOCALE_DIR = Path("/usr/share/locale")

# ISO 639-1 -> 639-3 for the FreeDict eng-XXX databases Debian packages (dict-freedict-eng-XXX).
ISO3 = {"de": "deu", "fr": "fra", "es": "spa", "it": "ita", "nl": "nld", "pt": "por", "sv": "swe",
        "pl": "pol", "ru": "rus", "cs": "ces", "fi": "fin", "el": "ell", "hu": "hun", "tr": "tur",
        "ja": "jpn", "hi": "hin", "ga": "gle", "lt": "lit", "ro": "ron", "sr": "srp", "bg": "bul",
        "da": "dan", "nb": "nor", "no": "nor", "cy": "cym", "sw": "swh", "ar": "ara", "zh": "zho",
        "hr": "hrv", "lv": "lav", "sk": "slk", "sl": "slv", "et": "est", "af": "afr", "id": "ind"}
GETTEXT_LANGS = {"uk"}  # languages with no FreeDict English dictionary in Debian 12

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_TAGS = re.compile(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)|\{[^}]*\}")
_B64 = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _one_word(s: str) -> str | None:
    s = s.strip()
    return s if _WORD.fullmatch(s) else None


def _b64(s: str) -> int:
    """dictd's base64 numbers (offsets and lengths in the .index file)."""
    v = 0
    for c in s:
        v = v * 64 + _B64[c]
    return v


def freedict_pairs(name: str, dictd_dir: Path = DICTD_DIR) -> list[tuple[str, str]]:
    """One-word (english, target) pairs of a FreeDict dictd database, in index order."""
    index, data = dictd_dir / f"{name}.index", dictd_dir / f"{name}.dict.dz"
    for p in (index, data):
        if not p.is_file():
            raise InitError(
                f"bilingual dictionary {name!r} not found: {p} is missing. Install it with "
                f"`apt-get install dict-{name}`, or pass --init-param dictionary=PATH.tsv "
                "(lines 'english<TAB>target')")
    with gzip.open(data) as fh:  # dictzip is gzip with a random-access table: read it whole
        body = fh.read()
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    with open(index, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            head = _one_word(parts[0]) if len(parts) == 3 else None
            if head is None:
                continue
            off, length = _b64(parts[1]), _b64(parts[2])
            entry = body[off:off + length].decode("utf-8", errors="replace").split("\n")
            if len(entry) < 2:
                continue
            for tr in _TAGS.sub("", entry[1]).split(","):
                w = _one_word(tr)
                if w is not None and (head, w) not in seen:
                    seen.add((head, w))
                    pairs.append((head, w))
    return pairs


def _clean_msg(s: str) -> str:
    return s.replace("_", "").replace("&", "").strip().rstrip(":.…").strip()


def gettext_pairs(lang: str, locale_dir: Path = LOCALE_DIR) -> list[tuple[str, str]]:
    """One-word (msgid, msgstr) pairs of the ``lang`` gettext catalogs (ingest's .mo parser)."""
    from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
    from tokenfoundry.tasks.ingest.readers import read_unit

    folder = locale_dir / lang / "LC_MESSAGES"
    files = sorted(folder.glob("*.mo")) if folder.is_dir() else []
    if not files:
        raise InitError(
            f"bilingual dictionary 'gettext:{lang}' not found: no {folder}/*.mo catalogs. Install "
            f"translated packages (e.g. `apt-get install language-pack-{lang}` or any package "
            f"with {lang} translations), or pass --init-param dictionary=PATH.tsv")
    spec = IngestSpec(corpus="dictionary", sources=[str(folder)], format="mo", include_msgid=True,
                      lang=lang)
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for i, path in enumerate(files):
        unit = IngestUnit(name=f"{i:05d}-0000", path=str(path), format="mo",
                          size=os.path.getsize(path))
        msgid: dict[str, str] = {}
        for records, _ in read_unit(unit, spec):
            for text, rec_lang, key in zip(records.text, records.lang, records.align_key):
                if key is None:
                    continue
                if rec_lang == "en":
                    msgid[key] = text
                elif key in msgid:
                    src, trg = _one_word(_clean_msg(msgid[key])), _one_word(_clean_msg(text))
                    if src and trg and (src, trg) not in seen:
                        seen.add((src, trg))
                        pairs.append((src, trg))
    return pairs


def tsv_pairs(path: Path) -> list[tuple[str, str]]:
    """``english<TAB>target`` lines (WECHSEL's dictionary format; any whitespace also splits)."""
    if not path.is_file():
        raise InitError(f"bilingual dictionary file {path} not found (expected lines "
                        "'english<TAB>target')")
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split("\t") if "\t" in line else line.split()
        if len(parts) == 2 and parts[0] and parts[1]:
            pairs.append((parts[0].strip(), parts[1].strip()))
    if not pairs:
        raise InitError(f"bilingual dictionary file {path} has no 'english<TAB>target' lines")
    return pairs


def resolve(spec: str, target_lang: str | None) -> str:
    """The concrete dictionary for ``spec`` ('auto' picks by the target language)."""
    if spec != "auto":
        return spec
    if not target_lang or target_lang == "und":
        raise InitError("wechsel: the target text's language could not be identified, so no "
                        "dictionary can be picked: pass --init-param dictionary=freedict-eng-XXX, "
                        "gettext:LL or PATH.tsv")
    if target_lang in GETTEXT_LANGS:
        return f"gettext:{target_lang}"
    if target_lang not in ISO3:
        raise InitError(f"wechsel: no known English-{target_lang} dictionary: pass "
                        "--init-param dictionary=PATH.tsv (lines 'english<TAB>target')")
    return f"freedict-eng-{ISO3[target_lang]}"


def load_dictionary(spec: str, target_lang: str | None = None, *, dictd_dir: Path = DICTD_DIR,
                    locale_dir: Path = LOCALE_DIR) -> tuple[str, list[tuple[str, str]]]:
    """(resolved name, pairs) for 'auto', 'freedict-eng-XXX', 'gettext:LL' or a file path."""
    name = resolve(spec, target_lang)
    if name.startswith("gettext:"):
        return name, gettext_pairs(name.partition(":")[2], locale_dir)
    if name.startswith("freedict-"):
        return name, freedict_pairs(name, dictd_dir)
    return name, tsv_pairs(Path(name))
