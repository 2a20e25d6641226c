"""Language identification with py3langid (a langid.py port whose model ships in the wheel;
nothing is downloaded). One identifier per process, loaded on first use; it is read-only, so
threads share it.
"""

from __future__ import annotations

import threading

UNDETERMINED = "und"
_lock = threading.Lock()
_identifier = None


def identifier():
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def identify(text: str, min_score: float = 0.5, max_chars: int = 512) -> tuple[str, float]:
    """(ISO 639-1 code or 'und', confidence in [0, 1]) of the first ``max_chars`` of ``text``."""
    sample = text[:max_chars]
    if not any(ch.isalpha() for ch in sample[:256]):
        return UNDETERMINED, 0.0
    lang, score = identifier().classify(sample)
    if score < min_score:
        return UNDETERMINED, float(score)
    return lang, float(score)
