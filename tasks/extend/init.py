"""The contract between the extension stage and its embedding initialisations.

The extension stage (``tasks/extend/core.py``) learns new BPE merges on the base tokenizer's own
segmentation of the target text, then asks one initialisation method for the new rows of the
embedding matrix. Every method is a plain function ``init_<name>(ctx: InitContext) -> InitResult``
in its own module, registered by dotted path in ``METHODS`` so that importing this module does not
import torch, gensim or any method's dependencies.

Old rows are never touched by a method: the stage copies them bit for bit and appends the rows a
method returns (ids ``V_old .. V_old + n_new - 1``, in the order of ``ctx.new_tokens``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class InitContext:
    """Everything an initialisation may read. Arrays are float32 and never modified."""

    embeddings: np.ndarray
    """(V_old, d) input embeddings of the base model (old rows)."""
    output_embeddings: np.ndarray | None
    """(V_old, d) output embeddings when the base model's are untied, else None (tied)."""
    old_tokens: list[str]
    """Vocabulary strings of the base tokenizer, by id (byte-level BPE form, e.g. 'Ġthe')."""
    old_token_bytes: list[bytes]
    """The UTF-8 bytes each old token stands for, by id (may be a partial UTF-8 sequence)."""
    new_tokens: list[str]
    """Vocabulary strings of the new tokens; new token i has id V_old + i."""
    new_token_bytes: list[bytes]
    """The bytes each new token stands for."""
    leaves: list[list[int]]
    """Base ids of each new token's merge-tree leaves (its base segmentation), in order."""
    target_texts: Callable[[], Iterator[str]]
    """Re-iterable target text (the extension corpus); each call starts a new pass."""
    tokenizer_path: Path
    """The extended tokenizer.json (old + new merges)."""
    base_tokenizer_path: Path
    """The base tokenizer.json."""
    init_std: float
    """The base model's initializer_range (std of a fresh embedding row)."""
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    """Method-specific options from ``extend.init_params`` / ``--init-param KEY=VALUE``."""
    progress: Callable[[str, int, int | None], None] | None = None
    """progress(stage, done, total) for long methods; None when nobody listens."""

    @property
    def n_old(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def n_new(self) -> int:
        return len(self.new_tokens)


@dataclass
class InitResult:
    rows: np.ndarray
    """(n_new, d) float32 new input-embedding rows."""
    output_rows: np.ndarray | None = None
    """(n_new, d) new output-embedding rows when the base is untied, else None."""
    fallbacks: dict[str, int] = field(default_factory=dict)
    """Why how many new tokens did not get the method's own row (reason -> count)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Method facts for extend_report.json (dictionary size, support, steps, seconds, ...)."""


class InitError(ValueError):
    """A method cannot run with what it was given (e.g. a missing dictionary); names the fix."""


METHODS: dict[str, str] = {
    "random": "tokenfoundry.tasks.extend.baselines:init_random",
    "mean": "tokenfoundry.tasks.extend.baselines:init_mean",
    "univariate": "tokenfoundry.tasks.extend.baselines:init_univariate",
    "multivariate": "tokenfoundry.tasks.extend.baselines:init_multivariate",
    "fvt": "tokenfoundry.tasks.extend.baselines:init_fvt",
    "wechsel": "tokenfoundry.tasks.extend.wechsel:init_wechsel",
    "cw2v": "tokenfoundry.tasks.extend.cw2v:init_cw2v",
    "cw2v-fvt": "tokenfoundry.tasks.extend.cw2v:init_cw2v_fvt",
    "focus": "tokenfoundry.tasks.extend.focus:init_focus",
}


def initialise(method: str, ctx: InitContext) -> InitResult:
    """Run one initialisation method and check the shape of what it returns."""
    if method not in METHODS:
        raise InitError(f"unknown init {method!r}: choose one of {', '.join(METHODS)}")
    module, _, name = METHODS[method].partition(":")
    fn = getattr(importlib.import_module(module), name)
    result: InitResult = fn(ctx)
    d = ctx.embeddings.shape[1]
    if result.rows.shape != (ctx.n_new, d):
        raise AssertionError(f"{method}: rows {result.rows.shape}, expected {(ctx.n_new, d)}")
    result.rows = np.ascontiguousarray(result.rows, dtype=np.float32)
    return result
