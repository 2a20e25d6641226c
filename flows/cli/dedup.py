"""``tokenfoundry dedup``: exact + MinHash-LSH near-duplicate removal of a corpus snapshot.

Calls the dedup core directly (no Prefect API start-up); ``--flow`` runs the same cores as the
Prefect flow ``flows.dedup.dedup_flow`` (signatures fanned out per shard by the task runner).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tokenfoundry.flows.cli.app import (
    FlowOpt,
    JsonOpt,
    WorkspaceOpt,
    app,
    cli_errors,
    emit_json,
    err,
    out,
)

_EXAMPLE = """
Examples:

  tokenfoundry dedup --corpus legal

  tokenfoundry dedup --corpus legal --threshold 0.7 --json

  tokenfoundry dedup --corpus web --incremental --boilerplate-min-docs 50 --workers 2
"""


@app.command("dedup", help=(
    "Remove exact duplicates (same content_hash, DuckDB) and near-duplicates (MinHash over word "
    "n-gram shingles, LSH bands, Jaccard verification of candidate pairs, union-find clusters) from the "
    "corpus' 'ingest' snapshot (or --snapshot). Writes a new snapshot with a '_clusters' table "
    "(doc_id, cluster_id for every input document) and _dedup_report.md; sets the refs 'dedup' "
    "and 'latest'. Always input == kept + exact_duplicates + near_duplicates (+ "
    "boilerplate_only with --boilerplate-min-docs).\n\n" + _EXAMPLE))
@cli_errors
def dedup_command(
    corpus: Annotated[str, typer.Option("--corpus", "-c", help="Corpus name.")],
    threshold: Annotated[float, typer.Option(
        help="Jaccard similarity of word n-gram sets for near-duplicates.")] = 0.8,
    workspace: WorkspaceOpt = "./workspace",
    json_out: JsonOpt = False,
    flow: FlowOpt = False,
    snapshot: Annotated[str | None, typer.Option(
        help="Input snapshot id or ref (default: the 'ingest' ref, else 'latest').")] = None,
    ngram: Annotated[int | None, typer.Option(help="Words per shingle (default: 5).")] = None,
    num_perm: Annotated[int | None, typer.Option(
        help="MinHash permutations (default: 128).")] = None,
    bands: Annotated[int | None, typer.Option(
        help="LSH bands (with --rows) (default: optimal for the threshold).")] = None,
    rows: Annotated[int | None, typer.Option(help="Signature rows per band (with --bands).")] = None,
    verify: Annotated[str | None, typer.Option(
        help="Check LSH candidate pairs: 'jaccard' (exact), 'estimate' (from signatures) or "
        "'none' (default: jaccard).")] = None,
    exact: Annotated[bool | None, typer.Option(
        "--exact/--no-exact", help="Remove exact duplicates (default: on).")] = None,
    near: Annotated[bool | None, typer.Option(
        "--near/--no-near", help="Remove near-duplicates (default: on).")] = None,
    incremental: Annotated[bool, typer.Option(
        "--incremental", help="Documents already in an earlier dedup snapshot of the corpus "
        "count as duplicates (nightly runs add only what is new).")] = False,
    against: Annotated[list[str] | None, typer.Option(
        help="With --incremental: the earlier snapshot ids to compare with (repeatable) "
        "(default: every earlier dedup snapshot).")] = None,
    boilerplate_min_docs: Annotated[int | None, typer.Option(
        help="Remove lines that occur in more than N documents (headers, footers).")] = None,
    seed: Annotated[int | None, typer.Option(help="Permutation seed (default: 42).")] = None,
    workers: Annotated[int, typer.Option(
        help="Processes for MinHash signatures on the direct path (same output).")] = 1,
) -> None:
    from tokenfoundry.schemas.config import validate_spec
    from tokenfoundry.schemas.dedup import DedupSpec

    data: dict[str, Any] = {"corpus": corpus, "threshold": threshold}
    for key, value in [("snapshot", snapshot), ("ngram", ngram), ("num_perm", num_perm),
                       ("bands", bands), ("rows", rows), ("verify", verify), ("exact", exact),
                       ("near", near), ("boilerplate_min_docs", boilerplate_min_docs),
                       ("seed", seed)]:
        if value is not None:
            data[key] = value
    if incremental:
        data["incremental"] = True
    if against:
        data["against"] = list(against)
    spec = validate_spec(DedupSpec, data, "tokenfoundry dedup")
    if workers < 1:
        from tokenfoundry.schemas.errors import BadInputError

        raise BadInputError("--workers: must be at least 1")

    if flow:
        from tokenfoundry.flows.dedup import dedup_flow

        result = dedup_flow(spec=spec.model_dump(mode="json"), workspace=workspace)
    else:
        result = _run_direct(spec, workspace, workers).model_dump(mode="json")

    if json_out:
        emit_json(result)
    else:
        _summary(result)


def _run_direct(spec, workspace: str, workers: int):
    from tokenfoundry.storage.workspace import Workspace
    from tokenfoundry.tasks.dedup.core import dedup
    from tokenfoundry.tasks.progress import show_progress

    with show_progress("dedup", console=err) as progress:
        return dedup(Workspace(workspace), spec, progress=progress, workers=workers)


def _summary(r: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"dedup -> {r['snapshot_id']}" + (" (reused)" if r.get("reused") else ""))
    t.add_column("documents")
    t.add_column("count", justify="right")
    for k in ("input", "exact_duplicates", "near_duplicates", "boilerplate_only", "kept"):
        if k != "boilerplate_only" or r.get(k):
            t.add_row(k, f"{r[k]:,}")
    out.print(t)
    out.print(f"dataset:  {r['dataset_path']}")
    out.print(f"clusters: {r['clusters_path']}")
    if r.get("report_path"):
        out.print(f"report:   {r['report_path']}")
