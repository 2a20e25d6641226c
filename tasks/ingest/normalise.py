"""Text normalisation: BOM, line endings, Unicode normal form, control characters.

The order matters and is fixed: strip a leading BOM, turn CRLF/CR into LF, normalise to NFC (or
NFKC), then drop control characters other than newline and tab (Unicode category Cc). The
content hash is taken of the result, so two texts that differ only in these respects dedupe.
Fast paths (``is_normalized``, a regex search before substituting) keep clean text cheap.
"""

from __future__ import annotations

import re
import unicodedata

#: Cc except \t and \n (\r is turned into \n before this runs).
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def normalise_text(text: str, form: str = "NFC", controls: bool = True) -> str:
    """The normalised form of one text (see the module docstring for the steps).

    ``controls=False`` skips the line-ending and control-character steps, for a text already
    known to hold no control character (the core screens whole batches for them at once).
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    if controls and "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii() and not unicodedata.is_normalized(form, text):  # ASCII: NFC and NFKC
        text = unicodedata.normalize(form, text)
    if controls and CONTROL.search(text):
        text = CONTROL.sub("", text)
    return text
