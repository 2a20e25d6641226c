"""SuperBPE (Liu et al. 2025, PythonNut/superbpe) on the stock ``tokenizers`` package.

The authors resume BPE training in a fork of ``tokenizers``. Stock ``BpeTrainer`` cannot start
from given merges, so stage 2 is trained on the stage-1 *encoding* of the text instead:

1. Stage 1: ordinary byte-level BPE with the usual word-splitting regex, to ``t`` tokens
   (the transition point).
2. Re-encode the sample with the stage-1 merges under SuperBPE's stage-2 pre-tokenizer
   (``\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]{2,}[\\r\\n/]*| +(?!\\S)``: no word/space splitting), which
   is exactly what the final tokenizer does before its first stage-2 merge, since every
   stage-1 merge outranks every stage-2 merge.
3. Map each stage-1 token id to one private code point (``U+20000 + id``, never whitespace),
   one string per stage-2 chunk, and train a plain ``BpeTrainer`` on those strings (chunks
   separated by spaces, split by ``WhitespaceSplit``). Its merges are merges of stage-1
   tokens; the first ``V - t`` of them, mapped back to byte-level strings, are the stage-2
   merges.
4. Bound the superwords: the SuperBPE release caps a token at 4 words (``superbpe_max_words``);
   ``max_token_length`` (characters) applies too. The stock trainer cannot skip a pair, so
   stage 2 learns up to ``3 * (V - t)`` merges and keeps them in rank order, dropping a merge
   whose token is too long *and every later merge that builds on a dropped token* (such a
   merge could never fire), until ``V - t`` merges are kept.
5. Compose: vocabulary = stage-1 vocabulary + new tokens, merges = stage-1 merges then stage-2
   merges, pre-tokenizer = stage-2 regex + ByteLevel(use_regex=False).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tokenfoundry.schemas.train import TrainSpec
from tokenfoundry.tasks.train import hf, presets

_BASE = 0x20000  # planes 2..14: no whitespace, no surrogates
_MAX_IDS = 0xE0000 - _BASE
#: Stage-2 merges learnt per merge kept, so the length bounds can drop merges.
_OVERSHOOT = 3
#: A word inside a byte-level token: a run without space/newline/tab/CR (Ġ Ċ ĉ č).
_WORD = re.compile("[^\u0120\u010a\u0109\u010d]+")


def transition_point(spec: TrainSpec, vocab_size: int) -> int:
    t = spec.superbpe_transition or int(round(spec.superbpe_transition_fraction * vocab_size))
    return max(t, 256 + len(hf.specials_for(spec)) + 1)


def _stage2_runtime(stage1_json: dict[str, Any]) -> str:
    """The stage-1 tokenizer with SuperBPE's stage-2 pre-tokenizer (and no added tokens)."""
    data = json.loads(json.dumps(stage1_json))
    data["pre_tokenizer"] = json.loads(_pretokenizer_json())
    return json.dumps(data, ensure_ascii=False)


def _pretokenizer_json() -> str:
    from tokenizers import Tokenizer, models

    t = Tokenizer(models.BPE())
    t.pre_tokenizer = presets.byte_level_pretokenizer(presets.SUPERBPE_REGEX)
    return json.dumps(json.loads(t.to_str())["pre_tokenizer"])


def encode_chunks(tokenizer, texts: list[str]) -> list[str]:
    """Stage-1 ids of each stage-2 chunk as private-use strings, chunks joined by spaces."""
    out = []
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        if not enc.ids:
            continue
        ids = np.asarray(enc.ids, dtype=np.int64)
        words = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
        cps = (ids + _BASE).astype(np.uint32)
        breaks = np.nonzero(words[1:] != words[:-1])[0] + 1
        cps = np.insert(cps, breaks, 0x20)
        out.append(cps.astype("<u4").tobytes().decode("utf-32-le"))
    return out


