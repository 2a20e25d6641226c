"""``pipeline.yaml``: one file that describes a whole tokenizer pipeline.

Sections (each reuses the stage's own Spec, so a knob has one name everywhere)::

    name: quickstart
    corpora:            # one IngestSpec per corpus (tokenfoundry ingest)
      - {corpus: licences, sources: [/usr/share/common-licenses], lang: en}
    dedup:              # DedupSpec without `corpus` (applied to every corpus), or null to skip
      threshold: 0.8
    train:              # TrainSpec; its `corpora` name corpora of this pipeline
      corpora: [licences]
      model: bpe
      vocab_size: 4096
    evaluate:           # EvaluateSpec without the candidate (the pipeline fills it in)
      references: [o200k, gpt2]
      gates: ["roundtrip_errors == 0", "bytes_per_token >= 3.0"]
    publish:            # where a candidate that passes every gate goes
      name: quickstart-bpe
      aliases: [latest]
    runner:             # task runner of the fan-out stages (ingest, dedup)
      kind: threads     # or dask (LocalCluster of max_workers workers, or `address`)

Everything is validated before any work starts: unknown keys are errors naming their path
(``pipeline.yaml: train.vocab_sise: unknown key; ...``), and each stage's own rules (bands x rows,
gate grammar, vocab sizes) run on the section with the pipeline's corpora filled in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from tokenfoundry.schemas.config import Spec
from tokenfoundry.schemas.dedup import DedupSpec
from tokenfoundry.schemas.errors import BadInputError, TokenfoundryError
from tokenfoundry.schemas.evaluate import EvaluateSpec
from tokenfoundry.schemas.extend import ExtendSpec
from tokenfoundry.schemas.ingest import IngestSpec
from tokenfoundry.schemas.train import TrainSpec

_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"


def _section(spec_cls: type[Spec], drop: set[str], name: str, doc: str) -> type[Spec]:
    """A Spec with the fields of ``spec_cls`` minus ``drop`` (same types, defaults and docs).

    The stage's cross-field rules run later, on the full stage spec that the pipeline builds
    (:meth:`PipelineSpec.dedup_spec` etc.), inside PipelineSpec's own validation.
    """
    fields: dict[str, Any] = {
        k: (f.annotation, f) for k, f in spec_cls.model_fields.items() if k not in drop
    }
    model = create_model(name, __base__=Spec, __doc__=doc, **fields)
    return model


#: The ``dedup:`` section: every DedupSpec field except ``corpus``/``snapshot`` (the pipeline
#: dedups each corpus' freshly ingested snapshot).
DedupSection = _section(DedupSpec, {"corpus", "snapshot"}, "DedupSection",
                        "DedupSpec without corpus/snapshot; applied to every corpus.")

#: The ``evaluate:`` section: EvaluateSpec without the candidate (``tokenizers``) and without
#: what the pipeline knows (workspace). ``corpora`` defaults to the train corpora (their held-out
#: documents, with the trainer's holdout_fraction).
EvaluateSection = _section(EvaluateSpec, {"tokenizers", "workspace"}, "EvaluateSection",
                           "EvaluateSpec without the candidate; the pipeline adds it.")


class PublishSection(Spec):
    """Where a candidate that passed every gate is published."""

    name: str = Field(description="Registry name of the tokenizer (letters, digits, - _ .).")
    registry: str | None = Field(
        None, description="Registry URI (local path or s3://...); default: <workspace>/registry.")
    aliases: list[str] = Field(
        default_factory=lambda: ["latest"],
        description="Aliases moved to the new version (e.g. latest, staging). A version that "
        "already holds the same files is reused, not published again.")

    @model_validator(mode="after")
    def _names(self) -> PublishSection:
        for n in [self.name, *self.aliases]:
            if not re.fullmatch(_NAME_RE, n):
                raise ValueError(f"invalid name {n!r}: use letters, digits, '-', '_' or '.'")
        return self


class RunnerSection(Spec):
    """The Prefect task runner of the stages that fan out per shard (ingest, dedup)."""

    kind: Literal["threads", "dask"] = Field(
        "threads", description="threads: ThreadPoolTaskRunner in this process; dask: "
        "prefect-dask's DaskTaskRunner on a LocalCluster (or the scheduler at `address`).")
    max_workers: int | None = Field(
        None, ge=1, le=1024,
        description="threads: pool size; dask: LocalCluster workers (default: CPU count).")
    address: str | None = Field(
        None, description="dask only: an existing scheduler, e.g. tcp://10.0.0.5:8786.")
    processes: bool = Field(
        True, description="dask LocalCluster: one process per worker (false: threads only).")

    @model_validator(mode="after")
    def _address_needs_dask(self) -> RunnerSection:
        if self.address and self.kind != "dask":
            raise ValueError("address is for kind: dask; remove it or set kind: dask")
        return self


class PipelineSpec(Spec):
    """A whole pipeline: ingest every corpus, dedup, train, evaluate, gate, publish."""

    name: str = Field(description="Pipeline name (artifact keys, work directories).")
    corpora: list[IngestSpec] = Field(
        min_length=1, description="Corpora to ingest; each entry is an IngestSpec.")
    dedup: DedupSection | None = Field(  # type: ignore[valid-type]
        default_factory=DedupSection,
        description="Dedup settings for every corpus (DedupSpec without corpus); null skips dedup.")
    train: TrainSpec = Field(description="TrainSpec; its corpora name corpora of this pipeline.")
    extend: ExtendSpec | None = Field(
        None, description="Vocabulary extension of a base model (ExtendSpec), run between train "
        "and evaluate; when set, the extended model directory is the candidate that is "
        "evaluated, gated (bits_per_byte, bits_per_byte_vs_base) and published.")
    evaluate: EvaluateSection = Field(  # type: ignore[valid-type]
        description="EvaluateSpec without the candidate: texts/corpora/parallel, references, gates.")
    publish: PublishSection = Field(description="Registry name, URI and aliases.")
    runner: RunnerSection = Field(default_factory=RunnerSection,
                                  description="Task runner of the fan-out stages.")

    @model_validator(mode="after")
    def _cross_checks(self) -> PipelineSpec:
        if not re.fullmatch(_NAME_RE, self.name):
            raise ValueError(f"name: invalid pipeline name {self.name!r}; use letters, digits, "
                             "'-', '_' or '.'")
        names = [c.corpus for c in self.corpora]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValueError(f"corpora: corpus {dups[0]!r} is listed twice; give each corpus once")
        unknown = [c for c in self.train.corpora if c not in names]
        if unknown:
            raise ValueError(
                f"train.corpora: {unknown[0]!r} is not a corpus of this pipeline "
                f"(corpora: {', '.join(names)}); add it under corpora or fix the name")
        if self.extend is not None:
            unknown = [c for c in self.extend.corpora if c not in names and not Path(c).exists()]
            if unknown:
                raise ValueError(
                    f"extend.corpora: {unknown[0]!r} is neither a corpus of this pipeline "
                    f"(corpora: {', '.join(names)}) nor an existing path")
        unknown = [c for c in self.evaluate.corpora if c not in names]
        if unknown:
            raise ValueError(
                f"evaluate.corpora: {unknown[0]!r} is not a corpus of this pipeline "
                f"(corpora: {', '.join(names)})")
        # Run each stage's own cross-field rules on the spec the pipeline will build.
        for section, build in (("dedup", lambda: [self.dedup_spec(n) for n in names]),
                               ("evaluate", lambda: self.evaluate_spec("candidate", "ws"))):
            try:
                build()
            except ValidationError as e:
                msgs = "; ".join(f"{'.'.join(map(str, x['loc'])) or '(section)'}: "
                                 f"{x['msg'].removeprefix('Value error, ')}" for x in e.errors())
                raise ValueError(f"{section}: {msgs}") from None
        return self

    # ---- the stage specs the pipeline runs ---------------------------------------------------

    def dedup_spec(self, corpus: str, snapshot: str | None = None) -> DedupSpec | None:
        if self.dedup is None:
            return None
        return DedupSpec(corpus=corpus, snapshot=snapshot, **self.dedup.model_dump())

    def eval_corpora(self) -> list[str]:
        """Corpora whose held-out documents are evaluated (default: the train corpora when the
        evaluate section names no text of its own)."""
        ev = self.evaluate
        if ev.corpora:
            return list(ev.corpora)
        if ev.texts or ev.parallel:
            return []
        return [c for c in self.train.corpora if c in {x.corpus for x in self.corpora}]

    def evaluate_spec(self, candidate: str, workspace: str,
                      corpus_refs: dict[str, str] | None = None) -> EvaluateSpec:
        """The EvaluateSpec of the candidate. ``corpus_refs`` pins each corpus to a snapshot id
        (all corpora share one ``corpus_ref``, so a single one is pinned when given)."""
        data = self.evaluate.model_dump()
        corpora = self.eval_corpora()
        data["corpora"] = corpora
        if corpora and data.get("holdout_fraction") is None:
            data["holdout_fraction"] = getattr(self.train, "holdout_fraction", None)
        if corpus_refs and len(corpora) == 1 and corpora[0] in corpus_refs:
            data["corpus_ref"] = corpus_refs[corpora[0]]
        return EvaluateSpec(tokenizers=[candidate], workspace=workspace, **data)

    def registry_uri(self, workspace_registry: str) -> str:
        return self.publish.registry or workspace_registry


class StageFailed(TokenfoundryError):
    """A pipeline stage failed for a reason that is not bad input; names stage, input, reason."""

    exit_code = 1

    def __init__(self, stage: str, input: str, reason: str):
        self.stage, self.input, self.reason = stage, input, reason
        super().__init__(f"stage {stage} failed on {input}: {reason}")


class StageRecord(BaseModel):
    """What the pipeline remembers about a finished stage (``pipelines/<name>/stages/*.json``):
    the key it was computed from (spec + input references + code version) and its result."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    key: str
    inputs: dict[str, Any]
    result: dict[str, Any]
    seconds: float
    finished_at: str


def load_pipeline(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineSpec:
    """Read and validate a pipeline YAML file; errors name the file and the key path.

    ``overrides`` (e.g. ``{"runner": {"kind": "dask"}}``) are merged section by section
    before validation.
    """
    from tokenfoundry.schemas.config import read_yaml_mapping

    data = read_yaml_mapping(path, "pipeline file", "pass the path of a pipeline YAML file "
                             "(see examples/quickstart.yaml)")
    return validate_pipeline(data, str(path), overrides)


def validate_pipeline(data: dict[str, Any], where: str = "pipeline.yaml",
                      overrides: dict[str, Any] | None = None) -> PipelineSpec:
    """Validate a pipeline mapping (with optional section overrides); BadInputError names
    ``where`` and each key path."""
    data = dict(data)
    for k, v in (overrides or {}).items():
        data[k] = {**(data.get(k) or {}), **v} if isinstance(v, dict) else v
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as err:
        raise BadInputError(_format_errors(err, where)) from None


def _format_errors(err: ValidationError, where: str) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        lines.append(f"{where}: {path}: {msg}" if path else f"{where}: {msg}")
    return "\n".join(lines)
