"""Pre-tokenizer presets and normalisers for the HF backend.

The regexes are the published ones (GPT-2's encoder.py, tiktoken's cl100k_base / o200k_base,
Llama-3's tokenizer, which reuses cl100k's) plus lossless whitespace/digit variants. Every preset
is applied as ``Split(regex, behavior="isolated")`` so that no character is dropped, which keeps
byte-level tokenizers lossless. ``SUPERBPE_REGEX`` is SuperBPE's stage-2 pattern: it isolates
digit groups, punctuation runs and trailing spaces but no longer splits words from each other,
so merges can bridge spaces.
"""

from __future__ import annotations

from tokenfoundry.schemas.errors import BadInputError

_CONTRACTIONS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"

PRESET_REGEX: dict[str, str] = {
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "cl100k": (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+"),
    "o200k": (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
              + _CONTRACTIONS + r"?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+"
              r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]*" + _CONTRACTIONS + r"?|\p{N}{1,3}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    "whitespace": r" ?[^\s\p{N}]+|\p{N}+|\s+(?!\S)|\s+",
    "digits-1": (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+"),
    "digits-3": (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
}
PRESET_REGEX["gpt-4"] = PRESET_REGEX["cl100k"]
PRESET_REGEX["llama3"] = PRESET_REGEX["cl100k"]  # Llama 3 ships tiktoken's cl100k pattern

#: SuperBPE stage 2 (PythonNut/superbpe scripts): no word or whitespace splitting.
SUPERBPE_REGEX = r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]{2,}[\r\n/]*| +(?!\S)"


def preset_regex(name: str) -> str:
    try:
        return PRESET_REGEX[name]
    except KeyError:
        raise BadInputError(f"unknown pre-tokenizer preset {name!r}; choose one of "
                            f"{', '.join(sorted(PRESET_REGEX))}") from None


def split_pretokenizer(regex: str):
    """``Split(regex, isolated)``: lossless, every character stays in some piece."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False)


def byte_level_pretokenizer(regex: str):
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence([
        split_pretokenizer(regex),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def normalizer(normalization: str, lowercase: bool):
    """The HF normaliser for ``normalization`` (none/NFC/NFKC) and ``lowercase``, or None."""
    from tokenizers import normalizers

    steps = []
    if normalization == "NFC":
        steps.append(normalizers.NFC())
    elif normalization == "NFKC":
        steps.append(normalizers.NFKC())
    if lowercase:
        steps.append(normalizers.Lowercase())
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else normalizers.Sequence(steps)


def normalize_text(text: str, normalization: str, lowercase: bool) -> str:
    """Python-side equivalent of :func:`normalizer` (for alphabet estimates and spm input)."""
    import unicodedata

    if normalization in ("NFC", "NFKC"):
        text = unicodedata.normalize(normalization, text)
    return text.lower() if lowercase else text
