"""A versioned artifact registry on fsspec: local directories by default, ``s3://`` for teams.

The format (layout, manifest fields, aliases, content records, commit protocol) is documented
for consumers without tokenfoundry in docs/registry-format.md. Modules:

- ``refs``: names, references, paths, the registry URI and the cache root;
- ``manifest``: hashing (``hashlib.file_digest``), content identity, manifest checks;
- ``store``: the only backend-specific code (local: rename + exclusive create; object store:
  conditional put, public fsspec only);
- ``aliases``: append-only alias logs; ``publish``: the commit protocol;
- ``retrieve``: verify, and the verified pull through the cache; ``bundle``: export/import;
  ``gc``.

``Registry`` below is the one object users hold; its methods are those modules' functions.
Hand-written because no maintained library does versioned, checksummed, alias-carrying artifact
directories on plain fsspec (MLflow/DVC bring servers or their own formats). JSON only; nothing
here unpickles anything.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.registry import (
    BUNDLE_FORMAT,
    AliasEvent,
    ExportResult,
    GcResult,
    ImportResult,
    ListResult,
    NameInfo,
    PromoteResult,
    PublishResult,
    PullResult,
    ShowResult,
    VerifyResult,
    VersionInfo,
    VersionManifest,
)
from tokenfoundry.storage.registry import aliases as _aliases
from tokenfoundry.storage.registry import bundle as _bundle
from tokenfoundry.storage.registry import gc as _gc
from tokenfoundry.storage.registry import publish as _publish
from tokenfoundry.storage.registry import retrieve as _retrieve
from tokenfoundry.storage.registry.bundle import ENV_MAX_IMPORT, Bundle, read_bundle
from tokenfoundry.storage.registry.manifest import content_sha256, sha256_file
from tokenfoundry.storage.registry.publish import ENV_BARRIER, collect_source, no_progress
from tokenfoundry.storage.registry.refs import (
    ENV_CACHE,
    ENV_REGISTRY,
    LATEST,
    MANIFEST,
    cache_root,
    check_alias,
    parse_ref,
    path_problem,
    resolve_registry_uri,
)
from tokenfoundry.storage.registry.store import ENV_CLAIM, ENV_PAUSE, Progress, Store
from tokenfoundry.storage.workspace import check_name

DEFAULT_GRACE_SECONDS = _gc.DEFAULT_GRACE_SECONDS


class Registry:
    """One registry root on any fsspec filesystem (see docs/registry-format.md)."""

    def __init__(self, uri: str | os.PathLike[str] | None = None,
                 storage_options: dict[str, Any] | None = None):
        self.store = Store.open(resolve_registry_uri(uri), storage_options)
        self.uri, self.fs, self.root, self.local = (self.store.uri, self.store.fs,
                                                    self.store.root, self.store.local)

    def __repr__(self) -> str:
        return f"Registry({self.uri!r})"

    # ---- reading -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        return [n for n in self.store.ls("") if not n.startswith(("_", "."))]

    def versions(self, name: str) -> list[int]:
        """Committed versions (those with a manifest), ascending."""
        return self.store.versions(check_name(name, "registry"))

    def manifest_bytes(self, name: str, version: int) -> bytes:
        return _retrieve.read_manifest(self.store, name, version)[0]

    def manifest(self, name: str, version: int) -> VersionManifest:
        return _retrieve.read_manifest(self.store, name, version)[1]

    def alias_events(self, name: str, alias: str) -> list[AliasEvent]:
        return _aliases.events(self.store, name, alias)

    def alias_version(self, name: str, alias: str) -> int | None:
        return _aliases.state(self.store, name, alias)[1]

    def aliases(self, name: str) -> dict[str, int]:
        return _aliases.current(self.store, name)

    def resolve(self, ref: str, check: bool = True) -> tuple[str, int]:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` -> (name, version), committed.
        ``check=False`` skips the existence check of an explicit version (for callers that
        read its manifest next, which fails the same way)."""
        name, sel = parse_ref(ref)
        if sel.isascii() and sel.isdigit():
            v = int(sel)
            if check and not self.store.exists(posixpath.join(name, sel, MANIFEST)):
                raise BadInputError(f"{ref}: no such version in registry {self.uri} (versions "
                                    f"of {name}: {self._known(name)})")
            return name, v
        v = self.alias_version(name, sel)
        if v is None and sel == LATEST:
            vs = self.versions(name)
            v = vs[-1] if vs else None
        if v is not None:
            return name, v
        if not self.versions(name):
            raise BadInputError(f"{ref}: registry {self.uri} has no tokenizer {name!r} "
                                f"(names: {', '.join(self.names()) or 'none'})")
        raise BadInputError(f"{ref}: {name!r} has no alias {sel!r} (aliases: "
                            f"{', '.join(sorted(self.aliases(name))) or 'none'}); set it with "
                            f"`tokenfoundry registry promote {name}@N --alias {sel}`")

    def _known(self, name: str) -> str:
        return ", ".join(map(str, self.versions(name))) or "none"

    def list(self) -> ListResult:
        out = []
        for name in self.names():
            vs = self.versions(name)
            if not vs:
                continue
            al = self.aliases(name)
            infos = []
            for v in vs:
                m = self.manifest(name, v)
                infos.append(VersionInfo(version=v, created_at=m.created_at, files=len(m.files),
                                         bytes=m.total_bytes,
                                         aliases=sorted(a for a, av in al.items() if av == v)))
            out.append(NameInfo(name=name, versions=infos, aliases=al))
        return ListResult(registry=self.uri, tokenizers=out)

    def show(self, ref: str) -> ShowResult:
        name, v = self.resolve(ref)
        m = json.loads(self.manifest_bytes(name, v))
        al = self.aliases(name)
        history = [e for a in sorted(al) for e in self.alias_events(name, a)]
        return ShowResult(ref=f"{name}@{v}", name=name, version=v,
                          uri=self.store.full_uri(posixpath.join(name, str(v))),
                          aliases=sorted(a for a, av in al.items() if av == v),
                          alias_history=sorted(history, key=lambda e: (e.at, e.alias, e.seq)),
                          manifest=m)

    # ---- writing -----------------------------------------------------------------------------

    def _move_alias(self, name: str, alias: str, version: int, by: str, note: str = "",
                    forward_only: bool = False) -> tuple[int | None, bool]:
        return _aliases.move(self.store, name, alias, version, by, note, forward_only)

    def promote(self, ref: str, alias: str, note: str = "") -> PromoteResult:
        """Point ``alias`` at the version ``ref`` resolves to; the move is logged."""
        check_alias(alias)
        if alias == LATEST:
            raise BadInputError("alias 'latest' is moved by publish only; promote to another "
                                "alias (e.g. production, staging)")
        name, v = self.resolve(ref)
        prev, changed = self._move_alias(name, alias, v, "promote", note)
        return PromoteResult(ref=f"{name}@{v}", name=name, version=v, alias=alias,
                             previous=prev, changed=changed)

    def publish(self, name: str, source: str | os.PathLike[str] | Mapping[str, Any], *,
                lineage: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                gates: list[dict[str, Any]] | None = None, aliases: Iterable[str] = (),
                progress: Progress = no_progress) -> PublishResult:
        """Publish the files of ``source`` (a directory or {path in version: file}) as the next
        version of ``name``; identical files return the existing version (``reused``).
        ``latest`` moves forward to the version; the other ``aliases`` move to it, logged."""
        return _publish.publish(self.store, name, source, lineage=lineage, metrics=metrics,
                                gates=gates, aliases_to_move=aliases, progress=progress)

    def verify(self, ref: str, progress: Progress = no_progress) -> VerifyResult:
        """Re-hash every file of a version; problems name the file (also unexpected files)."""
        return _retrieve.verify(self.store, *self.resolve(ref, check=False), progress=progress)

    def pull(self, ref: str, to: str | os.PathLike[str] | None = None, *, cache: bool = True,
             force: bool = False, progress: Progress = no_progress) -> PullResult:
        """Copy a verified version into ``to`` (default: the local cache, returned as is)."""
        return _retrieve.pull(self.store, *self.resolve(ref, check=False), to, cache=cache,
                          force=force, progress=progress)

    def gc(self, grace_seconds: float = DEFAULT_GRACE_SECONDS, force: bool = False) -> GcResult:
        """Remove what crashed publishes left, older than ``grace_seconds`` (all with
        ``force``: use it only when no publish is running)."""
        return _gc.gc(self.store, grace_seconds, force)

    def export_bundle(self, ref: str, to: str | os.PathLike[str],
                      progress: Progress = no_progress) -> ExportResult:
        return _bundle.export_bundle(self.store, *self.resolve(ref, check=False), to, progress)

    def import_bundle(self, path: str | os.PathLike[str], *, as_new: bool = False,
                      max_bytes: int | None = None,
                      progress: Progress = no_progress) -> ImportResult:
        return _bundle.import_bundle(self.store, path, as_new=as_new, max_bytes=max_bytes,
                                     progress=progress)


