"""The repository's shape and its import direction: flows -> tasks -> storage -> schemas.

Prefect may be imported only in flows/ and tasks/ (see ../shared/DESIGN.md), so every algorithm
and storage operation stays usable without it. This test fails CI on any violation.
"""

from __future__ import annotations

import ast
import tomllib

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LAYERS = ["flows", "tasks", "storage", "schemas"]  # each may import only those to its right
PREFECT_ALLOWED = {"flows", "tasks"}


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_import_direction_and_prefect_only_in_flows_and_tasks():
    problems = []
    for i, layer in enumerate(LAYERS):
        allowed = set(LAYERS[i:])
        for path in sorted((REPO / layer).rglob("*.py")):
            for lineno, mod in _imports(path):
                parts = mod.split(".")
                where = f"{path.relative_to(REPO)}:{lineno}"
                if parts[0] == "tokenfoundry" and len(parts) > 1 and parts[1] in LAYERS:
                    if parts[1] not in allowed:
                        problems.append(f"{where}: {layer}/ imports {mod} (upward)")
                if parts[0] in LAYERS:
                    problems.append(f"{where}: import {mod} -> use tokenfoundry.{mod}")
                if parts[0] in ("prefect", "prefect_dask") and layer not in PREFECT_ALLOWED:
                    problems.append(f"{where}: {layer}/ imports {mod}; only flows/ and tasks/ may")
    assert not problems, "\n".join(problems)


def test_every_package_directory_is_listed_in_pyproject():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = set()
    for layer in LAYERS + ["examples"]:  # examples/: the shipped pipelines, as package data
        for init in (REPO / layer).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO).parts
            found.add(".".join(("tokenfoundry", *rel)))
    assert found - listed == set(), f"add to [tool.setuptools].packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but missing: {sorted(listed - found)}"


def test_top_level_is_as_the_design_card_says():
    expected = {"flows", "tasks", "schemas", "storage", "tests", "prefect.yaml", "pyproject.toml",
                "README.md", ".ci", "examples", "benchmarks", "docs"}
    tracked = {p.name for p in REPO.iterdir() if not p.name.startswith(".") or p.name == ".ci"}
    tracked -= {"workspace", "build", "tokenfoundry.egg-info", ".ci"} | {
        p.name for p in REPO.iterdir() if p.name.endswith(".egg-info")}
    assert tracked <= expected | {".ci"}, f"unexpected top-level entries: {sorted(tracked - expected)}"
    assert {"flows", "tasks", "schemas", "storage", "tests", "pyproject.toml"} <= tracked
