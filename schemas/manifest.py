"""Manifests: the commit point of every snapshot (``_manifest.json``, written last)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class InputFile(BaseModel):
    """One input of a stage, fingerprinted so the snapshot id is content-addressed."""

    model_config = ConfigDict(extra="forbid")

    path: str
    size: int
    xxh3_128: str


class DataFile(BaseModel):
    """One Parquet file of a snapshot, relative to the snapshot directory."""

    model_config = ConfigDict(extra="forbid")

    path: str
    rows: int
    bytes: int


class SnapshotManifest(BaseModel):
    """What a snapshot is, where it came from and what it holds.

    ``snapshot_id`` is derived from the stage, the spec and the inputs (or the parent snapshot),
    never from time, so the same inputs and spec always give the same id.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    snapshot_id: str
    corpus: str
    stage: str  # "ingest" | "dedup" | ...
    parent: str | None = None  # the snapshot this one was derived from
    spec: dict[str, Any] = Field(default_factory=dict)
    spec_hash: str = ""
    inputs: list[InputFile] = Field(default_factory=list)
    files: list[DataFile] = Field(default_factory=list)  # the documents (CORPUS_SCHEMA)
    extra_files: dict[str, list[DataFile]] = Field(default_factory=dict)  # rejects, clusters, ...
    counts: dict[str, int] = Field(default_factory=dict)
    stats: dict[str, Any] = Field(default_factory=dict)
    created_at: str = ""
    code_version: str = ""
    library_versions: dict[str, str] = Field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)
