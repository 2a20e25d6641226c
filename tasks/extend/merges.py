"""Merge-aware vocabulary extension: continue BPE on the base tokenizer's own segmentation.

minbpe-style (karpathy/minbpe ``get_stats``/``merge``), but starting from the base model's
segmentation instead of raw bytes: pre-tokenise the target text with the base pre-tokenizer,
segment each distinct word with the base BPE model, count words, then repeatedly merge the most
frequent adjacent pair (counts weighted by word frequency), appending the merge and a vocabulary
entry ``id = V_old + k``. Pair counts are updated incrementally (only the words that contain the
merged pair are touched) and the best pair comes from a lazy max-heap.

Why this and not appending another tokenizer's merges or ``added_tokens``: HF BPE applies merges
by rank, so with every new merge ranked after the old ones the old merges run exactly as before
and the new ones only glue old tokens together. Every old token keeps its id, and expanding a new
token into its merge-tree leaves gives back the base ids (the extension refines the base). No
``tokenizers`` API does this (huggingface/tokenizers #839, transformers #28259), hence this module.

A merge is also refused when the token's own text, encoded alone, would not reach it (its base
segmentation as one word does not end in exactly the pair): every new token whose bytes are
complete UTF-8 then encodes to itself. Tokens that are partial UTF-8 characters are intermediate
steps that never stand alone.

Filters: ``script`` keeps only merges whose bytes, after one leading space, are all non-ASCII (a
new script: text in ASCII never meets a new merge); ``reference`` texts get a negative weight
``-reference_weight`` per word occurrence (default: target bytes / reference bytes, so the score
of a pair is its count on the target minus its per-byte-normalised count on the reference: the
gain on the domain over the gain on general text). Merges that produce an ASCII digit are never
learned (SmolLM2 has no multi-digit token and no digit splitter), nor merges whose string is
already a vocabulary entry or an added token.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from tokenizers import Tokenizer

from tokenfoundry.schemas.errors import BadInputError

FILTERS = ("none", "script", "reference")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-character -> byte map (the inverse of ``bytes_to_unicode``)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def is_byte_level(data: dict) -> bool:
    """Whether the tokenizer.json maps bytes to GPT-2's printable characters (ByteLevel)."""
    return "ByteLevel" in json.dumps(data.get("pre_tokenizer")) or \
        "ByteLevel" in json.dumps(data.get("decoder"))


def token_bytes(token: str, byte_level: bool) -> bytes:
    """The bytes a vocabulary string stands for (ByteLevel, or sentencepiece-style ▁/<0xNN>)."""
    if byte_level:
        dec = _byte_decoder()
        return bytes(dec[c] for c in token)
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        return bytes([int(token[3:5], 16)])
    return token.replace("▁", " ").encode("utf-8")


