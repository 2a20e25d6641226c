"""Real-text corpus snapshots for the train tests (licences and gettext catalogs of this machine),
written straight into a workspace with tasks.train.snapshots.write_snapshot."""

from __future__ import annotations

import gettext
from pathlib import Path

import pytest

from tokenfoundry.tasks.train.snapshots import write_snapshot

LICENCES = Path("/usr/share/common-licenses")
LOCALE = Path("/usr/share/locale")


def legal_records(names=("GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1", "Artistic", "GFDL-1.3")):
    """Blank-line separated paragraphs of real licences: one document each."""
    out = []
    for n in names:
        p = LICENCES / n
        if not p.exists():
            pytest.skip(f"needs {p}")
        for i, para in enumerate(x.strip() for x in p.read_text(encoding="utf-8").split("\n\n")):
            if para:
                out.append({"text": para, "lang": "en", "source": str(p), "location": f"p:{i}"})
    return out


def gettext_records(langs=("de", "fr", "es", "ru", "ja"), domain="coreutils"):
    """Translated messages of one gettext domain, aligned across languages by msgid."""
    out = []
    for lang in langs:
        mo = LOCALE / lang / "LC_MESSAGES" / f"{domain}.mo"
        if not mo.exists():
            pytest.skip(f"needs {mo}")
        with mo.open("rb") as fh:
            catalog = gettext.GNUTranslations(fh)._catalog  # noqa: SLF001 - stdlib's parsed table
        for key in sorted(k for k in catalog if isinstance(k, str) and k):
            text = catalog[key].strip()
            if text:
                out.append({"text": text, "lang": lang, "source": str(mo), "location": key,
                            "align_key": key})
    return out


def legal_snapshot(ws, corpus="legal"):
    return write_snapshot(ws, corpus, legal_records())


def gettext_snapshot(ws, corpus="ui", **kw):
    return write_snapshot(ws, corpus, gettext_records(**kw))
