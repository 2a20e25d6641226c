"""Simple quality signals of a text, as in Gopher/C4-style heuristic filters.

- ``alpha_fraction``: letters / non-whitespace characters. Low values mean numbers, markup,
  symbols or mojibake rather than prose.
- ``repeated_line_fraction``: duplicated non-blank lines / non-blank lines (a line that occurs k
  times counts k-1 times). High values mean boilerplate, lists of the same line, spam.

ASCII text takes a ``bytes.translate`` fast path (C speed); other text counts with ``str``
predicates.
"""

from __future__ import annotations

import string

_LETTERS = string.ascii_letters.encode()
_SPACE = string.whitespace.encode()


def alpha_fraction(text: str) -> float:
    """Letters / non-whitespace characters (1.0 for an empty or all-space text)."""
    if text.isascii():
        b = text.encode("ascii")
        letters = len(b) - len(b.translate(None, _LETTERS))
        visible = len(b.translate(None, _SPACE))
    else:
        letters = sum(map(str.isalpha, text))
        visible = len(text) - sum(map(str.isspace, text))
    return letters / visible if visible else 1.0


def repeated_line_fraction(text: str, min_lines: int = 3) -> float:
    """Duplicated non-blank lines / non-blank lines; 0.0 below ``min_lines`` non-blank lines."""
    if "\n" not in text:
        return 0.0
    lines = [ln for ln in map(str.strip, text.split("\n")) if ln]
    if len(lines) < min_lines:
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)
