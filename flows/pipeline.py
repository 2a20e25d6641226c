"""The end-to-end pipeline: ingest -> dedup -> train -> evaluate -> gate -> publish.

The flow body is the table of contents; each stage is the stage's own flow, called as a
subflow with references only (spec dicts, snapshot ids, directories, registry refs).

Reuse. Snapshots are content-addressed (same inputs + spec -> same id), so ingest and dedup
find their work done. Every finished stage also leaves a *stage record*
(``<workspace>/pipelines/<name>/stages/<stage>-<key>.json``) whose key is the sha256 of the
stage's spec, the references it read (snapshot ids, the candidate's directory key) and a
fingerprint of the code that runs the stage (:func:`code_fingerprint`: the sha256 of the
installed source files of that stage, schemas and storage), so a fixed bug in train retrains
while an edit in evaluate does not. A re-run whose key matches a record, and whose outputs still
exist, skips the stage; change one knob and only that stage and the ones downstream of it get
new keys. Ingest always runs: its own content-addressing notices new or changed source files.

Failures. Transient I/O errors (timeouts, dropped connections, EAGAIN/EBUSY/EIO...) are retried
by Prefect on the task that met them (``tasks.retry``: one predicate, ``retry_condition_fn``);
anything else fails the run with :class:`StageFailed` naming the stage, its input and the reason
(bad input keeps exit code 2). A failed gate stops the run before publish
(:class:`PipelineGateFailed`, exit code 1).
"""

from __future__ import annotations

import functools
import json
import posixpath
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from tokenfoundry.flows.quickstart import load_pipeline_file, resolve_machine_sources
from tokenfoundry.flows.runners import describe, make_task_runner, runner_session
from tokenfoundry.schemas.config import stable_hash
from tokenfoundry.schemas.errors import BadInputError, GateFailed, TokenfoundryError
from tokenfoundry.schemas.pipeline import (
    PipelineSpec,
    RunnerSection,
    StageFailed,
    StageRecord,
    validate_pipeline,
)
from tokenfoundry.storage.provenance import utc_now
from tokenfoundry.storage.workspace import Workspace, atomic_write_bytes
from tokenfoundry.tasks.evaluate.gates import check_gates
from tokenfoundry.tasks.publish.artifacts import create_published_artifact
# REPORT_METRICS and metrics_rows are imported from here by flows/cli/run.py
from tokenfoundry.tasks.evaluate.report import (  # noqa: F401
    REPORT_METRICS,
    evaluation_report,
    gate_lines,
    metrics_rows,
)
from tokenfoundry.tasks.retry import RETRIES, RETRY_DELAYS, is_transient, retry_transient

# ---- failure policy ---------------------------------------------------------------------------


def classify_failure(fn: Callable[[], Any], stage: str, input: str) -> Any:
    """Run ``fn`` (a stage's subflow); name the stage and its input in what it raises.

    Transient errors were already retried inside the stage, by Prefect, on the task that met
    them (``tasks.retry.retry_transient``); what reaches here failed for good. A bad input
    keeps exit code 2, a failed gate stays a gate failure, anything else is StageFailed.
    """
    try:
        return fn()
    except GateFailed:
        raise
    except BadInputError as e:
        raise BadInputError(f"stage {stage} ({input}): {e}") from e
    except TokenfoundryError as e:
        raise StageFailed(stage, input, str(e)) from e
    except Exception as e:  # noqa: BLE001 - any other error fails the stage, named
        why = f"{type(e).__name__}: {e}"
        if is_transient(e):
            why += " (transient; the task's retries were used up)"
        raise StageFailed(stage, input, why) from e


class PipelineGateFailed(GateFailed):
    """A gate failed: nothing was published. ``result`` is the pipeline's result object."""

    def __init__(self, message: str, result: dict[str, Any]):
        super().__init__(message)
        self.result = result


# ---- progress listeners (the CLI's rich progress bar) -----------------------------------------

_listeners: list[Callable[[dict[str, Any]], None]] = []


