"""HF ``tokenizers`` trainers: byte-level BPE, BPE with byte fallback, Unigram, WordPiece,
character-level BPE (KL3M's "char" tokenizers: byte-level BPE whose tokens are at most
``max_token_length`` characters) and parity-aware BPE (``ParityBpeTrainer``).

Each builder configures a ``Tokenizer`` (normaliser, pre-tokenizer, decoder) and a trainer, then
feeds it ``batches()`` — a generator of text batches streamed from Parquet.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tokenfoundry.schemas.train import TrainSpec
from tokenfoundry.tasks.train import presets

#: Byte tokens of byte-fallback models, Llama/sentencepiece spelling.
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
CHAR_BPE_DEFAULT_MAX_LEN = 4

Batches = Callable[[], Iterator[list[str]]]


def specials_for(spec: TrainSpec) -> list[str]:
    """Special tokens in id order: the spec's, then the unk token where the model needs one."""
    specials = list(spec.special_tokens)
    needs_unk = spec.model in ("unigram", "wordpiece") or spec.byte_fallback
    if needs_unk and spec.unk_token not in specials:
        specials.append(spec.unk_token)
    return specials


def alphabet_floor(spec: TrainSpec, char_counts: dict[str, int]) -> tuple[int, str]:
    """The smallest vocabulary the model can have (alphabet + special tokens), and why."""
    n_special = len(specials_for(spec))
    if spec.backend == "hf" and spec.model in ("bpe", "char-bpe", "superbpe") and \
            not spec.byte_fallback:
        return 256 + n_special, f"256 byte symbols + {n_special} special tokens"
    total = sum(char_counts.values()) or 1
    if spec.backend == "spm" or spec.limit_alphabet:
        # characters needed to reach character_coverage (spm's own rule)
        cov = spec.character_coverage if spec.backend == "spm" else 1.0
        acc, need = 0, 0
        for c in sorted(char_counts.values(), reverse=True):
            if acc / total >= cov:
                break
            acc += c
            need += 1
        if spec.limit_alphabet:
            need = min(need, spec.limit_alphabet)
        extra = 256 if spec.byte_fallback else 0
        n = need + n_special + extra + (1 if spec.backend == "spm" else 0)
        return n, (f"{need} characters (coverage {cov}) + {n_special} special tokens"
                   + (" + 256 byte tokens" if extra else ""))
    n_chars = len(char_counts)
    extra = 256 if spec.byte_fallback else 0
    return n_chars + n_special + extra, (f"{n_chars} distinct characters + {n_special} special "
                                         "tokens" + (" + 256 byte tokens" if extra else ""))


def _byte_level(spec: TrainSpec, tokenizer, regex: str) -> None:
    from tokenizers import decoders, processors

    tokenizer.normalizer = presets.normalizer(spec.normalization, spec.lowercase)
    tokenizer.pre_tokenizer = presets.byte_level_pretokenizer(regex)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)


