"""A tiny randomly initialised Llama with a real byte-level BPE tokenizer (trained in a second on
this machine's licences), and real Ukrainian / English text from gettext catalogs and licences."""

from __future__ import annotations

import gettext
from pathlib import Path

import pytest

LICENCES = Path("/usr/share/common-licenses")
LOCALE = Path("/usr/share/locale")


def english_docs(names=("GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1")) -> list[str]:
    out = []
    for n in names:
        p = LICENCES / n
        if not p.exists():
            pytest.skip(f"needs {p}")
        out += [x.strip() for x in p.read_text(encoding="utf-8").split("\n\n") if x.strip()]
    return out


def gettext_docs(lang: str = "uk", domains=("coreutils", "tar", "bash", "sed", "grep", "wget",
                                            "diffutils", "findutils", "gzip", "cpio")) -> list[str]:
    """Translated messages (msgstr) of a few gettext domains, one document each."""
    out = []
    for domain in domains:
        mo = LOCALE / lang / "LC_MESSAGES" / f"{domain}.mo"
        if not mo.exists():
            continue
        with mo.open("rb") as fh:
            catalog = gettext.GNUTranslations(fh)._catalog  # noqa: SLF001 - stdlib's parsed table
        out += [v.strip() for k, v in sorted(catalog.items(), key=lambda kv: str(kv[0]))
                if isinstance(v, str) and k and v.strip()]
    if len(out) < 200:
        pytest.skip(f"needs gettext catalogs in {LOCALE / lang}")
    return out


def tiny_base(dest: Path, *, tied: bool = True, vocab_size: int = 400, seed: int = 0) -> Path:
    """A saved HF causal-LM dir: byte-level BPE (English licences) + random 2-layer Llama."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    dest.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(english_docs(), trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>").save_pretrained(dest)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=tied,
                         bos_token_id=0, eos_token_id=0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(dest, safe_serialization=True)
    return dest
