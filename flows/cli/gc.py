"""``tokenfoundry gc``: remove what killed runs left in the workspace (see storage/gc.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from tokenfoundry.flows.cli.app import JsonOpt, WorkspaceOpt, app, cli_errors, emit_json, out


@app.command("gc", help=(
    "Remove what killed or crashed runs left in the workspace: snapshot directories without "
    "_manifest.json (never committed), dedup's _work/ directories and *.tmp-* files of "
    "interrupted writes. Only what has not changed for --grace-hours is removed (a running "
    "stage keeps touching its files); --force removes all of it (only when nothing runs). "
    "Committed snapshots and the registry are never touched (see `tokenfoundry registry gc`)."
    "\n\nExamples:\n\n  tokenfoundry gc --workspace ./ws --dry-run\n\n"
    "  tokenfoundry gc --workspace ./ws --grace-hours 0 --json"))
@cli_errors
def gc_command(
    workspace: WorkspaceOpt = "./workspace",
    grace_hours: Annotated[float, typer.Option(
        help="Keep anything modified less than this many hours ago.")] = 1.0,
    force: Annotated[bool, typer.Option("--force", help="Ignore --grace-hours.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be removed; remove nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    from tokenfoundry.schemas.errors import BadInputError
    from tokenfoundry.storage.gc import collect_garbage
    from tokenfoundry.storage.workspace import Workspace

    if grace_hours < 0:
        raise BadInputError("--grace-hours: must be >= 0")
    res = collect_garbage(Workspace(workspace), grace_seconds=grace_hours * 3600, force=force,
                          dry_run=dry_run)
    if json_out:
        emit_json(res.to_json())
        return
    verb = "would remove" if dry_run else "removed"
    for e in res.removed:
        out.print(f"{verb} {e.kind} {e.path} ({e.bytes:,} bytes, {e.age_hours:.1f} h old)",
                  highlight=False)
    for e in res.kept:
        out.print(f"kept {e.kind} {e.path} (changed {e.age_hours:.2f} h ago, younger than "
                  f"--grace-hours {grace_hours:g})", highlight=False)
    out.print(f"{'would free' if dry_run else 'freed'} {res.bytes_freed:,} bytes "
              f"({len(res.removed)} removed, {len(res.kept)} kept)", highlight=False)