def train_superbpe(spec: TrainSpec, vocab_size: int, batches: Callable[[], Iterator[list[str]]],
                   on_stage: Callable[[str], None] = lambda s: None) -> tuple[Any, dict[str, Any]]:
    """Two-stage SuperBPE; returns (tokenizer, info with the transition point and counts)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    t = transition_point(spec, vocab_size)
    if t >= _MAX_IDS:
        raise ValueError(f"superbpe transition point {t} too large (max {_MAX_IDS})")
    on_stage(f"superbpe stage 1: BPE to {t} tokens")
    stage1 = hf.train_hf(spec, t, batches)
    s1 = json.loads(stage1.to_str())
    vocab: dict[str, int] = dict(s1["model"]["vocab"])
    merges1 = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1))
               for m in s1["model"]["merges"]]
    n_new = vocab_size - stage1.get_vocab_size(with_added_tokens=True)
    info: dict[str, Any] = {"transition_point": t, "stage1_merges": len(merges1),
                            "stage1_vocab": stage1.get_vocab_size(with_added_tokens=True)}
    if n_new <= 0:
        info.update(stage2_merges=0, superword_tokens=0)
        return stage1, info

    on_stage(f"superbpe stage 2: {n_new} merges across spaces")
    runtime = Tokenizer.from_str(_stage2_runtime({**s1, "added_tokens": []}))
    id2tok = {i: s for s, i in vocab.items()}
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bounded = spec.superbpe_max_words is not None or spec.max_token_length is not None
    learn = n_new * (_OVERSHOOT if bounded else 1)
    trainer = trainers.BpeTrainer(vocab_size=len(vocab) + learn, min_frequency=spec.min_frequency,
                                  show_progress=False, special_tokens=[])

    def stage2_batches() -> Iterator[list[str]]:
        for batch in batches():
            yield encode_chunks(runtime, batch)

    trainer_tok.train_from_iterator(stage2_batches(), trainer=trainer)
    s2 = json.loads(trainer_tok.to_str())["model"]["merges"]

    def back(s: str) -> str:
        return "".join(id2tok[ord(c) - _BASE] for c in s)

    # ids: specials and stage-1 tokens keep theirs; new tokens follow, in merge order
    fixed: dict[str, int] = dict(vocab)
    nxt = max(fixed.values()) + 1
    merges2, reused, too_long = [], 0, 0
    dropped: set[str] = set()  # stage-2 tokens (private-use strings) that will never form
    for m in s2:
        if len(merges2) >= n_new:
            break
        a, b = (m if isinstance(m, list) else m.split(" ", 1))
        if a in dropped or b in dropped:
            dropped.add(a + b)
            continue
        pa, pb = a, b
        a, b = back(a), back(b)
        if not _within_bounds(a + b, spec.superbpe_max_words, spec.max_token_length):
            dropped.add(pa + pb)
            too_long += 1
            continue
        if a + b in fixed:
            reused += 1
        else:
            fixed[a + b] = nxt
            nxt += 1
        merges2.append((a, b))
    final = dict(s1)
    final["model"] = dict(s1["model"])
    final["model"]["vocab"] = fixed
    final["model"]["merges"] = [list(m) for m in merges1] + [list(m) for m in merges2]
    final["pre_tokenizer"] = json.loads(_pretokenizer_json())
    tok = Tokenizer.from_str(json.dumps(final, ensure_ascii=False))
    superwords = sum(1 for a, b in merges2 if _crosses_space(a + b))
    info.update(stage2_merges=len(merges2), superword_tokens=superwords,
                reused_token_strings=reused, dropped_too_long=too_long,
                max_words=spec.superbpe_max_words,
                max_token_words=max((_words(a + b) for a, b in merges2), default=0))
    return tok, info


def _words(token: str) -> int:
    """Words in a byte-level token (runs of characters other than space/newline/tab/CR)."""
    return len(_WORD.findall(token))


def _within_bounds(token: str, max_words: int | None, max_chars: int | None) -> bool:
    if max_words is not None and _words(token) > max_words:
        return False
    return max_chars is None or len(_decoded(token)) <= max_chars


def _decoded(token: str) -> str:
    from tokenizers import decoders

    return decoders.ByteLevel().decode([token])


def _crosses_space(token: str) -> bool:
    """A byte-level token with a space ('Ġ') after its first character: spans words."""
    return "Ġ" in token[1:] and token.strip("Ġ") != ""