def build_tokenizer_and_trainer(spec: TrainSpec, vocab_size: int) -> tuple[Any, Any]:
    """A configured, untrained tokenizer and its trainer (every HF model but superbpe/parity)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    regex = presets.preset_regex(spec.preset)
    specials = specials_for(spec)
    common: dict[str, Any] = dict(vocab_size=vocab_size, show_progress=False,
                                  special_tokens=specials)
    if spec.limit_alphabet:
        common["limit_alphabet"] = spec.limit_alphabet
    if spec.model in ("bpe", "char-bpe", "superbpe") and not spec.byte_fallback:
        tok = Tokenizer(models.BPE())
        _byte_level(spec, tok, regex)
        max_len = spec.max_token_length
        if spec.model == "char-bpe" and max_len is None:
            max_len = CHAR_BPE_DEFAULT_MAX_LEN
        trainer = trainers.BpeTrainer(
            min_frequency=spec.min_frequency, max_token_length=max_len,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **common)
        return tok, trainer
    if spec.model == "bpe":  # character-level BPE with byte fallback (Llama-style)
        tok = Tokenizer(models.BPE(unk_token=spec.unk_token, byte_fallback=True, fuse_unk=True))
        tok.normalizer = presets.normalizer(spec.normalization, spec.lowercase)
        tok.pre_tokenizer = presets.split_pretokenizer(regex)
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        common["special_tokens"] = specials + [b for b in BYTE_TOKENS if b not in specials]
        trainer = trainers.BpeTrainer(min_frequency=spec.min_frequency,
                                      max_token_length=spec.max_token_length, **common)
        return tok, trainer
    if spec.model == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.normalizer = presets.normalizer(spec.normalization, spec.lowercase)
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            presets.split_pretokenizer(regex),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=False)])
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never", split=False)
        trainer = trainers.UnigramTrainer(unk_token=spec.unk_token,
                                          max_piece_length=spec.max_token_length or 16,
                                          **common)
        return tok, trainer
    if spec.model == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=spec.unk_token))
        tok.normalizer = presets.normalizer(spec.normalization, spec.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        if "[CLS]" in specials and "[SEP]" in specials:
            tok.post_processor = processors.TemplateProcessing(
                single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                special_tokens=[(t, specials.index(t)) for t in ("[CLS]", "[SEP]")])
        trainer = trainers.WordPieceTrainer(min_frequency=spec.min_frequency,
                                            continuing_subword_prefix="##", **common)
        return tok, trainer
    raise ValueError(f"no HF builder for model {spec.model!r}")


def finish_byte_fallback(tokenizer):
    """Byte tokens are vocabulary, not added tokens: drop them from ``added_tokens`` so that
    the text "<0x41>" is not matched literally, keeping their ids."""
    from tokenizers import Tokenizer

    data = json.loads(tokenizer.to_str())
    byte_set = set(BYTE_TOKENS)
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in byte_set]
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def train_hf(spec: TrainSpec, vocab_size: int, batches: Batches):
    """Train every HF model except superbpe / parity-aware; returns the trained Tokenizer."""
    tok, trainer = build_tokenizer_and_trainer(spec, vocab_size)
    tok.train_from_iterator(batches(), trainer=trainer)
    if spec.model == "bpe" and spec.byte_fallback:
        tok = finish_byte_fallback(tok)
    if spec.model == "unigram":
        tok = canonical_unigram(tok, len(specials_for(spec)))
    return tok


UNIGRAM_SCORE_DECIMALS = 4


def canonical_unigram(tokenizer, n_fixed: int):
    """Make a trained Unigram model independent of the trainer's hash-map iteration order.

    HF's UnigramTrainer sums EM statistics in hash-map order, which Rust randomises per
    process, so scores differ in the 11th digit and tied pieces swap places between runs.
    Scores are rounded to 1e-4 (far below any difference that changes a Viterbi path in
    practice) and pieces after the fixed special tokens are ordered by (score desc, piece).
    """
    from tokenizers import Tokenizer

    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    head = vocab[:n_fixed]
    rest = [[p, round(sc, UNIGRAM_SCORE_DECIMALS)] for p, sc in vocab[n_fixed:]]
    # characters the trainer appends below every learnt piece get scores min - k*eps in
    # hash order: give that same set of scores to the characters in code-point order
    # (below the last learnt piece, or in the band of consecutive lowest scores, which can hold
    # a learnt piece too)
    floor = min((sc for p, sc in rest if len(p) > 1), default=None)
    step = 2 * 10 ** -UNIGRAM_SCORE_DECIMALS
    lowest = sorted(rest, key=lambda x: x[1])
    band = lowest[:1]
    for prev, x in zip(lowest, lowest[1:]):
        if x[1] - prev[1] > step:
            break
        band.append(x)
    in_band = {id(x) for x in band}
    tail = [x for x in rest if len(x[0]) == 1
            and (id(x) in in_band or (floor is not None and x[1] < floor))]
    scores = sorted((x[1] for x in tail), reverse=True)
    for x, sc in zip(sorted(tail, key=lambda x: x[0]), scores):
        x[1] = sc
    rest.sort(key=lambda x: (-x[1], x[0]))
    new = head + rest
    unk = data["model"].get("unk_id")
    if unk is not None:
        data["model"]["unk_id"] = [p for p, _ in new].index(vocab[unk][0])
    data["model"]["vocab"] = new
    ids = {p: i for i, (p, _s) in enumerate(new)}
    for t in data["added_tokens"]:
        t["id"] = ids.get(t["content"], t["id"])
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def train_parity(spec: TrainSpec, vocab_size: int, train_iters: list[Iterable[list[str]]],
                 dev: list[list[str]]):
    """Parity-aware byte-level BPE: each merge goes to the language worst off on the dev set."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    specials = specials_for(spec)
    tok = Tokenizer(models.BPE())
    _byte_level(spec, tok, presets.preset_regex(spec.preset))
    num_merges = max(vocab_size - 256 - len(specials), 0)
    trainer = trainers.ParityBpeTrainer(
        num_merges=num_merges, variant=spec.parity_variant, min_frequency=spec.min_frequency,
        special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=spec.max_token_length)
    trainer.train_from_iterator(tok, train_iterators=train_iters, dev_iterators=dev)
    return tok


def pad_vocab(tokenizer, target: int) -> int:
    """Add ``<|reserved_N|>`` special tokens until the vocabulary has ``target`` entries."""
    have = tokenizer.get_vocab_size(with_added_tokens=True)
    if have >= target:
        return 0
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab(with_added_tokens=True)
    new, i = [], 0
    while have + len(new) < target:
        name = f"<|reserved_{i}|>"
        if name not in vocab:
            new.append(AddedToken(name, special=True, normalized=False))
        i += 1
    tokenizer.add_special_tokens(new)
    return len(new)
