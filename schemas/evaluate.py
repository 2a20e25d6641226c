"""The evaluate stage's contract: what to evaluate, on which text, and which gates decide.

``EvaluateSpec`` is the ``evaluate:`` section of pipeline.yaml (the pipeline fills in the
candidate tokenizer) and the CLI's ``tokenfoundry evaluate`` options. ``EvaluationResult``
(``.model_dump(mode="json")``) is exactly the CLI's ``--json`` object (see ../shared/CLI.md).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tokenfoundry.schemas.config import Spec

#: Reference tokenizers that load offline from installed packages (short name -> aliases).
REFERENCE_NAMES: tuple[str, ...] = ("o200k", "cl100k", "llama3", "qwen3", "gpt2")
DEFAULT_REFERENCES: tuple[str, ...] = REFERENCE_NAMES


class EvaluateSpec(Spec):
    """What ``tokenfoundry evaluate`` measures. The first of ``tokenizers`` is the candidate
    that the gates judge; ``references`` are evaluated side by side on the same text."""

    tokenizers: list[str] = Field(
        default_factory=list,
        description="Candidate tokenizers: a tokenizer.json, an HF/AutoTokenizer directory, a "
        "sentencepiece .model, a registry ref NAME@VERSION, or a reference name. Prefix with "
        "LABEL= to name it in reports (legal=out/legal). The first one is the gated candidate.")
    texts: list[str] = Field(
        default_factory=list,
        description="Held-out text: txt/md files (one document each), jsonl or parquet (a "
        "'text' column; optional 'lang' and 'doc_id'), or directories of those.")
    corpora: list[str] = Field(
        default_factory=list,
        description="Workspace corpora whose held-out documents (storage.splits.is_heldout) are "
        "evaluated; needs holdout_fraction and workspace.")
    corpus_ref: str = Field("latest", description="Snapshot ref or id of each corpus.")
    holdout_fraction: float | None = Field(
        None, gt=0.0, le=1.0,
        description="The trainer's held-out fraction; only documents the trainer never saw.")
    workspace: str | None = Field(None, description="Workspace root (needed for corpora).")
    registry: str | None = Field(
        None, description="Registry URI for NAME@VERSION tokenizers (default: the workspace's).")
    parallel: str | None = Field(
        None, description="Parquet of aligned segments (seg_id, lang, text) for premium/parity.")
    pivot_lang: str = Field("en", description="Language the premium is relative to.")
    max_unk_char_share: float = Field(
        0.1, ge=0.0, le=1.0,
        description="Drop parallel pairs where more than this share of either side's characters "
        "are covered by UNK tokens (Petrov et al. 2023).")
    references: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REFERENCES),
        description=f"Reference tokenizers evaluated side by side: {', '.join(REFERENCE_NAMES)}.")
    nsl_reference: str = Field("o200k", description="Reference of the headline NSL metric.")
    renyi_alpha: float = Field(2.5, gt=0.0, description="Order alpha of the Rényi efficiency.")
    gates: list[str] = Field(
        default_factory=list,
        description='Pass/fail rules on the candidate, e.g. "bytes_per_token >= 4.0", '
        '"roundtrip_errors == 0", "nsl[o200k] <= 0.9", "parity <= 1.5", "premium[de] <= 1.3".')
    max_listed_tokens: int = Field(
        50, ge=0, description="Cap on the unreachable / never-produced tokens listed by name.")
    max_docs: int | None = Field(
        None, gt=0, description="Evaluate at most this many documents per text source.")
    threads: int = Field(0, ge=0, description="Encoder threads (0 = all cores).")

    @field_validator("references")
    @classmethod
    def _known_references(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in REFERENCE_NAMES]
        if bad:
            raise ValueError(f"unknown reference(s) {bad}; choose from {list(REFERENCE_NAMES)}")
        return list(dict.fromkeys(v))

    @field_validator("nsl_reference")
    @classmethod
    def _known_nsl_reference(cls, v: str) -> str:
        if v not in REFERENCE_NAMES:
            raise ValueError(f"unknown reference {v!r}; choose from {list(REFERENCE_NAMES)}")
        return v

    @field_validator("gates")
    @classmethod
    def _gates_parse(cls, v: list[str]) -> list[str]:
        for g in v:  # parse_gate is defined below; resolved at call time
            parse_gate(g)
        return v

    @model_validator(mode="after")
    def _has_text(self) -> EvaluateSpec:
        if not self.texts and not self.corpora and not self.parallel:
            raise ValueError("nothing to evaluate on: give texts, corpora or parallel")
        if self.corpora and self.holdout_fraction is None:
            raise ValueError("corpora need holdout_fraction (the trainer's held-out fraction)")
        if self.corpora and not self.workspace:
            raise ValueError("corpora need workspace")
        if not self.tokenizers and not self.references:
            raise ValueError("no tokenizer to evaluate: give tokenizers or references")
        if self.gates and not self.tokenizers:
            raise ValueError("gates judge a candidate: give at least one entry in tokenizers")
        return self


# ---------------------------------------------------------------------------------------------
# Gates: the grammar lives with the schema so a spec is rejected before any work starts.

#: Scalar metrics a gate may name (all floats/ints of TokenizerMetrics).
GATE_SCALARS: tuple[str, ...] = (
    "bytes_per_token", "chars_per_token", "fertility", "continued_word_rate", "nsl",
    "vocab_utilization", "renyi_efficiency", "renyi_efficiency_full_vocab", "unk_rate",
    "byte_fallback_rate", "roundtrip_errors", "encode_mb_per_s", "parity", "premium_max",
    "premium_min", "premium_std", "unreachable_tokens", "never_produced_tokens",
    "partial_utf8_tokens", "mean_token_bytes", "vocab_size", "n_tokens",
    # language models (evaluate --model, the extend stage): tasks/evaluate/bits_per_byte.py
    "bits_per_byte", "bits_per_byte_vs_base", "bits_per_byte_vs_first", "token_reduction",
)
#: Keyed metrics: ``nsl[o200k]`` (NSL against that reference), ``premium[de]``.
GATE_KEYED: dict[str, str] = {"nsl": "nsl_by_reference", "premium": "premium"}
GATE_OPS: tuple[str, ...] = (">=", "<=", "==", "!=", ">", "<")

_GATE_RE = None


class Gate(BaseModel):
    """One parsed gate: ``metric[key] op threshold``."""

    model_config = ConfigDict(frozen=True)
    expr: str
    metric: str
    key: str | None = None
    op: str
    threshold: float

    @property
    def label(self) -> str:
        return f"{self.metric}[{self.key}]" if self.key else self.metric


def parse_gate(expr: str) -> Gate:
    """Parse ``"bytes_per_token >= 4.0"`` / ``"nsl[o200k] <= 0.9"`` strictly.

    Raises ValueError naming the expression and what is wrong (the CLI maps it to exit 2).
    """
    import re

    global _GATE_RE
    if _GATE_RE is None:
        _GATE_RE = re.compile(
            r"^\s*(?P<metric>[a-z_][a-z0-9_]*)\s*(?:\[\s*(?P<key>[A-Za-z0-9_@.\-]+)\s*\])?\s*"
            r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$")
    if not isinstance(expr, str):
        raise ValueError(f"gate {expr!r}: expected a string like 'bytes_per_token >= 4.0'")
    m = _GATE_RE.match(expr)
    if not m:
        raise ValueError(
            f"gate {expr!r}: not of the form 'METRIC OP NUMBER' or 'METRIC[KEY] OP NUMBER' "
            f"(OP one of {' '.join(GATE_OPS)}), e.g. 'bytes_per_token >= 4.0', 'nsl[o200k] <= 0.9'")
    metric, key = m["metric"], m["key"]
    if key is not None:
        if metric not in GATE_KEYED:
            raise ValueError(f"gate {expr!r}: metric {metric!r} takes no [key]; keyed metrics: "
                             f"{sorted(GATE_KEYED)}")
        if metric == "nsl" and key not in REFERENCE_NAMES:
            raise ValueError(f"gate {expr!r}: unknown NSL reference {key!r}; choose from "
                             f"{list(REFERENCE_NAMES)}")
    elif metric not in GATE_SCALARS:
        hint = " (it needs a [key], e.g. premium[de])" if metric == "premium" else ""
        raise ValueError(f"gate {expr!r}: unknown metric {metric!r}{hint}; known: "
                         f"{', '.join(GATE_SCALARS)}, nsl[REF], premium[LANG]")
    return Gate(expr=expr.strip(), metric=metric, key=key, op=m["op"], threshold=float(m["num"]))


# ---------------------------------------------------------------------------------------------
# Results


class GateResult(BaseModel):
    """One gate judged on the candidate."""

    expr: str
    metric: str
    key: str | None = None
    op: str
    threshold: float
    value: float | None
    passed: bool
    reason: str = ""
    denominator: int | None = Field(None, description="for counts: out of how many")
    unit: str | None = Field(None, description="what the count and denominator count")

    def text(self) -> str:
        """One line for people: "roundtrip_errors 4000 of 4000 documents, needs == 0"."""
        label = f"{self.metric}[{self.key}]" if self.key else self.metric
        if self.value is None:
            return f"{label}: {self.reason or 'not measured'}, needs {self.op} {self.threshold:g}"
        value = str(int(self.value)) if self.value == int(self.value) else f"{self.value:.6g}"
        of = f" of {self.denominator} {self.unit}" if self.denominator is not None else ""
        return (f"{label} {value}{of}, needs {self.op} {self.threshold:g}"
                f" ({'pass' if self.passed else 'FAIL'})")


class TokenLength(BaseModel):
    """Distribution of produced tokens' lengths in UTF-8 bytes (share per length; 16 = 16+)."""

    mean_bytes: float
    histogram: dict[str, float]