@dataclass
class Extension:
    """What the merge learner produced (tokenizer.json data + the facts the report needs)."""

    data: dict
    """The extended tokenizer.json (old vocab + merges unchanged, new ones appended)."""
    n_old: int
    new_tokens: list[str] = field(default_factory=list)
    new_token_bytes: list[bytes] = field(default_factory=list)
    leaves: list[list[int]] = field(default_factory=list)
    """Base ids of each new token's merge-tree leaves."""
    merges: list[tuple[str, str]] = field(default_factory=list)
    counts: list[float] = field(default_factory=list)
    """The (weighted) pair count of each merge when it was chosen."""
    words: int = 0
    distinct_words: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Candidate pairs refused, by reason (script, digit, in_vocab, added_token)."""
    stopped: str = "new_tokens reached"


def count_words(tokenizer: Tokenizer, texts: Iterable[str]) -> tuple[Counter, int]:
    """Pre-tokenised word counts of the texts (the base normaliser + pre-tokenizer) and bytes."""
    norm, pre = tokenizer.normalizer, tokenizer.pre_tokenizer
    counts: Counter = Counter()
    n_bytes = 0
    for text in texts:
        n_bytes += len(text.encode("utf-8"))
        if norm is not None:
            text = norm.normalize_str(text)
        counts.update(w for w, _ in pre.pre_tokenize_str(text)) if pre is not None \
            else counts.update([text])
    return counts, n_bytes


def learn_merges(base_json: dict, texts: Iterable[str], n_new: int, *, filter: str = "none",
                 reference: Iterable[str] | None = None, reference_weight: float | None = None,
                 min_frequency: float = 2.0,
                 progress: Callable[[str, int, int | None], None] | None = None) -> Extension:
    """Learn ``n_new`` merges on the base tokenizer's segmentation of ``texts``.

    Score of a pair p = Σ_words c(w) · #p in w  (− reference_weight · the same over reference
    words under the ``reference`` filter); the best pair is merged everywhere, as BPE training
    does, until ``n_new`` tokens exist or no pair scores ``min_frequency``.
    """
    if filter not in FILTERS:
        raise BadInputError(f"filter {filter!r}: choose one of {', '.join(FILTERS)}")
    if filter == "reference" and reference is None:
        raise BadInputError("filter 'reference' needs reference text (extend.reference / "
                            "--reference PATH): general text of the same script")
    model = base_json["model"]
    if model.get("type") != "BPE":
        raise BadInputError(f"tokenizer model is {model.get('type')}, not BPE")
    tok = Tokenizer.from_str(json.dumps(base_json))
    vocab: dict[str, int] = dict(model["vocab"])
    n_old = tok.get_vocab_size(with_added_tokens=True)
    id_to_tok = {i: t for t, i in vocab.items()}
    added = {a["content"] for a in base_json.get("added_tokens", [])}
    byte_level = is_byte_level(base_json)

    if progress:
        progress("count words", 0, None)
    counts, tgt_bytes = count_words(tok, texts)
    weights: dict[str, float] = {w: float(c) for w, c in counts.items()}
    n_words = sum(counts.values())
    if filter == "reference":
        ref_counts, ref_bytes = count_words(tok, reference or [])
        if ref_bytes == 0:
            raise BadInputError("filter 'reference': the reference text is empty")
        lam = reference_weight if reference_weight is not None else tgt_bytes / ref_bytes
        for w, c in ref_counts.items():
            weights[w] = weights.get(w, 0.0) - lam * c

    # segment each distinct word with the base model (its own segmentation, ids)
    word_list = list(weights)
    words: list[list[int]] = []
    for i, w in enumerate(word_list):
        words.append([t.id for t in tok.model.tokenize(w)])
        if progress and i % 50_000 == 0:
            progress("segment words", i, len(word_list))
    wts = [weights[w] for w in word_list]

    stats: dict[tuple[int, int], float] = defaultdict(float)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for i, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            stats[pair] += wts[i]
            where[pair].add(i)
    heap = [(-c, p) for p, c in stats.items()]
    heapq.heapify(heap)

    leaves: dict[int, list[int]] = {}
    tok_bytes: dict[int, bytes] = {}
    ext = Extension(data=base_json, n_old=n_old, words=n_words, distinct_words=len(word_list))
    skipped: Counter = Counter()
    banned: set[tuple[int, int]] = set()

    def piece_bytes(i: int) -> bytes:
        if i not in tok_bytes:
            tok_bytes[i] = token_bytes(id_to_tok[i], byte_level)
        return tok_bytes[i]

    new_ranks: dict[tuple[int, int], int] = {}

    def alone(s: str) -> list[int]:
        """The current extended segmentation of the vocabulary string s as one word."""
        ids = [t.id for t in tok.model.tokenize(s)]
        while len(ids) > 1:
            ranked = [(new_ranks.get(p, 1 << 62), k) for k, p in enumerate(zip(ids, ids[1:]))]
            rank, k = min(ranked)
            if rank == 1 << 62:
                break
            ids[k:k + 2] = [n_old + rank]
        return ids

    def refusal(pair: tuple[int, int]) -> str | None:
        s = id_to_tok[pair[0]] + id_to_tok[pair[1]]
        if s in vocab:
            return "in_vocab"
        if s in added:
            return "added_token"
        b = piece_bytes(pair[0]) + piece_bytes(pair[1])
        if any(48 <= x <= 57 for x in b):
            return "digit"
        if filter == "script":
            core = b[1:] if b.startswith(b" ") else b
            if not core or any(x < 0x80 for x in core):
                return "script"
        try:
            text = b.decode("utf-8")
        except UnicodeDecodeError:
            return None  # a partial character: never a text on its own
        if [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(text)] != [s] if tok.pre_tokenizer \
                else False:
            return "not_one_word"
        if alone(s) != list(pair):
            return "unreachable_alone"
        return None

    while len(ext.new_tokens) < n_new and heap:
        neg, pair = heapq.heappop(heap)
        if pair in banned or stats.get(pair, 0.0) != -neg:
            continue  # stale heap entry
        if -neg < min_frequency:
            ext.stopped = f"no pair scores min_frequency {min_frequency}"
            break
        why = refusal(pair)
        if why:
            banned.add(pair)
            skipped[why] += 1
            continue
        new_id = n_old + len(ext.new_tokens)
        a, b = pair
        s = id_to_tok[a] + id_to_tok[b]
        vocab[s] = new_id
        id_to_tok[new_id] = s
        tok_bytes[new_id] = piece_bytes(a) + piece_bytes(b)
        leaves[new_id] = leaves.get(a, [a]) + leaves.get(b, [b])
        ext.new_tokens.append(s)
        ext.new_token_bytes.append(tok_bytes[new_id])
        ext.leaves.append(leaves[new_id])
        ext.merges.append((id_to_tok[a], id_to_tok[b]))
        ext.counts.append(-neg)
        new_ranks[pair] = len(ext.new_tokens) - 1
        changed: set[tuple[int, int]] = set()
        for i in list(where[pair]):
            ids, wt = words[i], wts[i]
            for p in zip(ids, ids[1:]):
                stats[p] -= wt
                changed.add(p)
            merged, j = [], 0
            while j < len(ids):
                if j + 1 < len(ids) and ids[j] == a and ids[j + 1] == b:
                    merged.append(new_id)
                    j += 2
                else:
                    merged.append(ids[j])
                    j += 1
            words[i] = merged
            for p in zip(merged, merged[1:]):
                stats[p] += wt
                where[p].add(i)
                changed.add(p)
        del stats[pair], where[pair]
        changed.discard(pair)
        for p in changed:
            if p not in banned:
                heapq.heappush(heap, (-stats[p], p))
        if progress and len(ext.new_tokens) % 200 == 0:
            progress("learn merges", len(ext.new_tokens), n_new)
    else:
        if len(ext.new_tokens) < n_new:
            ext.stopped = "no pair left"
    ext.skipped = dict(skipped)
    ext.data = extended_json(base_json, ext)
    return ext


def extended_json(base_json: dict, ext: Extension) -> dict:
    """The base tokenizer.json with the new vocabulary entries and merges appended."""
    data = json.loads(json.dumps(base_json))
    model = data["model"]
    for i, s in enumerate(ext.new_tokens):
        model["vocab"][s] = ext.n_old + i
    old = model["merges"]
    as_str = bool(old) and isinstance(old[0], str)
    model["merges"] = old + [f"{a} {b}" if as_str else [a, b] for a, b in ext.merges]
    return data