# ---- module-level consumer API -------------------------------------------------------------


def pull(ref: str, to: str | os.PathLike[str] | None = None,
         registry: str | Registry | None = None) -> Path:
    """A verified local directory of ``ref`` (``NAME``, ``NAME@VERSION``, ``NAME@ALIAS``).

    ``to=None`` returns the cached copy (re-verified on every call). The directory holds
    ``manifest.json`` and the version's files; when it holds an HF tokenizer directory,
    ``transformers.AutoTokenizer.from_pretrained(path)`` loads it.
    """
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    return Path(reg.pull(ref, to).path)


def load_tokenizer(ref: str, registry: str | Registry | None = None):
    """A ``tokenizers.Tokenizer`` for ``ref`` (from its ``tokenizer.json``), e.g.
    ``load_tokenizer("legal-bpe@production")``. A sentencepiece-only version returns a
    ``sentencepiece.SentencePieceProcessor``."""
    d = pull(ref, None, registry)
    tj = d / "tokenizer.json"
    if tj.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(tj))
    models = sorted(d.glob("*.model"))
    if models:
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_file=str(models[0]))
    raise BadInputError(f"{ref}: the version holds no tokenizer.json and no sentencepiece "
                        f".model; use pull() and load its files yourself")


__all__ = [
    "BUNDLE_FORMAT", "ENV_BARRIER", "ENV_CACHE", "ENV_CLAIM", "ENV_MAX_IMPORT", "ENV_PAUSE",
    "ENV_REGISTRY", "LATEST", "MANIFEST", "Bundle", "Registry", "cache_root", "check_alias",
    "collect_source", "content_sha256", "load_tokenizer", "parse_ref", "path_problem", "pull",
    "read_bundle", "resolve_registry_uri", "sha256_file",
]
