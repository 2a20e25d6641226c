"""``tokenfoundry extend``: extend a base model's vocabulary with merges learned on target text.

Calls the extend core directly (no Prefect API start-up); ``--flow`` runs the same work as the
Prefect flow ``flows.extend.extend_flow``.
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

  tokenfoundry extend --base smollm2 --corpus uk-text/ --new-tokens 4000 --init fvt \\
      --filter script --heldout uk-heldout.txt --out models/smollm2-uk

  tokenfoundry extend --base ./my-llama --corpus legal --new-tokens 2000 --init multivariate \\
      --filter reference --reference general.txt --seed 1 --out models/legal --json

  tokenfoundry extend examples/extend-uk.yaml --out models/smollm2-uk   # its extend: section
"""


def _params(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values parse as JSON when they can (numbers, true, lists)."""
    import json

    from tokenfoundry.schemas.errors import BadInputError

    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--init-param {item!r}: expected KEY=VALUE, e.g. temperature=0.1")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


@app.command("extend", epilog=_EXAMPLE)
@cli_errors
def extend_cmd(
    pipeline: Annotated[str | None, typer.Argument(
        help="A pipeline YAML whose extend: section to run (flags override it).")] = None,
    base: Annotated[str | None, typer.Option(
        "--base", help="'smollm2' (default) or a local HF causal-LM dir with a BPE "
        "tokenizer.json.")] = None,
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", "-c", help="Target text: workspace corpus NAME or PATH (txt/md/jsonl/parquet "
        "file or dir). Repeatable.")] = None,
    new_tokens: Annotated[int | None, typer.Option("--new-tokens", "-n",
                                                   help="Tokens (merges) to add.")] = None,
    init: Annotated[str | None, typer.Option(
        "--init", help="random, mean, univariate, multivariate, fvt, wechsel, cw2v, cw2v-fvt, "
        "focus.")] = None,
    init_param: Annotated[list[str] | None, typer.Option(
        "--init-param", help="Method option KEY=VALUE. Repeatable.")] = None,
    filter: Annotated[str | None, typer.Option(
        "--filter", help="none | script (only non-ASCII merges: a new script) | reference "
        "(gain over --reference text).")] = None,
    reference: Annotated[list[str] | None, typer.Option(
        "--reference", help="Reference text for --filter reference. Repeatable.")] = None,
    heldout: Annotated[list[str] | None, typer.Option(
        "--heldout", help="Held-out text: bytes/token and bits/byte of base and extended "
        "model. Repeatable.")] = None,
    max_bytes: Annotated[int | None, typer.Option(
        "--max-bytes", help="Read at most this many bytes of target text.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of random draws.")] = None,
    out_dir: Annotated[str | None, typer.Option(
        "--out", "-o",
        help="Output directory (written to a temp dir, renamed into place).")] = None,
    workspace: WorkspaceOpt = "workspace",
    json_out: JsonOpt = False,
    flow: FlowOpt = False,
) -> None:
    """Add BPE merges learned on target text to a base model and initialise the new embeddings.

    Merges continue BPE on the base tokenizer's own segmentation (old ids and merges unchanged;
    every new token expands into base tokens). The new rows are initialised by --init; old rows
    stay bit-identical. Writes an AutoTokenizer/AutoModelForCausalLM directory and
    extend_report.json (base sha256, corpus, tokens added, bytes/token, bits/byte, time, RSS).
    """
    from tokenfoundry.schemas.config import read_yaml_mapping, validate_spec
    from tokenfoundry.schemas.errors import BadInputError
    from tokenfoundry.schemas.extend import ExtendSpec

    data: dict[str, Any] = {}
    where = "tokenfoundry extend"
    if pipeline:
        doc = read_yaml_mapping(pipeline, "pipeline file", "pass a pipeline YAML with extend:")
        section = doc.get("extend", doc if "corpora" in doc and "train" not in doc else None)
        if not isinstance(section, dict):
            raise BadInputError(f"{pipeline}: no extend: section; add one (base, corpora, "
                                "new_tokens, init) or use the flags")
        data = dict(section)
        where = f"{pipeline}: extend"
    flags = {"base": base, "corpora": corpus, "new_tokens": new_tokens, "init": init,
             "filter": filter, "reference": reference, "heldout": heldout,
             "max_bytes": max_bytes, "seed": seed}
    data.update({k: v for k, v in flags.items() if v is not None})
    if init_param:
        data["init_params"] = {**data.get("init_params", {}), **_params(init_param)}
    if not data.get("corpora"):
        raise BadInputError("tokenfoundry extend: give --corpus NAME|PATH (or a pipeline YAML "
                            "with extend.corpora)")
    if not out_dir:
        raise BadInputError("tokenfoundry extend: give --out DIR (the extended model directory)")
    spec = validate_spec(ExtendSpec, data, where)
    if flow:
        from tokenfoundry.flows.extend import extend_flow

        report = extend_flow(spec=spec.model_dump(mode="json"), workspace=workspace, out=out_dir)
    else:
        from tokenfoundry.tasks.extend.core import extend
        from tokenfoundry.tasks.progress import show_progress

        with show_progress("extend", console=err) as progress:
            report = extend(spec, out_dir, workspace=workspace,
                            progress=lambda stage, done, total: progress(done, total, stage))
    if json_out:
        emit_json(report)
    else:
        _print_summary(report)


def _print_summary(r: dict) -> None:
    from rich.table import Table

    t = Table(title=f"extend {r['base']['name']} -> {r['out']}", title_justify="left")
    t.add_column("")
    t.add_column("value", justify="right")
    rows = [("init", r["init"]), ("tokens added", r["tokens_added"]),
            ("vocab size", r["vocab_size"])]
    for key, label in (("bytes_per_token_before", "bytes/token base"),
                       ("bytes_per_token_after", "bytes/token extended"),
                       ("token_reduction", "fewer tokens"),
                       ("bits_per_byte_base", "bits/byte base"),
                       ("bits_per_byte", "bits/byte extended")):
        if key in r:
            rows.append((label, f"{r[key]:.3f}"))
    rows += [("seconds", f"{r['seconds']:.1f}"), ("peak RSS MB", f"{r['peak_rss_mb']:.0f}")]
    if r.get("reused"):
        rows.append(("reused", "yes (same spec and base)"))
    for k, v in rows:
        t.add_row(k, str(v))
    out.print(t)
