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


#: Deepest nesting of mappings/sequences a spec may have (real specs have 4-5 levels).
MAX_YAML_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently, so a typo'd second ``train:`` would override the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let the base class report it
                break
            if first is not None:
                raise BadInputError(f"{self.name}: line {line}: duplicate key {key!r} "
                                    f"(first given on line {first}); keep one of them")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_OPEN = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken, yaml.BlockSequenceStartToken,
         yaml.BlockMappingStartToken)
_CLOSE = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)


def _too_deep(text: str) -> bool:
    """Nesting deeper than MAX_YAML_DEPTH, found from the token stream before anything is
    built: PyYAML's composer recurses per level and its scanner slows down with depth, so a
    line of 100,000 ``[`` is stopped after the first few dozen tokens."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        depth += isinstance(token, _OPEN) - isinstance(token, _CLOSE)
        if depth > MAX_YAML_DEPTH:
            return True
    return False


def read_yaml_mapping(path: str | Path, what: str = "spec file", hint: str = "") -> dict[str, Any]:
    """A YAML file's top-level mapping; BadInputError (one line, naming the file) otherwise.

    Refused: a missing file, bytes that are not UTF-8, invalid YAML, a key given twice in one
    mapping (both lines named), nesting deeper than :data:`MAX_YAML_DEPTH`, a top level that is
    not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such {what}" + (f"; {hint}" if hint else ""))
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise BadInputError(f"{p}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                            f"offset {e.start}); save the file as UTF-8") from None
    loader = _StrictLoader(text)
    loader.name = str(p)
    try:
        if _too_deep(text):
            raise BadInputError(f"{p}: nested deeper than {MAX_YAML_DEPTH} levels; a spec is "
                                "a few levels of mappings and lists")
        data = loader.get_single_data()
    except yaml.YAMLError as err:
        one_line = " ".join(str(err).split())
        raise BadInputError(f"{p}: not valid YAML: {one_line}") from None
    except RecursionError:
        raise BadInputError(f"{p}: nested deeper than {MAX_YAML_DEPTH} levels; a spec is a "
                            "few levels of mappings and lists") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise BadInputError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_yaml_spec(model: type[Spec], path: str | Path) -> Spec:
    """Read a YAML file and validate it; errors name the file and the key path."""
    data = read_yaml_mapping(path, "spec file", "pass the path of a pipeline YAML file")
    return validate_spec(model, data, str(path))