class TokenizerMetrics(BaseModel):
    """Every intrinsic metric of one tokenizer on the evaluation text."""

    name: str
    source: str
    kind: str
    is_reference: bool
    vocab_size: int
    n_docs: int
    n_tokens: int
    bytes_per_token: float | None
    chars_per_token: float | None
    fertility: float | None = Field(description="tokens per word (see README for 'word')")
    continued_word_rate: float | None = Field(description="share of words split into >= 2 tokens")
    nsl: float | None = Field(None, description="Σ|T(d)| / Σ|T_ref(d)| against nsl_reference")
    nsl_reference: str | None = None
    nsl_by_reference: dict[str, float] = Field(default_factory=dict)
    vocab_utilization: float | None
    renyi_efficiency: float | None = Field(description="H_α / log|V_observed| (tokenization-scorer)")
    renyi_efficiency_full_vocab: float | None = Field(description="H_α / log|V| (whole vocabulary)")
    renyi_alpha: float
    unk_rate: float | None
    byte_fallback_rate: float | None
    roundtrip_errors: int
    roundtrip_checked_docs: int
    roundtrip_examples: list[str]
    encode_mb_per_s: float | None
    token_length: TokenLength | None
    mean_token_bytes: float | None
    unreachable_tokens: int
    unreachable_examples: list[str]
    partial_utf8_tokens: int
    never_produced_tokens: int
    never_produced_examples: list[str]
    premium: dict[str, float] = Field(default_factory=dict)
    parity: float | None = Field(None, description="max premium / min premium over languages")
    premium_max: float | None = None
    premium_min: float | None = None
    premium_std: float | None = None
    parallel_pairs_used: dict[str, int] = Field(default_factory=dict)
    parallel_pairs_dropped_unk: dict[str, int] = Field(default_factory=dict)
    by_language: dict[str, dict[str, float | None]]
    by_dataset: dict[str, dict[str, float | None]]
    encode_seconds: float = Field(description="wall time of encode_batch on the text")
    metrics_seconds: float = Field(description="wall time of deriving every metric afterwards")
    bits_per_byte: float | None = Field(
        None, description="a causal LM's total NLL in bits / UTF-8 bytes of the text (--model); "
        "None when not computed")
    doc_tokens: list[int] = Field(default_factory=list, exclude=True, repr=False,
                                  description="tokens per document (for NSL by group; not saved)")

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of this tokenizer in ``--json`` / evaluation.json."""
        return self.model_dump(mode="json")

    def metric(self, name: str, key: str | None = None) -> Any:
        if key is None:
            return getattr(self, name)
        return getattr(self, GATE_KEYED[name]).get(key)


class DatasetInfo(BaseModel):
    name: str
    source: str
    kind: str = Field(description="text | parallel")
    docs: int
    bytes: int
    chars: int
    words: int
    languages: dict[str, int]


class EvaluationResult(BaseModel):
    """The evaluate stage's result; ``model_dump(mode='json')`` is the CLI's --json object."""

    tokenizers: dict[str, TokenizerMetrics]
    candidate: str | None
    references: list[str]
    nsl_reference: str
    renyi_alpha: float
    datasets: list[DatasetInfo]
    gates: list[GateResult]
    gates_passed: bool
    out: str
    metrics_path: str
    report_path: str
    json_path: str
    plots: list[str]
    seconds: float
    spec_hash: str