def add_listener(fn: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
    """Receive pipeline events in this process (``{"event": "stage_start"|"stage_done", ...}``);
    returns a function that removes the listener."""
    _listeners.append(fn)
    return lambda: _listeners.remove(fn) if fn in _listeners else None


def _emit(**event: Any) -> None:
    for fn in list(_listeners):
        try:
            fn(event)
        except Exception:  # noqa: BLE001 - a broken progress display never fails a run
            pass


# ---- stage records ----------------------------------------------------------------------------


def _records_dir(ws: Workspace, pipeline: str) -> str:
    return ws.path("pipelines", pipeline, "stages")


def stage_key(stage: str, spec: Any, inputs: dict[str, Any]) -> str:
    """sha256 of the stage's spec, the references it reads and the fingerprint of its code."""
    return stable_hash({"stage": stage, "spec": spec, "inputs": inputs,
                        "code": code_fingerprint(stage)}, n=20)


#: The code each stage runs (package-relative), besides schemas/ and storage/.
STAGE_CODE = {
    "ingest": ["tasks/ingest", "flows/ingest.py"],
    "dedup": ["tasks/dedup", "flows/dedup.py"],
    "train": ["tasks/train", "flows/train.py"],
    "evaluate": ["tasks/evaluate", "flows/evaluate.py"],
    "publish": ["tasks/publish", "flows/publish.py"],
}
_COMMON_CODE = ["schemas", "storage", "tasks/retry.py", "tasks/progress.py"]


def _package_root(part: str) -> Path:
    """Where ``tokenfoundry.<layer>`` is installed (editable or not)."""
    import importlib

    layer, _, rest = part.partition("/")
    mod = importlib.import_module(f"tokenfoundry.{layer}")
    return Path(list(mod.__path__)[0]) / rest if rest else Path(list(mod.__path__)[0])


def source_fingerprint(paths: list[Path]) -> str:
    """sha256 over the ``*.py`` files under ``paths`` (relative name + bytes, in name order)."""
    import hashlib

    h = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root] if root.is_file() else []
        for f in files:
            h.update(f"{root.name}/{f.relative_to(root) if root.is_dir() else ''}\0".encode())
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


@functools.cache
def code_fingerprint(stage: str) -> str:
    """The fingerprint of the installed code that runs ``stage`` (see :data:`STAGE_CODE`)."""
    parts = STAGE_CODE.get(stage, []) + _COMMON_CODE
    return source_fingerprint([_package_root(p) for p in parts])[:20]


def read_record(ws: Workspace, pipeline: str, stage: str, key: str) -> StageRecord | None:
    p = posixpath.join(_records_dir(ws, pipeline), f"{stage}-{key}.json")
    if not ws.fs.exists(p):
        return None
    try:
        return StageRecord.model_validate_json(ws.fs.cat_file(p))
    except Exception:  # noqa: BLE001 - an unreadable record is as good as none
        return None


