"""Base class and hashing for every spec (pipeline.yaml and its sections).

Specs are pydantic v2 models that are frozen and forbid unknown keys, so a typo in a YAML file
is an error naming the key before any work starts. ``spec_hash`` is the stable identity of a
spec: sha256 over canonical JSON (sorted keys, no whitespace), used in content-addressed ids.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tokenfoundry.schemas.errors import BadInputError


class Spec(BaseModel):
    """A frozen, strict configuration model."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def spec_hash(self) -> str:
        return stable_hash(self.model_dump(mode="json"))


def stable_hash(obj: Any, n: int = 64) -> str:
    """sha256 hex of the canonical JSON of ``obj`` (first ``n`` hex chars)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:n]


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line per problem, each naming the key path, e.g. ``pipeline.yaml: train.vocab_size: ...``."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        lines.append(f"{where}: {path}: {msg}")
    return "\n".join(lines)


def validate_spec(model: type[Spec], data: Any, where: str) -> Spec:
    """Validate ``data`` into ``model``; raise BadInputError naming ``where`` and each key path."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise BadInputError(format_validation_error(err, where)) from None


def read_yaml_mapping(path: str | Path, what: str = "spec file", hint: str = "") -> dict[str, Any]:
    """A YAML file's top-level mapping; BadInputError naming the file (and ``hint``) otherwise."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such {what}" + (f"; {hint}" if hint else ""))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise BadInputError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_yaml_spec(model: type[Spec], path: str | Path) -> Spec:
    """Read a YAML file and validate it; errors name the file and the key path."""
    data = read_yaml_mapping(path, "spec file", "pass the path of a pipeline YAML file")
    return validate_spec(model, data, str(path))
