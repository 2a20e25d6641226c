"""The dedup stage's spec and result (see ../shared/CLI.md, ``tokenfoundry dedup``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tokenfoundry.schemas.config import Spec


class DedupSpec(Spec):
    """Exact + MinHash-LSH near-duplicate removal of one corpus snapshot.

    Defaults follow datatrove / text-dedup: word 5-gram shingles, 128 permutations, bands x rows
    from the optimal-parameter search for the threshold (0.8 with verification -> 14 x 9; near
    datatrove's 14 x 8), candidate pairs verified by estimated Jaccard.
    """

    corpus: str = Field(description="Corpus name (datasets/<corpus>/ in the workspace).")
    snapshot: str | None = Field(
        None, description="Input snapshot id or ref name; default: the corpus' 'ingest' ref, "
        "falling back to 'latest'.")
    threshold: float = Field(0.8, gt=0.0, lt=1.0,
                             description="Jaccard similarity of word n-gram sets above which two "
                             "documents are near-duplicates.")
    ngram: int = Field(5, ge=1, le=32, description="Words per shingle.")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations (signature length).")
    bands: int | None = Field(None, ge=1, description="LSH bands; with rows, overrides the "
                              "optimal-parameter search.")
    rows: int | None = Field(None, ge=1, description="Signature rows per LSH band.")
    fn_weight: float | None = Field(
        None, ge=0.0, le=1.0, description="Weight of the false-negative area in the bands/rows "
        "search (false positives get 1 - fn_weight); default 0.9 with verification (it removes "
        "the extra candidates), 0.5 with verify: none.")
    seed: int = Field(42, ge=0, description="Seed of the permutation family.")
    exact: bool = Field(True, description="Remove exact duplicates (same content_hash).")
    near: bool = Field(True, description="Remove near-duplicates (MinHash-LSH).")
    verify: Literal["jaccard", "estimate", "none"] = Field(
        "jaccard", description="How LSH candidate pairs are checked before they join a cluster: "
        "'jaccard' computes the exact word n-gram Jaccard of the pair (after a cheap signature "
        "pre-filter at threshold - 0.15) and keeps pairs >= threshold; 'estimate' keeps pairs "
        "whose estimated Jaccard (fraction of equal signature values) >= verify_threshold; "
        "'none' keeps every candidate (datatrove / text-dedup behaviour).")
    verify_threshold: float | None = Field(
        None, gt=0.0, le=1.0, description="verify: estimate only: the estimated-Jaccard cut "
        "[default: threshold].")
    incremental: bool = Field(False, description="Documents whose content_hash is in an earlier "
                              "dedup snapshot of the corpus count as duplicates.")
    against: list[str] = Field(default_factory=list, description="Explicit earlier snapshot ids "
                               "for incremental mode (default: every earlier dedup snapshot).")
    boilerplate_min_docs: int | None = Field(
        None, ge=2, description="Remove lines that occur in more than this many documents "
        "(dolma-style repeated headers/footers); off when unset.")

    @model_validator(mode="after")
    def _bands_rows(self) -> DedupSpec:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (then they are derived "
                             "from threshold and num_perm)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm = "
                             f"{self.num_perm}; lower them or raise num_perm")
        if self.verify_threshold is not None and self.verify != "estimate":
            raise ValueError("verify_threshold is for verify: estimate")
        if self.against and not self.incremental:
            raise ValueError("'against' needs incremental: true")
        return self


class DedupResult(BaseModel):
    """What ``tokenfoundry dedup --json`` prints. input == kept + exact + near + boilerplate_only."""

    model_config = ConfigDict(extra="forbid")

    snapshot_id: str
    input: int
    exact_duplicates: int
    near_duplicates: int
    kept: int
    dataset_path: str
    clusters_path: str
    input_snapshot: str = ""
    boilerplate_only: int = 0  # docs emptied by boilerplate-line removal (dropped)
    boilerplate_lines: int = 0
    clusters: int = 0  # clusters with more than one document
    bands: int = 0
    rows: int = 0
    report_path: str = ""
    reused: bool = False
    seconds: float = 0.0
