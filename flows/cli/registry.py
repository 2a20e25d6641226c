"""``tokenfoundry registry``: list, show, pull, publish, promote, verify, gc, export, import.

Calls ``storage.registry.Registry`` directly (no Prefect). The registry is ``--registry URI``
(a local path or ``s3://bucket/prefix``), else ``$TOKENFOUNDRY_REGISTRY``, else
``<workspace>/registry``. Exit codes: 0 ok, 1 a checksum/path/gate problem (naming the file),
2 bad usage or input.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenfoundry.flows.cli.app import (
    JsonOpt,
    WorkspaceOpt,
    app,
    cli_errors,
    emit_json,
    err,
    out,
)

registry_app = typer.Typer(
    name="registry",
    help=(
        "The versioned tokenizer registry (local directory or s3://bucket/prefix): every version "
        "is immutable, checksummed and carries its lineage, metrics and gate results.\n\n"
        "Examples:\n\n"
        "  tokenfoundry registry list\n\n"
        "  tokenfoundry registry pull legal-bpe@production --to ./legal-bpe\n\n"
        "  tokenfoundry registry --registry s3://ml-artifacts/tokenizers promote legal-bpe@3 "
        "--alias production"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(registry_app, name="registry")

RefArg = Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS")]
RegistryOpt = Annotated[
    str | None,
    typer.Option("--registry", "-r", envvar="TOKENFOUNDRY_REGISTRY",
                 help="Registry URI: a local directory or s3://bucket/prefix "
                 "(default: <workspace>/registry)."),
]


@registry_app.callback()
def _registry_root(
    ctx: typer.Context,
    registry: RegistryOpt = None,
    workspace: WorkspaceOpt = "./workspace",
) -> None:
    """Select the registry for the subcommand."""
    ctx.obj = {"registry": registry, "workspace": workspace}


def _open(ctx: typer.Context, registry: str | None):
    from tokenfoundry.storage.registry import Registry
    from tokenfoundry.storage.workspace import Workspace

    obj = ctx.obj or {}
    uri = registry or obj.get("registry") or Workspace(obj.get("workspace") or
                                                        "./workspace").registry_uri
    return Registry(uri)


@contextmanager
def _progress(label: str, quiet: bool = False):
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeElapsedColumn, TransferSpeedColumn)

    with Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeElapsedColumn(), console=err, transient=True,
                  disable=quiet) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: float, total: float | None, message: str = "") -> None:
            bar.update(task, completed=done, total=total)

        yield progress


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _read_json_file(path: str | None, what: str) -> Any:
    if path is None:
        return None
    from tokenfoundry.schemas.errors import BadInputError

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{what} {p}: no such file")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as e:
        raise BadInputError(f"{what} {p}: not valid JSON ({e})") from None


# ---- commands ------------------------------------------------------------------------------------


@registry_app.command("list", help="List tokenizers, their versions and aliases.\n\n"
                      "Example: tokenfoundry registry list --json")
@cli_errors
def list_command(ctx: typer.Context, json_out: JsonOpt = False,
                 registry: RegistryOpt = None) -> None:
    reg = _open(ctx, registry)
    res = reg.list()
    if json_out:
        emit_json(res.model_dump(mode="json"))
        return
    from rich.table import Table

    t = Table(title=f"registry {reg.uri}")
    for c in ("name", "version", "created", "files", "size", "aliases"):
        t.add_column(c, justify="right" if c in ("version", "files", "size") else "left")
    for n in res.tokenizers:
        for v in reversed(n.versions):
            t.add_row(n.name, str(v.version), v.created_at, str(v.files), _size(v.bytes),
                      ", ".join(v.aliases))
    out.print(t)
    if not res.tokenizers:
        out.print("(empty) publish with `tokenfoundry registry publish DIR --name NAME`")


@registry_app.command("show", help="Show one version: files, lineage, metrics, gates, aliases "
                      "and their history. REF is NAME, NAME@VERSION or NAME@ALIAS.\n\n"
                      "Example: tokenfoundry registry show legal-bpe@production")
@cli_errors
def show_command(ctx: typer.Context, ref: RefArg,
                 json_out: JsonOpt = False, registry: RegistryOpt = None) -> None:
    res = _open(ctx, registry).show(ref)
    if json_out:
        emit_json(res.model_dump(mode="json"))
        return
    from rich.table import Table

    m = res.manifest
    out.print(f"[bold]{res.ref}[/]  {res.uri}")
    out.print(f"created {m.get('created_at')}  aliases: {', '.join(res.aliases) or '-'}")
    t = Table(title="files")
    t.add_column("path")
    t.add_column("size", justify="right")
    t.add_column("sha256")
    for f in m.get("files", []):
        t.add_row(f["path"], _size(f["size"]), f["sha256"][:16] + "…")
    out.print(t)
    lin = m.get("lineage", {})
    for k in ("corpus_snapshots", "spec_hash", "train_spec_hash", "code_version", "flow_run_id",
              "source"):
        if lin.get(k):
            out.print(f"{k}: {lin[k]}")
    nums = {k: v for k, v in (m.get("metrics") or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if nums:
        mt = Table(title="metrics")
        mt.add_column("metric")
        mt.add_column("value", justify="right")
        for k, v in sorted(nums.items()):
            mt.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
        out.print(mt)
    for g in m.get("gates", []):
        out.print(f"gate {g.get('expr')}: {'pass' if g.get('passed') else 'FAIL'}")
    for e in res.alias_history:
        out.print(f"{e.at}  {e.alias} -> {e.version} (was {e.previous}) by {e.by}")


@contextmanager
def _refusal_on_stderr():
    """A refused pull or import (a checksum, a path, a link: exit 1) is a verdict on the
    registry's or the bundle's files: it is reported on stderr only and stdout stays empty,
    also with --json (tests/storage/test_registry_cli.py's contract)."""
    from rich.markup import escape

    from tokenfoundry.schemas.errors import CheckFailed

    try:
        yield
    except CheckFailed as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@registry_app.command("pull", help="Copy a verified version into DIR (every sha256 and size "
                      "checked; nothing is left half-written). DIR loads with "
                      "AutoTokenizer.from_pretrained when the version is an HF directory.\n\n"
                      "Example: tokenfoundry registry pull legal-bpe@production --to ./legal-bpe")
@cli_errors
def pull_command(ctx: typer.Context, ref: RefArg,
                 to: Annotated[Path, typer.Option("--to", help="Target directory (new or empty).")],
                 force: Annotated[bool, typer.Option("--force",
                                  help="Replace a non-empty DIR.")] = False,
                 no_cache: Annotated[bool, typer.Option("--no-cache",
                                     help="Do not use or fill the local cache.")] = False,
                 json_out: JsonOpt = False, registry: RegistryOpt = None) -> None:
    reg = _open(ctx, registry)
    with _progress(f"pull {ref}", json_out) as progress, _refusal_on_stderr():
        res = reg.pull(ref, to, cache=not no_cache, force=force, progress=progress)
    if json_out:
        emit_json(res.model_dump(mode="json"))
        return
    out.print(f"pulled [bold]{res.ref}[/] -> {res.path} ({res.files} files, {_size(res.bytes)}"
              f", verified{', from cache' if res.cached else ''})")


@registry_app.command("publish", help="Publish a tokenizer/model directory as the next version "
                      "of NAME (moves 'latest'). Identical files return the existing version. "
                      "With --evaluation, the evaluation's metrics and gate results go into the "
                      "manifest and a failed gate publishes nothing (exit 1).\n\n"
                      "Example: tokenfoundry registry publish out/legal --name legal-bpe "
                      "--evaluation eval/evaluation.json --alias staging")
@cli_errors
def publish_command(ctx: typer.Context,
                    source: Annotated[Path, typer.Argument(help="Directory to publish.")],
                    name: Annotated[str, typer.Option("--name", help="Registry name.")],
                    alias: Annotated[list[str] | None, typer.Option(
                        "--alias", help="Also move this alias to the version (repeatable).")
                    ] = None,
                    evaluation: Annotated[str | None, typer.Option(
                        help="evaluation.json of `tokenfoundry evaluate` (metrics, gates, "
                        "report).")] = None,
                    lineage: Annotated[str | None, typer.Option(
                        help="JSON file with extra lineage (merged into the manifest).")] = None,
                    metrics: Annotated[str | None, typer.Option(
                        help="JSON file with metrics (a mapping).")] = None,
                    json_out: JsonOpt = False, registry: RegistryOpt = None) -> None:
    from tokenfoundry.tasks.publish.core import evaluation_from_json, publish_candidate

    reg = _open(ctx, registry)
    lin = _read_json_file(lineage, "--lineage") or {}
    met = _read_json_file(metrics, "--metrics")
    gates: list[dict[str, Any]] = []
    ev_dir = None
    if evaluation:
        ev = evaluation_from_json(evaluation)
        gates, ev_dir = ev["gates"], ev["dir"]
        met = met if met is not None else ev["metrics"]
        if ev["gates_passed"] is False and all(g.get("passed") for g in gates):
            gates.append({"expr": "gates_passed", "passed": False, "value": False})
    with _progress(f"publish {name}", json_out) as progress:
        res = publish_candidate(reg, source, name, lineage=lin, metrics=met or {},
                                gate_results=gates, aliases=["latest", *(alias or [])],
                                evaluation_dir=ev_dir, progress=progress)
    if json_out:
        emit_json(res)
        return
    verb = "already published as" if res["reused"] else "published"
    out.print(f"{verb} [bold green]{res['ref']}[/] ({res['files']} files, "
              f"{_size(res['bytes'])}) in {res['registry']}; aliases: "
              + ", ".join(f"{a}={v}" for a, v in sorted(res["aliases"].items())))


@registry_app.command("promote", help="Point ALIAS (e.g. production) at NAME@VERSION; the move "
                      "is appended to the alias history.\n\n"
                      "Example: tokenfoundry registry promote legal-bpe@3 --alias production")
@cli_errors
def promote_command(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
                    alias: Annotated[str, typer.Option("--alias", help="Alias to move.")],
                    note: Annotated[str, typer.Option(help="Why (kept in the history).")] = "",
                    json_out: JsonOpt = False, registry: RegistryOpt = None) -> None:
    res = _open(ctx, registry).promote(ref, alias, note=note)
    if json_out:
        emit_json(res.model_dump(mode="json"))
        return
    if res.changed:
        out.print(f"{res.name}@{res.alias} -> {res.version} (was {res.previous})")
    else:
        out.print(f"{res.name}@{res.alias} already -> {res.version}")


@registry_app.command("verify", help="Re-hash every file of a version against its manifest; "
                      "exit 1 naming each missing, changed or unlisted file.\n\n"
                      "Example: tokenfoundry registry verify legal-bpe@3")
@cli_errors
def verify_command(ctx: typer.Context, ref: RefArg,
                   json_out: JsonOpt = False, registry: RegistryOpt = None) -> None:
    reg = _open(ctx, registry)
    with _progress(f"verify {ref}", json_out) as progress:
        res = reg.verify(ref, progress=progress)
    if json_out:
        emit_json(res.model_dump(mode="json"))
    elif res.ok:
        out.print(f"{res.ref}: ok ({res.files} files, {_size(res.bytes)})")
    for p in res.problems:
        err.print(f"[bold red]failed:[/] {res.ref}: {p.path}: {p.problem}", highlight=False)
    if not res.ok:
        raise typer.Exit(1)


@registry_app.command("gc", help="Remove what killed publishes left (staging directories, "
                      "version directories without a manifest, claims of versions never "
                      "committed, content records naming no version) that is older than the "
                      "grace period (--force: all of it; only when no publish is running).\n\n"
                      "Example: tokenfoundry registry gc --grace-hours 1")
@cli_errors
def gc_command(ctx: typer.Context,
               grace_hours: Annotated[float, typer.Option(
                   help="Keep leftovers younger than this.")] = 24.0,
               force: Annotated[bool, typer.Option("--force",
                                help="Remove all leftovers.")] = False,
               json_out: JsonOpt = False, registry: RegistryOpt = None) -> None:
    from tokenfoundry.schemas.errors import BadInputError

    if grace_hours < 0:
        raise BadInputError("--grace-hours: must be >= 0")
    res = _open(ctx, registry).gc(grace_seconds=grace_hours * 3600, force=force)
    if json_out:
        emit_json(res.model_dump(mode="json"))
        return
    for e in res.removed:
        out.print(f"removed {e.kind} {e.path} ({_size(e.bytes)})")
    for e in res.kept:
        out.print(f"kept {e.kind} {e.path} (younger than {grace_hours:g} h)")
    out.print(f"freed {_size(res.bytes_freed)}")


@registry_app.command("export", help="Write NAME@VERSION as one .tar.gz bundle (manifest + "
                      "files, each verified) for another registry, e.g. an air-gapped one.\n\n"
                      "Example: tokenfoundry registry export legal-bpe@3 --to legal-bpe-3.tar.gz")
@cli_errors
def export_command(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
                   to: Annotated[Path, typer.Option("--to", help="Bundle file (.tar.gz).")],
                   json_out: JsonOpt = False, registry: RegistryOpt = None) -> None:
    reg = _open(ctx, registry)
    with _progress(f"export {ref}", json_out) as progress:
        res = reg.export_bundle(ref, to, progress=progress)
    if json_out:
        emit_json(res.model_dump(mode="json"))
        return
    out.print(f"exported {res.ref} -> {res.path} ({_size(res.bytes)}, sha256 {res.sha256})")


@registry_app.command("import", help="Import a bundle (.tar.gz or .zip). The whole bundle is "
                      "checked first; an absolute or '..' member name, a backslash, a link, a "
                      "device or a checksum mismatch refuses it naming the member (exit 1) and "
                      "nothing is written. The version number is kept unless taken.\n\n"
                      "Example: tokenfoundry registry --registry /mnt/registry import "
                      "legal-bpe-3.tar.gz")
@cli_errors
def import_command(ctx: typer.Context,
                   bundle: Annotated[Path, typer.Argument(help="FILE.tar.gz or FILE.zip")],
                   as_new: Annotated[bool, typer.Option(
                       "--as-new", help="If the version number is taken by other files, "
                       "import as the next version.")] = False,
                   json_out: JsonOpt = False, registry: RegistryOpt = None) -> None:
    reg = _open(ctx, registry)
    with _progress(f"import {bundle.name}", json_out) as progress, _refusal_on_stderr():
        res = reg.import_bundle(bundle, as_new=as_new, progress=progress)
    if json_out:
        emit_json(res.model_dump(mode="json"))
        return
    verb = "already present as" if res.reused else "imported"
    out.print(f"{verb} [bold green]{res.ref}[/] into {res.registry}")
