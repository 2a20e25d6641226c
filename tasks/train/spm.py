"""sentencepiece trainers (BPE, Unigram) fed through ``sentence_iterator`` (no temp file), and a
conversion of the trained model to ``tokenizer.json`` written with ``tokenizers`` alone.

sentencepiece trains on sentences: documents are split into lines, and lines longer than
``max_sentence_length`` bytes are cut (sentencepiece would silently skip them). ``<unk>`` has id
0 and the spec's special tokens (user-defined symbols) follow with ids 1..k; no BOS/EOS pieces
are added unless listed as special tokens.

The conversion mirrors what ``transformers``' slow->fast converters do for Llama-style models
(Metaspace-like normaliser ``Prepend('▁') + Replace(' ', '▁')``, byte fallback decoder; BPE merges
recovered from the vocabulary ranked by piece id) without importing ``transformers``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

from tokenfoundry.schemas.train import TrainSpec


def _sentences(batches: Iterator[list[str]], max_bytes: int) -> Iterator[str]:
    limit_chars = max(max_bytes // 4, 1)
    for batch in batches:
        for doc in batch:
            for line in doc.split("\n"):
                if not line.strip():
                    continue
                if len(line) * 4 <= max_bytes or len(line.encode("utf-8")) <= max_bytes:
                    yield line
                else:
                    for i in range(0, len(line), limit_chars):
                        yield line[i:i + limit_chars]


def normalization_rule(spec: TrainSpec) -> str:
    if spec.normalization == "NFKC":
        return "nfkc_cf" if spec.lowercase else "nfkc"
    return "identity"


def train_spm(spec: TrainSpec, vocab_size: int, batches: Callable[[], Iterator[list[str]]],
              out_prefix: str) -> dict[str, Any]:
    """Train; writes ``<out_prefix>.model`` and ``.vocab``; returns info."""
    import sentencepiece as spm

    specials = [t for t in spec.special_tokens if t != spec.unk_token]
    spm.set_random_generator_seed(spec.seed + 1)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_sentences(batches(), spec.max_sentence_length),
        model_writer=model,
        model_type=spec.model,
        vocab_size=vocab_size,
        character_coverage=spec.character_coverage,
        byte_fallback=spec.byte_fallback,
        split_digits=spec.split_digits,
        input_sentence_size=spec.input_sentence_size,
        shuffle_input_sentence=True,
        max_sentence_length=spec.max_sentence_length,
        normalization_rule_name=normalization_rule(spec),
        remove_extra_whitespaces=False,
        hard_vocab_limit=False,
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
        unk_piece=spec.unk_token,
        user_defined_symbols=specials,
        max_sentencepiece_length=spec.max_token_length or 16,
        num_threads=1 if spec.deterministic else (os.cpu_count() or 1),
        minloglevel=2,
    )
    with open(out_prefix + ".model", "wb") as fh:
        fh.write(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    with open(out_prefix + ".vocab", "w", encoding="utf-8") as fh:
        for i in range(sp.get_piece_size()):
            fh.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n")
    return {"pieces": sp.get_piece_size()}


def to_hf_tokenizer(model_path: str, spec: TrainSpec):
    """A ``tokenizers.Tokenizer`` equivalent to the sentencepiece model at ``model_path``."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

    sp = spm.SentencePieceProcessor(model_file=model_path)
    n = sp.get_piece_size()
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(n)]
    user = [i for i in range(n) if sp.is_control(i)]
    user += [sp.piece_to_id(t) for t in spec.special_tokens
             if t != spec.unk_token and sp.piece_to_id(t) != sp.unk_id()]
    if spec.model == "unigram":
        tok = Tokenizer(models.Unigram(pieces, unk_id=sp.unk_id(),
                                       byte_fallback=spec.byte_fallback))
    else:
        vocab = {p: i for i, (p, _s) in enumerate(pieces)}
        skip = set(user) | {sp.unk_id()} | {i for i in range(n) if sp.is_byte(i)}
        merges = []
        for pid, (piece, _s) in enumerate(pieces):
            if pid in skip or len(piece) < 2:
                continue
            cands = []
            for k in range(1, len(piece)):
                left, right = piece[:k], piece[k:]
                if left in vocab and right in vocab:
                    cands.append((vocab[left], vocab[right], left, right))
            cands.sort()
            merges.extend((left, right) for _l, _r, left, right in cands)
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges,
                                   unk_token=sp.id_to_piece(sp.unk_id()),
                                   byte_fallback=spec.byte_fallback, fuse_unk=True))
    steps = []
    if spec.normalization == "NFKC":
        steps.append(normalizers.NFKC())
        if spec.lowercase:
            steps.append(normalizers.Lowercase())
    steps += [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(sp.id_to_piece(i), special=True, normalized=False)
                            for i in [sp.unk_id(), *user]])
    return tok


def agreement(model_path: str, tokenizer, texts: list[str]) -> float:
    """Fraction of ``texts`` that the HF conversion encodes to exactly the spm ids."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model_path)
    texts = [t for t in texts if t.strip()]
    if not texts:
        return 1.0
    same = sum(1 for t in texts
               if sp.encode(t) == tokenizer.encode(t, add_special_tokens=False).ids)
    return same / len(texts)