@task(name="record-stage", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def write_record_task(workspace: str, pipeline: str, record: dict[str, Any]) -> str:
    """Write a stage record (atomic); refs in, path out."""
    ws = Workspace(workspace)
    rec = StageRecord.model_validate(record)
    p = posixpath.join(_records_dir(ws, pipeline), f"{rec.stage}-{rec.key}.json")
    atomic_write_bytes(ws.fs, p, json.dumps(rec.model_dump(mode="json"), indent=2).encode())
    return p


class _Stages:
    """Runs stages with reuse, retries, progress and a summary row each."""

    def __init__(self, ws: Workspace, spec: PipelineSpec, total: int):
        self.ws, self.spec, self.total = ws, spec, total
        self.done = 0
        self.rows: list[dict[str, Any]] = []
        self.log = get_run_logger()
        self.progress_id = create_progress_artifact(
            progress=0.0, key=f"{_key(spec.name)}-progress",
            description=f"pipeline {spec.name}: stages finished (of {total})")

    def run(self, stage: str, label: str, spec: Any, inputs: dict[str, Any],
            call: Callable[[], dict[str, Any]], still_there: Callable[[dict[str, Any]], bool],
            reuse: bool = True, precheck: Callable[[], dict[str, Any] | None] | None = None
            ) -> dict[str, Any]:
        """Run one stage unless a record with the same key (and its outputs) exists, or
        ``precheck`` (a cheap "already done?" look at the content-addressed output) finds it."""
        key = stage_key(stage, spec, inputs)
        _emit(event="stage_start", stage=stage, label=label, done=self.done, total=self.total)
        t0 = time.perf_counter()
        rec = read_record(self.ws, self.spec.name, stage, key) if reuse else None
        found = classify_failure(precheck, stage, label) \
            if precheck is not None and rec is None else None
        if rec is not None and still_there(rec.result):
            result, reused = dict(rec.result), True
            self.log.info("%s: reusing finished stage (key %s)", label, key)
        elif found is not None:
            result, reused = dict(found), True
            self.log.info("%s: output already committed (%s)", label, _headline(stage, found))
        else:
            result = classify_failure(call, stage, label)
            reused = bool(result.get("reused", False))
            write_record_task(self.ws.uri, self.spec.name, StageRecord(
                stage=stage, key=key, inputs=inputs, result=result,
                seconds=round(time.perf_counter() - t0, 3), finished_at=utc_now(),
            ).model_dump(mode="json"))
        seconds = time.perf_counter() - t0
        self.done += 1
        self.rows.append({"stage": label, "reused": reused, "seconds": round(seconds, 2),
                          "output": _headline(stage, result)})
        # a reused stage takes milliseconds: one API call per finished run of work (and at the
        # end) keeps the bar honest without making a fully reused run pay 7 round trips
        if self.progress_id is not None and (not reused or self.done == self.total):
            update_progress_artifact(self.progress_id, progress=100.0 * self.done / self.total)
        _emit(event="stage_done", stage=stage, label=label, done=self.done, total=self.total,
              reused=reused, seconds=seconds)
        return {**result, "reused": reused, "stage_key": key}


def gate_headline(gates: list[dict[str, Any]]) -> str:
    """The evaluate row of the stage table once the gates are judged: never "passed" unless
    every gate passed."""
    if not gates:
        return "no gates"
    failed = [g for g in gates if not g.get("passed")]
    if failed:
        return f"gates FAILED ({len(failed)} of {len(gates)}: " + \
            ", ".join(str(g.get("expr")) for g in failed) + ")"
    return f"gates passed ({len(gates)} of {len(gates)})"


def _key(name: str) -> str:
    """An artifact key (lowercase letters, digits, dashes)."""
    import re

    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "pipeline"


def _headline(stage: str, result: dict[str, Any]) -> str:
    if stage in ("ingest", "dedup"):
        return f"{result.get('snapshot_id', '')} ({result.get('kept', '?')} docs kept)"
    if stage in ("train", "extend"):
        sf = result.get("shortfall")
        return str(result.get("out", "")) + (f" (vocabulary {sf['got']} of {sf['asked']} asked)"
                                            if sf else "")
    if stage == "evaluate":
        # the evaluate stage measures; the gates are judged afterwards (see gate_headline)
        return str(result.get("json_path") or result.get("out") or "")
    if stage == "publish":
        return str(result.get("ref", ""))
    return ""


# ---- the flows --------------------------------------------------------------------------------


def _as_spec(spec: dict[str, Any] | str | PipelineSpec, runner: dict[str, Any] | None
             ) -> PipelineSpec:
    overrides = {"runner": runner} if runner else None
    if isinstance(spec, PipelineSpec):
        return validate_pipeline(spec.model_dump(mode="json"), spec.name, overrides) \
            if overrides else spec
    if isinstance(spec, str):
        return load_pipeline_file(spec, overrides)
    return resolve_machine_sources(validate_pipeline(spec, "pipeline spec", overrides),
                                   "pipeline spec")


def _snapshot_there(ws: Workspace, corpus: str) -> Callable[[dict[str, Any]], bool]:
    return lambda r: ws.has_snapshot(corpus, r.get("snapshot_id", ""))


def _dir_there(ws: Workspace, *names: str) -> Callable[[dict[str, Any]], bool]:
    def check(r: dict[str, Any]) -> bool:
        out = r.get("out")
        return bool(out) and all(ws.fs.exists(posixpath.join(out, n)) for n in names)

    return check


def _ingest_done(ws: Workspace, spec: Any) -> dict[str, Any] | None:
    """The committed snapshot of an ingest spec if its inputs are unchanged (fingerprints the
    sources, as ingest itself does first), else None."""
    from tokenfoundry.tasks.ingest.core import plan_ingest, reuse_if_committed

    res = reuse_if_committed(ws, plan_ingest(spec))
    return None if res is None else res.model_dump(mode="json")


def ingest_and_dedup(ws: Workspace, spec: PipelineSpec, runner: RunnerSection,
                     stages: _Stages, corpora: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Ingest (and dedup) each corpus on the selected task runner; returns snapshot ids."""
    from tokenfoundry.flows.dedup import dedup_flow
    from tokenfoundry.flows.ingest import ingest_flow

    snaps: dict[str, dict[str, str]] = {}
    for c in spec.corpora:
        if corpora and c.corpus not in corpora:
            continue
        cspec = c.model_dump(mode="json")
        ing = stages.run(
            "ingest", f"ingest {c.corpus}", cspec, {},
            lambda cspec=cspec: ingest_flow.with_options(
                task_runner=make_task_runner(runner))(spec=cspec, workspace=ws.uri),
            _snapshot_there(ws, c.corpus), reuse=False,
            precheck=lambda c=c: _ingest_done(ws, c))
        snaps[c.corpus] = {"ingest": ing["snapshot_id"], "latest": ing["snapshot_id"]}
        dspec = spec.dedup_spec(c.corpus, snapshot=ing["snapshot_id"])
        if dspec is None:
            continue
        dd = dspec.model_dump(mode="json")
        ded = stages.run(
            "dedup", f"dedup {c.corpus}", dd, {"snapshot": ing["snapshot_id"]},
            lambda dd=dd: dedup_flow.with_options(
                task_runner=make_task_runner(runner))(spec=dd, workspace=ws.uri),
            _snapshot_there(ws, c.corpus))
        snaps[c.corpus]["dedup"] = snaps[c.corpus]["latest"] = ded["snapshot_id"]
        ws.set_ref(c.corpus, "latest", ded["snapshot_id"])  # a reused stage re-points latest
    return snaps


@flow(name="tokenfoundry-ingest-dedup", log_prints=False)
def ingest_dedup_flow(spec: dict[str, Any] | str, workspace: str = "./workspace",
                      corpora: list[str] | None = None, runner: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
    """Ingest + dedup the corpora of a pipeline spec (nightly deployments); returns snapshot ids.

    ``spec``: a pipeline YAML path or its mapping; ``corpora``: only these (default: all).
    """
    ps = _as_spec(spec, runner)
    ws = Workspace(workspace)
    n = sum(1 for c in ps.corpora if not corpora or c.corpus in corpora)
    stages = _Stages(ws, ps, total=n * (2 if ps.dedup else 1))
    stats: dict[str, Any] = {}
    with runner_session(ps.runner, stats) as run_r:
        snaps = ingest_and_dedup(ws, ps, run_r, stages, corpora)
    create_table_artifact(table=stages.rows, key=f"{_key(ps.name)}-ingest-dedup",
                          description=f"{ps.name}: ingest + dedup stages")
    return {"pipeline": ps.name, "workspace": ws.uri, "snapshots": snaps, "stages": stages.rows,
            "runner": {"kind": ps.runner.kind, "describe": describe(ps.runner), **stats}}


@flow(name="tokenfoundry-pipeline", log_prints=False)
def pipeline_flow(spec: dict[str, Any] | str, workspace: str = "./workspace",
                  runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """ingest -> dedup -> train -> evaluate -> gate -> publish, reusing finished stages.

    ``spec``: a pipeline YAML path (relative to the working directory) or its mapping;
    ``runner``: overrides of the ``runner:`` section (e.g. ``{"kind": "dask"}``).
    """
    from tokenfoundry.flows.evaluate import evaluate_flow
    from tokenfoundry.flows.publish import publish_flow
    from tokenfoundry.flows.train import train_flow

    t_start = time.perf_counter()
    ps = _as_spec(spec, runner)
    ws = Workspace(workspace)
    log = get_run_logger()
    n_corpus_stages = len(ps.corpora) * (2 if ps.dedup else 1)
    stages = _Stages(ws, ps, total=n_corpus_stages + 3 + (ps.extend is not None))
    log.info("pipeline %s: %d corpora, runner %s", ps.name, len(ps.corpora), describe(ps.runner))

    rstats: dict[str, Any] = {}
    with runner_session(ps.runner, rstats) as run_r:
        snaps = ingest_and_dedup(ws, ps, run_r, stages)

    # train: on the corpora's latest (deduped) snapshots, pinned by id in the stage key
    train_corpora = {c: snaps[c]["latest"] for c in ps.train.corpora}
    tspec = ps.train.model_dump(mode="json")
    tkey = stage_key("train", tspec, train_corpora)
    tout = ws.path("pipelines", ps.name, "train", tkey)
    trained = stages.run(
        "train", "train", tspec, train_corpora,
        lambda: train_flow(spec=tspec, workspace=ws.uri, out=tout),
        _dir_there(ws, "train_report.json"))
    candidate = trained.get("out") or tout
    ckey = tkey

    # extend (optional): the base model's vocabulary on the pipeline's corpora; the extended
    # model directory becomes the candidate that is evaluated, gated and published
    extended: dict[str, Any] = {}
    if ps.extend is not None:
        from tokenfoundry.flows.extend import extend_flow

        xspec = ps.extend.model_dump(mode="json")
        xinputs = {c: snaps[c]["latest"] for c in ps.extend.corpora if c in snaps}
        ckey = stage_key("extend", xspec, xinputs)
        xout = ws.path("pipelines", ps.name, "extend", ckey)
        extended = stages.run(
            "extend", "extend", xspec, xinputs,
            lambda: extend_flow(spec=xspec, workspace=ws.uri, out=xout),
            _dir_there(ws, "extend_report.json", "model.safetensors"))
        candidate = extended.get("out") or xout

    # evaluate the candidate beside the references on held-out text
    # Gates are judged here on the candidate's metrics, so changing a gate re-judges the
    # finished evaluation instead of re-running it (gates are not part of the stage key).
    espec = ps.evaluate_spec(f"{ps.publish.name}={candidate}", ws.uri,
                             {c: s["latest"] for c, s in snaps.items()})
    edict = espec.model_copy(update={"gates": []}).model_dump(mode="json")
    ekey = stage_key("evaluate", edict, {"candidate": ckey, **train_corpora})
    eout = ws.path("pipelines", ps.name, "evaluate", ekey)
    evaluated = stages.run(
        "evaluate", "evaluate", edict, {"candidate": ckey, **train_corpora},
        lambda: evaluate_flow(spec=edict, workspace=ws.uri, out=eout, fail_on_gates=False),
        lambda r: bool(r.get("json_path")) and ws.fs.exists(r["json_path"]))
    cand_metrics = (evaluated.get("tokenizers") or {}).get(evaluated.get("candidate")) or {}
    if extended:  # the extended model's bits per byte (measured by the extend stage)
        cand_metrics = {**cand_metrics, **{k: extended[k] for k in (
            "bits_per_byte", "bits_per_byte_base", "bits_per_byte_vs_base", "token_reduction")
            if k in extended}}
    gate_results = [g.model_dump(mode="json") for g in check_gates(cand_metrics, espec.gates)]
    evaluated = {**evaluated, "gates": gate_results,
                 "gates_passed": all(g["passed"] for g in gate_results)}
    stages.rows[-1]["output"] = gate_headline(gate_results)
    report = evaluation_report(ps, evaluated)
    create_markdown_artifact(markdown=report, key=f"{_key(ps.name)}-evaluation-report",
                             description=f"{ps.name}: evaluation report of the candidate "
                             "beside the reference tokenizers")

    result: dict[str, Any] = {
        "pipeline": ps.name, "workspace": ws.uri, "snapshots": snaps, "tokenizer": candidate,
        **({"extend": {k: extended.get(k) for k in (
            "out", "base", "init", "tokens_added", "vocab_size", "bits_per_byte",
            "bits_per_byte_base", "bits_per_byte_vs_base", "token_reduction")}}
           if extended else {}),
        "evaluation": {"out": evaluated.get("out", eout),
                       "report_path": evaluated.get("report_path", ""),
                       "candidate": evaluated.get("candidate"),
                       "tokenizers": evaluated.get("tokenizers", {})},
        "gates": evaluated.get("gates", []), "gates_passed": bool(evaluated.get("gates_passed")),
        "published": None, "stages": stages.rows,
        "runner": {"kind": ps.runner.kind, "describe": describe(ps.runner), **rstats},
    }

    # gate: a failed gate publishes nothing
    failed = [g for g in result["gates"] if not g.get("passed")]
    if failed or not result["gates_passed"]:
        msg = "; ".join(f"{g['expr']}: {_label(g)} = {_fmt(g.get('value'))}, "
                        f"threshold {g.get('op')} {_fmt(g.get('threshold'))}"
                        + (f" ({g['reason']})" if g.get("value") is None and g.get("reason")
                           else "")
                        for g in failed) or "gates failed"
        result["status"] = "gate_failed"
        result["seconds"] = round(time.perf_counter() - t_start, 3)
        create_markdown_artifact(
            markdown=f"# {ps.name}: gate failed, nothing published\n\n"
            + "\n".join(gate_lines(failed)),
            key=f"{_key(ps.name)}-gate", description=f"{ps.name}: failed gates")
        create_table_artifact(table=stages.rows, key=f"{_key(ps.name)}-stages",
                              description=f"{ps.name}: stages, reuse and time")
        _emit(event="gate_failed", gates=failed)
        raise PipelineGateFailed(f"pipeline {ps.name}: gate failed, nothing published: {msg}",
                                 result)

    # publish (idempotent: the same files give the same version)
    registry = ps.registry_uri(ws.registry_uri)
    pinputs = {"candidate": ckey, "evaluation": ekey}
    pspec = ps.publish.model_dump(mode="json") | {"registry": registry}
    published = stages.run(
        "publish", "publish", pspec, pinputs,
        lambda: publish_flow(
            source=candidate, name=ps.publish.name, registry=registry,
            aliases=list(ps.publish.aliases), evaluation=evaluated.get("json_path"),
            gate_results=gate_results,
            lineage={"pipeline": ps.name, "snapshots": snaps, "train_key": tkey,
                     "evaluate_key": ekey, "spec_hash": ps.spec_hash(),
                     **({"extend_key": ckey, "base_model": extended.get("base")}
                        if extended else {})}),
        lambda r: _version_there(registry, r))
    ref = published.get("ref") or f"{ps.publish.name}@{published.get('version')}"
    result["published"] = {**published, "ref": ref}
    result["status"] = "published"
    create_published_artifact(
        ref, published.get("uri") or registry, registry, key=f"{_key(ps.name)}-published",
        description=f"{ps.name}: published {ref} (registry {registry})")
    create_table_artifact(table=stages.rows, key=f"{_key(ps.name)}-stages",
                          description=f"{ps.name}: stages, reuse and time")
    result["seconds"] = round(time.perf_counter() - t_start, 3)
    log.info("pipeline %s: published %s in %.1f s", ps.name, ref, result["seconds"])
    return result


def _version_there(registry: str, r: dict[str, Any]) -> bool:
    """The recorded version is still in the registry (versions are immutable)."""
    from tokenfoundry.storage.registry import Registry

    try:
        return Registry(registry).resolve(f"{r['name']}@{r['version']}") == (r["name"],
                                                                           r["version"])
    except Exception:  # noqa: BLE001 - gone or unreadable: publish again
        return False


def _label(g: dict[str, Any]) -> str:
    return f"{g.get('metric')}[{g['key']}]" if g.get("key") else str(g.get("metric"))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def run_pipeline(spec: PipelineSpec | dict[str, Any] | str, workspace: str,
                 runner: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run :func:`pipeline_flow` in this process (ephemeral Prefect API unless one is set)."""
    if isinstance(spec, PipelineSpec):
        spec = spec.model_dump(mode="json")
    elif isinstance(spec, str | Path):
        spec = str(Path(spec).resolve())
    return pipeline_flow(spec=spec, workspace=str(workspace), runner=runner)
