"""What a training run leaves in ``--out``: ``tokenizer.json``, the files that make the directory
loadable by ``transformers.AutoTokenizer.from_pretrained`` (written as plain JSON, so training
never imports ``transformers``), and ``train_report.json`` (written last)."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from typing import Any

from tokenfoundry.storage.workspace import atomic_write_bytes

TOKENIZER_JSON = "tokenizer.json"
REPORT = "train_report.json"

_ROLES = (  # (role, predicate on the lower-cased token)
    ("eos_token", lambda t: "endoftext" in t or "eos" in t or t in ("</s>", "<|end_of_text|>")),
    ("bos_token", lambda t: t in ("<s>", "<bos>", "<|begin_of_text|>") or "bos" in t),
    ("pad_token", lambda t: "pad" in t),
    ("unk_token", lambda t: "unk" in t),
    ("cls_token", lambda t: t == "[cls]"),
    ("sep_token", lambda t: t == "[sep]"),
    ("mask_token", lambda t: t in ("[mask]", "<mask>")),
)


def special_roles(specials: list[str]) -> dict[str, str]:
    """Map special tokens to transformers' roles (eos/bos/pad/unk/cls/sep/mask) by their names."""
    roles: dict[str, str] = {}
    for tok in specials:
        low = tok.lower()
        for role, pred in _ROLES:
            if role not in roles and pred(low):
                roles[role] = tok
                break
    return roles


def _write_json(path: str, obj: Any) -> None:
    import fsspec

    fs = fsspec.filesystem("file")
    atomic_write_bytes(fs, os.path.abspath(path),
                       (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def write_hf_dir(out_dir: str, tokenizer, specials: list[str], model_max_length: int) -> dict:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json; returns the roles."""
    import fsspec

    fs = fsspec.filesystem("file")
    atomic_write_bytes(fs, os.path.abspath(os.path.join(out_dir, TOKENIZER_JSON)),
                       tokenizer.to_str(pretty=True).encode())
    roles = special_roles(specials)
    extra = [t for t in specials if t not in roles.values()]
    config = {"tokenizer_class": "PreTrainedTokenizerFast",
              "model_max_length": model_max_length,
              "clean_up_tokenization_spaces": False,
              **roles}
    if extra:
        config["additional_special_tokens"] = extra
    _write_json(os.path.join(out_dir, "tokenizer_config.json"), config)
    stm = dict(roles)
    if extra:
        stm["additional_special_tokens"] = extra
    _write_json(os.path.join(out_dir, "special_tokens_map.json"), stm)
    return roles


def vocab_fingerprint(tokenizer) -> str:
    """sha256 of the model section (vocabulary, merges/scores) + added tokens: equal iff the
    trained tokenizer is the same, byte for byte."""
    data = json.loads(tokenizer.to_str())
    blob = json.dumps({"model": data["model"], "added": data["added_tokens"]},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's ``bytes_to_unicode`` inverted: byte-level character -> the byte it stands for."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars = dict(zip(keep, keep))
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


def vocab_stats(tokenizer, byte_level: bool) -> dict[str, Any]:
    """Size, merges, token-length histogram (in bytes for byte-level vocabularies)."""
    data = json.loads(tokenizer.to_str())
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    if byte_level:
        byte_of = byte_level_alphabet()
        # each character of a byte-level token stands for one byte (GPT-2's bytes_to_unicode);
        # decoding a lone byte >= 0x80 would give U+FFFD and count 3 bytes
        lengths = [len(t) if all(c in byte_of for c in t) else len(t.encode("utf-8"))
                   for t in vocab]
        unit = "bytes"
    else:
        lengths = [len(t.replace("▁", " ").replace("##", "")) for t in vocab]
        unit = "chars"
    hist = Counter(min(n, 16) for n in lengths)
    merges = data["model"].get("merges")
    return {
        "size": tokenizer.get_vocab_size(with_added_tokens=True),
        "model_vocab": len(vocab),
        "added_tokens": len(data["added_tokens"]),
        "merges": len(merges) if merges is not None else None,
        "length_unit": unit,
        "mean_token_length": round(sum(lengths) / max(len(lengths), 1), 3),
        "max_token_length": max(lengths, default=0),
        "length_histogram": {("16+" if k == 16 else str(k)): v for k, v in sorted(hist.items())},
    }


def write_report(out_dir: str, report: dict[str, Any]) -> str:
    path = os.path.join(out_dir, REPORT)
    _write_json(path, report)
    return path
