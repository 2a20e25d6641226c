"""A small real pipeline spec: licence texts (+ gettext catalogs when given), a 600-token BPE
gated beside GPT-2, published as tiny-bpe."""

from __future__ import annotations

from typing import Any


def tiny_spec(mo_files: list[str], **over: Any) -> dict[str, Any]:
    """The spec as a dict; each keyword replaces a section, or is merged into it when both the
    section and the value are dicts (``train={"vocab_size": 640}``)."""
    corpora = [{"corpus": "licences", "sources": ["/usr/share/common-licenses"], "lang": "en",
                "split_paragraphs": True, "min_chars": 100}]  # hundreds of paragraphs
    if mo_files:
        corpora.append({"corpus": "gettext", "sources": list(mo_files), "min_chars": 8})
    spec: dict[str, Any] = {
        "name": "tiny",
        "corpora": corpora,
        "dedup": {"threshold": 0.8},
        "train": {"corpora": [c["corpus"] for c in corpora], "model": "bpe", "vocab_size": 600,
                  "holdout_fraction": 0.1},
        "evaluate": {"references": ["gpt2"], "gates": ["roundtrip_errors == 0"]},
        "publish": {"name": "tiny-bpe", "aliases": ["latest"]},
    }
    return merged(spec, **over)


def merged(spec: dict[str, Any], **over: Any) -> dict[str, Any]:
    """A copy of ``spec`` with each keyword replacing a section, or merged into it when both are
    dicts."""
    out = dict(spec)
    for k, v in over.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
