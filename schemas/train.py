"""The train stage's contract: :class:`TrainSpec` (the ``train:`` section of pipeline.yaml, or the
flags / ``--spec`` file of ``tokenfoundry train``) and :class:`TrainResult` (exactly the
``--json`` object of the command).

Everything that can be checked without reading data is checked here (model/backend
combinations, vocabulary sizes, fractions); checks that need the data (alphabet size, empty
snapshots, languages without text) run in the core's planning step, still before training.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tokenfoundry.schemas.config import Spec

#: Models ``tokenfoundry train --model`` accepts.
MODELS = ("bpe", "unigram", "wordpiece", "char-bpe", "superbpe")
#: Pre-tokenizer presets (regexes in tasks/train/presets.py).
PRESETS = ("gpt2", "cl100k", "gpt-4", "o200k", "llama3", "whitespace", "digits-1", "digits-3")
#: Vocabulary rounding rules (the trained size is rounded UP; see ``round_vocab``).
ROUNDINGS = ("none", "multiple_of_64", "multiple_of_128", "power_of_two")

PresetName = Literal["gpt2", "cl100k", "gpt-4", "o200k", "llama3", "whitespace", "digits-1",
                     "digits-3"]


def rounded_vocab_size(vocab_size: int, rule: str) -> int:
    """``vocab_size`` rounded up by ``rule`` (one of :data:`ROUNDINGS`)."""
    if rule == "multiple_of_64":
        return -(-vocab_size // 64) * 64
    if rule == "multiple_of_128":
        return -(-vocab_size // 128) * 128
    if rule == "power_of_two":
        return 1 << (vocab_size - 1).bit_length()
    return vocab_size


class TrainSpec(Spec):
    """How to train one tokenizer (``tokenfoundry train`` / the ``train:`` section)."""

    # ---- data --------------------------------------------------------------------------------
    corpora: list[str] = Field(
        min_length=1,
        description="Corpus names of the workspace (their `ref` snapshot, default 'latest'), or "
        "paths: a Parquet file/directory with a 'text' column, or text files/directories.")
    ref: str = Field("latest", description="Snapshot ref (or id) used for corpus names.")
    languages: list[str] | None = Field(
        None, description="Train only on documents whose `lang` is one of these (ISO 639-1).")
    holdout_fraction: float = Field(
        0.05, ge=0.0, lt=1.0,
        description="Documents with storage.splits.is_heldout(doc_id, f) are never trained on; "
        "evaluation uses the same rule.")
    max_bytes: int | None = Field(
        None, ge=1, description="Budget of UTF-8 text bytes sampled (deterministically) for "
        "training; default all.")
    max_docs: int | None = Field(None, ge=1, description="Budget of documents; default all.")
    mix_by: Literal["none", "lang", "corpus"] = Field(
        "none", description="Temperature-sample over languages or corpora: p_i ∝ n_i^alpha "
        "(n_i = bytes of group i).")
    mix_alpha: float = Field(0.3, gt=0.0, le=1.0,
                             description="Temperature exponent alpha (1 = proportional).")
    upsample: bool = Field(
        True, description="With mixing, repeat documents of groups whose target exceeds their "
        "size (otherwise they are capped at what they have).")
    seed: int = Field(0, ge=0, description="Seed of the deterministic sample and of the trainers.")
    batch_size: int = Field(1000, ge=1, le=1_000_000,
                            description="Documents per batch streamed to the trainer.")

    # ---- model -------------------------------------------------------------------------------
    model: Literal["bpe", "unigram", "wordpiece", "char-bpe", "superbpe"] = Field(
        "bpe", description="bpe (byte-level, or with byte_fallback), unigram, wordpiece, "
        "char-bpe (tokens of at most max_token_length characters), superbpe (two-stage).")
    backend: Literal["hf", "spm"] = Field("hf", description="HF tokenizers or sentencepiece.")
    vocab_size: int = Field(ge=2, le=2_000_000, description="Target vocabulary size, special "
                            "tokens included.")
    round_vocab: Literal["none", "multiple_of_64", "multiple_of_128", "power_of_two"] = Field(
        "none", description="Round the vocabulary size up; a short vocabulary is padded with "
        "<|reserved_N|> tokens so the final size is exact.")
    min_frequency: int = Field(2, ge=0, description="Minimum pair frequency for a merge (HF).")
    pretokenizer: PresetName | None = Field(
        None, description="Pre-tokenizer preset; default cl100k for byte-level models, "
        "whitespace-style for unigram/wordpiece.")
    byte_fallback: bool = Field(
        False, description="bpe (hf): character-level BPE whose unknown characters fall back "
        "to <0xNN> byte tokens; spm: sentencepiece byte_fallback.")
    normalization: Literal["none", "NFC", "NFKC"] = Field("none",
                                                          description="Unicode normalisation.")
    lowercase: bool = Field(False, description="Lower-case the text (normaliser).")
    special_tokens: list[str] = Field(
        default_factory=lambda: ["<|endoftext|>", "<|pad|>"],
        description="Special tokens; they get the first ids, in this order.")
    unk_token: str = Field("<unk>", description="Unknown token (unigram, wordpiece, "
                           "byte_fallback, spm).")
    max_token_length: int | None = Field(
        None, ge=1, description="Longest token in characters (HF bpe/char-bpe; char-bpe "
        "default 4).")
    limit_alphabet: int | None = Field(None, ge=1, description="HF: keep at most this many "
                                       "initial characters.")
    superbpe_transition: int | None = Field(
        None, ge=1, description="SuperBPE: vocabulary size at the transition point t (stage 1 "
        "stops here); default superbpe_transition_fraction * vocab_size.")
    superbpe_transition_fraction: float = Field(
        0.8, gt=0.0, lt=1.0, description="SuperBPE: t as a fraction of vocab_size.")
    superbpe_max_words: int | None = Field(
        4, ge=1, description="SuperBPE: a stage-2 (superword) token spans at most this many "
        "words, as in the SuperBPE release (4); null for no bound. max_token_length bounds "
        "stage-2 tokens too.")
    parity_aware: bool = Field(
        False, description="bpe (hf, byte-level): parity-aware BPE (ParityBpeTrainer), one "
        "iterator per language, balanced on a parallel dev set aligned by align_key.")
    parity_dev_segments: int = Field(1000, ge=10, description="Parallel dev segments per "
                                     "language for parity-aware BPE.")
    parity_variant: Literal["base", "window"] = Field("base", description="ParityBpeTrainer "
                                                      "variant.")
    # ---- sentencepiece -----------------------------------------------------------------------
    character_coverage: float = Field(0.9995, gt=0.0, le=1.0,
                                      description="spm: characters covered by the alphabet.")
    split_digits: bool = Field(False, description="spm: split digits into single tokens.")
    input_sentence_size: int = Field(0, ge=0, description="spm: sample this many sentences "
                                     "(0 = all).")
    max_sentence_length: int = Field(16384, ge=16, description="spm: longest sentence (bytes); "
                                     "longer documents are cut into pieces.")
    # ---- execution ---------------------------------------------------------------------------
    strict: bool = Field(
        False, description="Fail (exit 1, nothing written) when the trainer learns fewer tokens "
        "than vocab_size asks (a small corpus); otherwise the shortfall is reported.")
    deterministic: bool = Field(
        True, description="Same data + spec -> the same vocabulary: sentencepiece runs "
        "single-threaded (HF models are deterministic, Unigram after canonical rounding).")

    @model_validator(mode="after")
    def _check(self) -> TrainSpec:
        if self.backend == "spm" and self.model not in ("bpe", "unigram"):
            raise ValueError(f"backend spm trains model bpe or unigram, not {self.model!r}; "
                             "use backend: hf for wordpiece, char-bpe and superbpe")
        if self.backend == "spm" and self.normalization == "NFC":
            raise ValueError("sentencepiece normalises with none or NFKC; use normalization: "
                             "NFKC or none (or backend: hf)")
        if self.backend == "spm" and self.lowercase and self.normalization != "NFKC":
            raise ValueError("sentencepiece lower-cases only together with NFKC "
                             "(nfkc_cf); set normalization: NFKC")
        if self.parity_aware and (self.model != "bpe" or self.backend != "hf"
                                  or self.byte_fallback):
            raise ValueError("parity_aware needs model: bpe, backend: hf, byte_fallback: false")
        if self.byte_fallback and self.backend == "hf" and self.model != "bpe":
            raise ValueError("byte_fallback (hf) applies to model bpe; use backend: spm for "
                             "unigram with byte fallback")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError("special_tokens has duplicates; list each token once")
        if any(not t for t in self.special_tokens):
            raise ValueError("special_tokens has an empty string")
        if self.superbpe_transition is not None and self.superbpe_transition >= self.vocab_size:
            raise ValueError("superbpe_transition must be below vocab_size")
        return self

    @property
    def target_vocab_size(self) -> int:
        return rounded_vocab_size(self.vocab_size, self.round_vocab)

    @property
    def preset(self) -> str:
        """The effective pre-tokenizer preset."""
        if self.pretokenizer:
            return "cl100k" if self.pretokenizer == "gpt-4" else self.pretokenizer
        if self.model in ("unigram", "wordpiece"):
            return "whitespace"
        return "cl100k"


class SnapshotRef(BaseModel):
    """One input of a training run."""

    model_config = ConfigDict(extra="forbid")

    corpus: str
    snapshot_id: str | None = None  # None for plain paths
    path: str | None = None


class VocabShortfall(BaseModel):
    """The trainer learned fewer tokens than asked: how many, and why."""

    model_config = ConfigDict(extra="forbid")

    asked: int  # target vocabulary size (after rounding), special tokens included
    got: int  # tokens learned (padding with reserved tokens not counted)
    why: str


class TrainResult(BaseModel):
    """The ``--json`` object of ``tokenfoundry train`` (and what train_flow returns)."""

    model_config = ConfigDict(extra="forbid")

    out: str
    vocab_size: int
    seconds: float
    peak_rss_mb: float
    model: str
    backend: str
    tokenizer_json: str | None = None  # path of tokenizer.json (HF, and spm converted)
    spm_model: str | None = None  # path of tokenizer.model (spm backend)
    report: str  # path of train_report.json
    snapshots: list[SnapshotRef]
    spec_hash: str
    docs: int  # documents fed to the trainer (repeats counted)
    bytes: int  # UTF-8 bytes fed to the trainer
    heldout_docs: int  # documents excluded by the held-out rule
    realised_mix: dict[str, float]  # group -> fraction of bytes fed
    special_tokens: dict[str, int]  # token -> id
    padded_tokens: int = 0  # reserved tokens added to reach the rounded vocabulary size
    vocab_sha256: str  # sha256 of the model's vocabulary + merges (identity for determinism)
    extra: dict[str, Any] = Field(default_factory=dict)
    requested_vocab_size: int | None = None  # the target asked for (vocab_size, rounded)
    shortfall: VocabShortfall | None = None  # set when fewer tokens were learned than asked
