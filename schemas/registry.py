"""The registry's contracts: the version manifest, alias events and the results of its commands.

A version's ``manifest.json`` is plain JSON that a consumer without tokenfoundry can read (see
the README, "Registry layout"). Each result model's ``model_dump(mode="json")`` is exactly the
``--json`` object of the matching ``tokenfoundry registry`` command.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FORMAT = "tokenfoundry-registry-manifest"
BUNDLE_FORMAT = "tokenfoundry-registry-bundle"
#: A version number above this is refused (a manifest is hostile input until checked).
MAX_VERSION = 10**9
#: A file above this is refused in any manifest (1 PiB: a forged size, not a real file).
MAX_FILE_BYTES = 1 << 50
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class FileEntry(BaseModel):
    """One file of a version, relative to the version directory (POSIX separators)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)
    size: int = Field(ge=0, le=MAX_FILE_BYTES, strict=True)
    sha256: str = Field(pattern=SHA256_PATTERN)


class VersionManifest(BaseModel):
    """``<root>/<name>/<version>/manifest.json``: what a version holds and how it was made.

    Unknown top-level keys are kept (a newer writer may add fields; an importer copies the
    manifest byte for byte).
    """

    model_config = ConfigDict(extra="allow")

    format: str = MANIFEST_FORMAT
    format_version: int = 1
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1, le=MAX_VERSION, strict=True)
    created_at: str = Field(max_length=64)
    content_sha256: str = Field(
        pattern=SHA256_PATTERN,
        description="sha256 of the canonical JSON list of [path, size, sha256] sorted by path: "
        "the identity of the files, used to make publishing idempotent")
    total_bytes: int = Field(0, ge=0, strict=True)
    files: list[FileEntry] = Field(max_length=1_000_000)
    lineage: dict[str, Any] = Field(
        default_factory=dict,
        description="corpus snapshot ids, spec and spec_hash, code_version, library_versions, "
        "flow_run_id, source directory")
    metrics: dict[str, Any] = Field(default_factory=dict)
    gates: list[dict[str, Any]] = Field(default_factory=list)
    publisher: dict[str, Any] = Field(default_factory=dict)


class AliasEvent(BaseModel):
    """One move of an alias: ``<root>/<name>/_aliases/<alias>/<seq>.json`` (append-only)."""

    model_config = ConfigDict(extra="allow")

    alias: str
    seq: int
    version: int
    previous: int | None = None
    at: str
    by: str = Field(description="publish | promote | import")
    user: str = ""
    host: str = ""
    note: str = ""


# ---- results (the CLI's --json objects) ------------------------------------------------------


class PublishResult(BaseModel):
    ref: str
    name: str
    version: int
    uri: str
    registry: str
    reused: bool = Field(description="true: a version with identical files existed; returned it")
    files: int
    bytes: int
    aliases: dict[str, int] = Field(default_factory=dict, description="aliases now on the version")
    seconds: float = 0.0


class PullResult(BaseModel):
    ref: str
    name: str
    version: int
    path: str
    files: int
    bytes: int
    cached: bool = Field(description="true: served from the local cache (re-verified)")
    seconds: float = 0.0


class VerifyProblem(BaseModel):
    path: str
    problem: str


class VerifyResult(BaseModel):
    ref: str
    name: str
    version: int
    ok: bool
    files: int
    bytes: int
    problems: list[VerifyProblem] = Field(default_factory=list)


class PromoteResult(BaseModel):
    ref: str
    name: str
    version: int
    alias: str
    previous: int | None
    changed: bool


class GcEntry(BaseModel):
    path: str
    kind: str = Field(description="staging | uncommitted-version | claim | content-record")
    age_seconds: float
    bytes: int


class GcResult(BaseModel):
    registry: str
    removed: list[GcEntry] = Field(default_factory=list)
    kept: list[GcEntry] = Field(default_factory=list, description="younger than the grace period")
    bytes_freed: int = 0


class ExportResult(BaseModel):
    ref: str
    name: str
    version: int
    path: str
    files: int
    bytes: int
    sha256: str = Field(description="sha256 of the bundle file")


class ImportResult(BaseModel):
    ref: str
    name: str
    version: int
    registry: str
    reused: bool
    files: int
    bytes: int
    bundle: str


class VersionInfo(BaseModel):
    version: int
    created_at: str
    files: int
    bytes: int
    aliases: list[str] = Field(default_factory=list)


class NameInfo(BaseModel):
    name: str
    versions: list[VersionInfo]
    aliases: dict[str, int]


class ListResult(BaseModel):
    registry: str
    tokenizers: list[NameInfo]


class ShowResult(BaseModel):
    ref: str
    name: str
    version: int
    uri: str
    aliases: list[str]
    alias_history: list[AliasEvent]
    manifest: dict[str, Any]
