"""The shipped pipelines and the machine-dependent sources they name.

The examples (``examples/*.yaml``) ship inside the package as ``tokenfoundry.examples`` and are
read with :mod:`importlib.resources`, so ``tokenfoundry quickstart`` and
``tokenfoundry run legal`` work from any directory, in an editable or a wheel install.

Sources may hold placeholders that only this machine can resolve, expanded at run time by
:func:`resolve_machine_sources`:

- ``${DIST_INFO_LICENCES}``: the licence files of every installed wheel (``*.dist-info``);
- ``${SITE_PACKAGES}``: this Python's site-packages directory (inside the venv, in a venv);
- ``${STDLIB}``: this Python's standard library (``sysconfig.get_paths()["stdlib"]``; in a
  virtualenv this is the base interpreter's, not ``${SITE_PACKAGES}/..``).
"""

from __future__ import annotations

import glob
import os
import site
import sysconfig
from collections.abc import Callable
from importlib import resources
from typing import Any

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.pipeline import PipelineSpec, validate_pipeline

#: Placeholders a source may hold, resolved on this machine at run time.
PLACEHOLDERS = ("${DIST_INFO_LICENCES}", "${SITE_PACKAGES}", "${STDLIB}")

#: The package that holds examples/*.yaml.
EXAMPLES_PACKAGE = "tokenfoundry.examples"


def example_names() -> list[str]:
    """Names of the shipped example pipelines (``quickstart``, ``legal``, ...)."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(EXAMPLES_PACKAGE).iterdir()
                  if p.name.endswith(".yaml"))


def example_text(name: str) -> str:
    """The YAML text of a shipped example (``legal`` or ``legal.yaml``)."""
    stem = os.path.basename(name).removesuffix(".yaml")
    f = resources.files(EXAMPLES_PACKAGE) / f"{stem}.yaml"
    if not f.is_file():
        raise BadInputError(f"{name}: no such pipeline file, and no shipped example of that "
                            f"name (shipped: {', '.join(example_names())})")
    return f.read_text(encoding="utf-8")


def site_packages_dirs() -> list[str]:
    """This Python's site-packages directories that exist (purelib first)."""
    dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
            *getattr(site, "getsitepackages", lambda: [])()]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def stdlib_dir() -> str:
    """The standard library of this Python (the base interpreter's, inside a venv too)."""
    return sysconfig.get_paths()["stdlib"]


def dist_info_licences() -> list[str]:
    """Licence files of installed distributions (``*.dist-info/LICENSE*``, ``licenses/*``)."""
    found: list[str] = []
    for sp in site_packages_dirs():
        for pat in ("*.dist-info/LICEN[CS]E*", "*.dist-info/COPYING*",
                    "*.dist-info/licenses/**/*", "*.dist-info/licences/**/*"):
            found += [p for p in glob.glob(os.path.join(sp, pat), recursive=True)
                      if os.path.isfile(p) and os.path.getsize(p) > 0]
    return sorted(dict.fromkeys(found))


def _expand(source: str) -> list[str] | None:
    """The paths a placeholder source stands for; None if ``source`` has no placeholder."""
    if source == "${DIST_INFO_LICENCES}":
        return dist_info_licences()
    if "${STDLIB}" in source:
        return [source.replace("${STDLIB}", stdlib_dir())]
    if "${SITE_PACKAGES}" in source:
        sp = site_packages_dirs()
        return [source.replace("${SITE_PACKAGES}", sp[0])] if sp else []
    return None


