"""The publish stage: put a candidate that passed its gates into the registry, with lineage.

``publish_candidate`` is plain Python (no Prefect at import). It refuses a candidate whose gate
results contain a failure (the pipeline only calls it after the gates pass; this is the second
lock on the door), assembles the version - the candidate directory's files at the top, the
evaluation report, metrics table and plots under ``evaluation/`` - fills the lineage from the
candidate's ``train_report.json`` (corpus snapshot ids, spec and its hash) - and, for an
extended model, from its ``extend_report.json`` (the base model with its sha256, the
extension corpus' sha256, init, seed) - and publishes. A model version (safetensors weights
beside the tokenizer files) publishes, pulls and verifies exactly like a tokenizer version.
Publishing identical files again returns the existing version (``reused``), so re-running a
finished pipeline publishes nothing new.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tokenfoundry.schemas.errors import BadInputError, GateFailed
from tokenfoundry.storage.registry import LATEST, Registry
from tokenfoundry.tasks.progress import Progress, no_progress

TRAIN_REPORT = "train_report.json"
EXTEND_REPORT = "extend_report.json"
EVALUATION_JSON = "evaluation.json"
#: Evaluation outputs that go into a version (under evaluation/): people read them beside it.
EVALUATION_FILES = ("report.md", "metrics.parquet", EVALUATION_JSON)


def _gate_dict(g: Any) -> dict[str, Any]:
    if hasattr(g, "model_dump"):
        return g.model_dump(mode="json")
    if isinstance(g, Mapping):
        return dict(g)
    raise BadInputError(f"gate result {g!r}: expected a mapping with 'expr' and 'passed'")


def check_gate_results(gate_results: Iterable[Any]) -> list[dict[str, Any]]:
    """The gate results as dicts; GateFailed naming every failed gate."""
    gates = [_gate_dict(g) for g in gate_results or []]
    failed = [g for g in gates if not g.get("passed")]
    if failed:
        what = "; ".join(f"{g.get('expr', '?')}: value {g.get('value')}" for g in failed)
        raise GateFailed(f"refusing to publish: {len(failed)} gate(s) failed ({what})")
    return gates


def lineage_from_train_report(candidate_dir: Path) -> dict[str, Any]:
    """Corpus snapshot ids, the training spec and its hash from ``train_report.json``."""
    p = candidate_dir / TRAIN_REPORT
    if not p.is_file():
        return {}
    try:
        rep = json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        raise BadInputError(f"{p}: not valid JSON; re-run `tokenfoundry train`") from None
    out: dict[str, Any] = {}
    snaps = rep.get("snapshots") or []
    if snaps:
        out["corpus_snapshots"] = {s.get("corpus", "?"): s.get("snapshot_id") or s.get("path")
                                   for s in snaps if isinstance(s, dict)}
    for k in ("spec", "spec_hash"):
        if k in rep:
            out[f"train_{k}"] = rep[k]
    if "code_version" in rep:
        out["train_code_version"] = rep["code_version"]
    return out


def lineage_from_extend_report(candidate_dir: Path) -> dict[str, Any]:
    """The base model (name, sha256, source) and the extension's inputs from
    ``extend_report.json`` (written by `tokenfoundry extend`), under ``base_model``/``extend``."""
    p = candidate_dir / EXTEND_REPORT
    if not p.is_file():
        return {}
    try:
        rep = json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        raise BadInputError(f"{p}: not valid JSON; re-run `tokenfoundry extend`") from None
    if not isinstance(rep, dict):
        raise BadInputError(f"{p}: expected a JSON object; re-run `tokenfoundry extend`")
    base = rep.get("base") if isinstance(rep.get("base"), dict) else {}
    corpus = rep.get("corpus") if isinstance(rep.get("corpus"), dict) else {}
    out: dict[str, Any] = {}
    if base:
        out["base_model"] = {k: base[k] for k in ("name", "sha256", "source") if k in base}
    ext = {k: rep[k] for k in ("spec_hash", "init", "seed", "filter", "tokens_added") if k in rep}
    if "sha256" in corpus:
        ext["corpus_sha256"] = corpus["sha256"]
    if ext:
        out["extend"] = ext
    return out


def evaluation_from_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """(metrics of the candidate, gate results, evaluation dir) from an ``evaluation.json``."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such evaluation file; pass the evaluation.json written by "
                            "`tokenfoundry evaluate`")
    try:
        ev = json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        raise BadInputError(f"{p}: not valid JSON") from None
    cand = ev.get("candidate")
    toks = ev.get("tokenizers") or {}
    metrics = dict(toks.get(cand) or {}) if cand else {}
    refs = {n: {k: v for k, v in (m or {}).items() if isinstance(v, (int, float)) or v is None}
            for n, m in toks.items() if n != cand}
    return {"metrics": {"candidate": cand, **metrics, "references": refs},
            "gates": ev.get("gates") or [], "gates_passed": ev.get("gates_passed"),
            "dir": p.parent}


def publish_candidate(registry_uri: str | Registry | None, candidate_dir: str | os.PathLike[str],
                      name: str, lineage: Mapping[str, Any] | None = None,
                      metrics: Mapping[str, Any] | None = None,
                      gate_results: Iterable[Any] | None = None,
                      aliases: Iterable[str] = (LATEST,),
                      evaluation_dir: str | os.PathLike[str] | None = None,
                      progress: Progress = no_progress) -> dict[str, Any]:
    """Publish ``candidate_dir`` as the next version of ``name``; return the PublishResult as a
    dict (``ref``, ``version``, ``uri``, ``reused``, ``registry``, ``files``, ``bytes``,
    ``aliases``). Raises GateFailed (nothing published) if any gate result failed."""
    gates = check_gate_results(gate_results or [])
    cand = Path(candidate_dir)
    if not cand.is_dir():
        raise BadInputError(f"{cand}: candidate directory not found; pass the --out directory "
                            "of `tokenfoundry train`")
    files: dict[str, Path] = {}
    for p in sorted(cand.rglob("*")):
        if p.is_file():
            files[p.relative_to(cand).as_posix()] = p
    if evaluation_dir is not None:
        ev = Path(evaluation_dir)
        for rel in EVALUATION_FILES:
            if (ev / rel).is_file():
                files[f"evaluation/{rel}"] = ev / rel
        for png in sorted((ev / "plots").glob("*.png")) if (ev / "plots").is_dir() else []:
            files[f"evaluation/plots/{png.name}"] = png
    lin = {**lineage_from_train_report(cand), **lineage_from_extend_report(cand),
           "source": str(cand.absolute()), **dict(lineage or {})}
    reg = registry_uri if isinstance(registry_uri, Registry) else Registry(registry_uri)
    res = reg.publish(name, files if evaluation_dir is not None else cand, lineage=lin,
                      metrics=dict(metrics or {}), gates=gates, aliases=list(aliases),
                      progress=progress)
    return res.model_dump(mode="json")


#: The stage's entry point under the name the pipeline interfaces list.
publish = publish_candidate