def resolve_machine_sources(spec: Any, where: str, drop_missing: bool = False,
                            warn: Callable[[str], None] | None = None) -> Any:
    """Expand the placeholders (:data:`PLACEHOLDERS`) in corpus sources; with
    ``drop_missing``, leave out sources (and corpora) this machine does not have, saying so
    through ``warn``."""
    data = spec.model_dump(mode="json") if isinstance(spec, PipelineSpec) else dict(spec)
    changed = False
    corpora = []
    dropped: list[str] = []
    for c in data["corpora"]:
        sources: list[str] = []
        for s in c["sources"]:
            expanded = _expand(s)
            if expanded is not None:
                sources += expanded
                changed = True
            elif drop_missing and not s.startswith(("s3://", "gs://", "http")) \
                    and not glob.glob(s):
                dropped.append(s)
                changed = True
            else:
                sources.append(s)
        if sources:
            corpora.append({**c, "sources": sources})
        else:
            dropped.append(f"corpus {c['corpus']}")
            changed = True
    if not changed:
        return spec
    if dropped:
        (warn or (lambda m: None))(f"not on this machine, skipped: {', '.join(dropped)}")
    names = {c["corpus"] for c in corpora}
    if not corpora:
        raise BadInputError(f"{where}: none of the pipeline's sources exist on this machine")
    data["corpora"] = corpora
    data["train"] = {**data["train"], "corpora": [c for c in data["train"]["corpora"]
                                                  if c in names]}
    if data.get("evaluate", {}).get("corpora"):
        data["evaluate"]["corpora"] = [c for c in data["evaluate"]["corpora"] if c in names]
    return validate_pipeline(data, where)


def quickstart_spec(warn: Callable[[str], None] | None = None) -> PipelineSpec:
    """The quickstart PipelineSpec (``examples/quickstart.yaml``), machine sources resolved
    and sources this machine lacks (a locale, say) dropped."""
    import yaml

    where = "examples/quickstart.yaml"
    spec = validate_pipeline(yaml.safe_load(example_text("quickstart")), where)
    return resolve_machine_sources(spec, where, drop_missing=True, warn=warn)


def load_pipeline_file(path: str, overrides: dict[str, Any] | None = None) -> PipelineSpec:
    """A pipeline YAML file, or, when no such file exists, the shipped example of that name
    (``legal``, ``examples/legal.yaml``), so ``tokenfoundry run examples/legal.yaml`` works
    from any directory. Machine sources are resolved."""
    import yaml

    from tokenfoundry.schemas.pipeline import load_pipeline

    stem = os.path.basename(str(path)).removesuffix(".yaml")
    if not os.path.exists(path) and stem in example_names():
        where = f"examples/{stem}.yaml (shipped)"
        spec = validate_pipeline(yaml.safe_load(example_text(stem)), where, overrides)
    else:
        where = str(path)
        spec = load_pipeline(path, overrides)
    return resolve_machine_sources(spec, where)


def _files_of(source: str) -> list[str]:
    """Regular files a source names (a file, a directory walked without following links, or
    a glob), in path order."""
    paths = sorted(glob.glob(source)) if glob.has_magic(source) else [source]
    files: list[str] = []
    for p in paths:
        if os.path.isfile(p):
            files.append(p)
        elif os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                files += [os.path.join(root, n) for n in sorted(names)
                          if os.path.isfile(os.path.join(root, n))
                          and not os.path.islink(os.path.join(root, n))]
    return files


def cap_source_bytes(spec: PipelineSpec, max_bytes: int, where: str) -> PipelineSpec:
    """The same pipeline on at most ``max_bytes`` of source files per corpus (``run
    --max-bytes``): whole files, taken in turn from each of a corpus' sources (path order
    within a source), so every source (e.g. every language's catalogs) keeps a share; the
    train sample is capped at ``max_bytes`` too. Everything else stays as the spec says."""
    if max_bytes < 1:
        raise BadInputError(f"--max-bytes {max_bytes}: give a positive size, e.g. 20MB")
    data = spec.model_dump(mode="json")
    for c in data["corpora"]:
        if any(s.startswith(("s3://", "gs://", "http")) for s in c["sources"]):
            raise BadInputError(f"--max-bytes: corpus {c['corpus']} reads remote sources; "
                                "the cap applies to local files only")
        queues = [_files_of(s) for s in c["sources"]]
        chosen: list[str] = []
        total = 0
        while total < max_bytes and any(queues):
            for q in queues:
                if q and total < max_bytes:
                    f = q.pop(0)
                    chosen.append(f)
                    total += os.path.getsize(f)
        if not chosen:
            raise BadInputError(f"{where}: corpus {c['corpus']}: its sources hold no files")
        c["sources"] = chosen
    tmax = data["train"].get("max_bytes")
    data["train"]["max_bytes"] = min(tmax, max_bytes) if tmax else max_bytes
    return validate_pipeline(data, f"{where} (--max-bytes {max_bytes})")
