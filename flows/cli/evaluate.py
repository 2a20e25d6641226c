"""``tokenfoundry evaluate``: intrinsic metrics of tokenizers vs references, and gates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

_EPILOG = """
Examples:

  tokenfoundry evaluate --tokenizer out/legal --text heldout/ --gate "bytes_per_token >= 4.0"

  tokenfoundry evaluate --tokenizer ml=out/multi/tokenizer.json --parallel parallel.parquet \\
      --reference o200k,cl100k,llama3 --gate "parity <= 2.0" --gate "premium\\[de] <= 1.3" --json

  tokenfoundry evaluate --tokenizer legal-bpe@production --corpus legal --holdout-fraction 0.05
"""


@app.command("evaluate", epilog=_EPILOG)
@cli_errors
def evaluate_cmd(
    tokenizer: Annotated[list[str] | None, typer.Option(
        "--tokenizer", "-t",
        help="Candidate: tokenizer.json, HF/AutoTokenizer dir, spm .model, NAME@VERSION or a "
        "reference name; LABEL=PATH names it. Repeatable; the first one is gated.")] = None,
    text: Annotated[list[str] | None, typer.Option(
        "--text", help="Held-out text: txt/md file or dir, jsonl, parquet ('text' column). "
        "Repeatable.")] = None,
    parallel: Annotated[str | None, typer.Option(
        "--parallel", help="Parquet with seg_id, lang, text (aligned segments) for premium and "
        "parity.")] = None,
    reference: Annotated[list[str] | None, typer.Option(
        "--reference", "-r",
        help="Reference tokenizers, comma-separated or repeated (default: "
        "o200k,cl100k,llama3,qwen3,gpt2; 'none' for none).")] = None,
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", help="Evaluate on the held-out documents of this workspace corpus "
        "(needs --holdout-fraction). Repeatable.")] = None,
    holdout_fraction: Annotated[float | None, typer.Option(
        "--holdout-fraction", help="The trainer's held-out fraction (storage.splits rule).")] = None,
    corpus_ref: Annotated[str, typer.Option(
        "--corpus-ref", help="Snapshot ref or id of --corpus.")] = "latest",
    nsl_reference: Annotated[str, typer.Option(
        "--nsl-reference", help="Reference of the headline NSL.")] = "o200k",
    gate: Annotated[list[str] | None, typer.Option(
        "--gate", "-g", help="Gate on the candidate, e.g. 'bytes_per_token >= 4.0', "
        "'nsl\\[o200k] <= 0.9', 'parity <= 1.5'. Repeatable; any failure exits 1.")] = None,
    out_dir: Annotated[str | None, typer.Option(
        "--out", "-o", help="Report directory (default: <workspace>/evaluations/<spec hash>).")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="Causal LM for bits per byte: a directory (with tokenizer.json), "
        "'smollm2' or NAME@VERSION; LABEL=... names it. Repeatable; its tokenizer is evaluated "
        "too and tokenizers.<name>.bits_per_byte is added.")] = None,
    bpb_max_bytes: Annotated[int, typer.Option(
        "--bpb-max-bytes", help="Bits per byte: segment length cap in UTF-8 bytes (cut at "
        "whitespace).")] = 1024,
    max_docs: Annotated[int | None, typer.Option(
        "--max-docs", help="At most this many documents per text source.")] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", help="Registry URI for NAME@VERSION (default: <workspace>/registry).")] = None,
    workspace: WorkspaceOpt = "workspace",
    json_out: JsonOpt = False,
    flow: FlowOpt = False,
) -> None:
    """Measure tokenizers on held-out text side by side with reference tokenizers.

    Bytes/chars per token, fertility, continued words, NSL, premium and parity on parallel text,
    vocabulary utilisation, Rényi efficiency (α = 2.5), unreachable and never-produced tokens,
    UNK / byte-fallback rate, round-trip errors, encode throughput. Writes metrics.parquet,
    report.md (+ plots/*.png) and evaluation.json to --out; gates decide the exit code.
    """
    from tokenfoundry.schemas.config import validate_spec
    from tokenfoundry.schemas.errors import BadInputError
    from tokenfoundry.schemas.evaluate import DEFAULT_REFERENCES, EvaluateSpec

    models: dict[str, Path] = {}
    if model:  # bits per byte: each model's tokenizer becomes a candidate under the model's name
        from tokenfoundry.tasks.evaluate.bits_per_byte import resolve_model

        if not text:
            raise BadInputError("--model needs --text PATH (the held-out text to score)")
        for m in model:
            name, d = resolve_model(m, registry)
            models[name] = d
        tokenizer = [*(tokenizer or []), *(f"{n}={d}" for n, d in models.items())]
    refs: list[str] = list(DEFAULT_REFERENCES)
    if reference is not None:
        refs = [r.strip() for item in reference for r in item.split(",") if r.strip()]
        if refs == ["none"]:
            refs = []
    data = {
        "tokenizers": tokenizer or [], "texts": text or [], "parallel": parallel,
        "references": refs, "corpora": corpus or [], "holdout_fraction": holdout_fraction,
        "corpus_ref": corpus_ref, "nsl_reference": nsl_reference, "gates": gate or [],
        "max_docs": max_docs, "registry": registry, "workspace": workspace,
    }
    spec = validate_spec(EvaluateSpec, data, "tokenfoundry evaluate")
    dest = out_dir or str(Path(workspace) / "evaluations" / spec.spec_hash()[:12])
    # cheap checks before anything starts (a Prefect flow takes seconds to start)
    for p in spec.texts:
        if not Path(p).exists():
            raise BadInputError(f"--text {p}: no such file or directory")
    if spec.parallel and not Path(spec.parallel).is_file():
        raise BadInputError(f"--parallel {spec.parallel}: no such file; give a Parquet file "
                            "with columns seg_id, lang, text")
    if flow:
        from tokenfoundry.flows.evaluate import evaluate_flow

        result_json = evaluate_flow(spec.model_dump(mode="json"), workspace, dest,
                                    fail_on_gates=False)
        from tokenfoundry.schemas.evaluate import EvaluationResult

        result = EvaluationResult.model_validate(result_json)
    else:
        from tokenfoundry.tasks.evaluate.core import evaluate
        from tokenfoundry.tasks.progress import show_progress

        with show_progress("evaluate", console=err) as progress:
            result = evaluate(spec, dest, progress=progress)

    result_json = result.model_dump(mode="json")
    if models:
        _add_bits_per_byte(result_json, models, spec.texts, spec.max_docs, bpb_max_bytes, dest)
        if spec.gates and result.candidate:  # re-judge: gates may name bits_per_byte
            from tokenfoundry.tasks.evaluate.gates import check_gates

            gates = check_gates(result_json["tokenizers"][result.candidate], spec.gates)
            result = result.model_copy(update={"gates": gates,
                                               "gates_passed": all(g.passed for g in gates)})
            result_json["gates"] = [g.model_dump(mode="json") for g in gates]
            result_json["gates_passed"] = result.gates_passed
    if json_out:
        emit_json(result_json)
    else:
        _print_summary(result)
        for name in models:
            m = result_json["tokenizers"][name]
            out.print(f"{name}: {m['bits_per_byte']:.4f} bits/byte "
                      f"(x{m['bits_per_byte_vs_first']:.4f} vs first model, "
                      f"{m['bpb_tokens']} tokens on {m['bpb_bytes']} bytes)")
    from tokenfoundry.tasks.evaluate.gates import raise_for_gates

    raise_for_gates(result.gates, result.candidate)


def _add_bits_per_byte(result_json: dict, models: dict, texts: list[str], max_docs: int | None,
                       max_bytes: int, dest: str) -> None:
    """Score every model on the --text documents; add bits_per_byte & co. to its entry."""
    from tokenfoundry.tasks.evaluate.bits_per_byte import bits_per_byte, write_bpb_report
    from tokenfoundry.tasks.evaluate.texts import read_texts
    from tokenfoundry.tasks.progress import show_progress

    docs = [d for t in texts for d in read_texts(t, max_docs=max_docs).docs]
    with show_progress("bits per byte", console=err) as progress:
        scores = bits_per_byte(models, docs, max_bytes=max_bytes,
                               progress=lambda stage, done, total: progress(done, total, stage))
    for name, sc in scores.items():
        result_json["tokenizers"].setdefault(name, {}).update({
            "bits_per_byte": sc.bits_per_byte, "bits_per_byte_vs_first": sc.bits_per_byte_vs_first,
            "bpb_tokens": sc.tokens, "bpb_bytes": sc.bytes, "bpb_bytes_per_token":
            sc.bytes_per_token, "bpb_segments": sc.segments, "bpb_seconds": sc.seconds})
    result_json["bits_per_byte_files"] = write_bpb_report(scores, dest)


def _print_summary(result) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="tokenizer evaluation", title_justify="left")
    for col in ("tokenizer", "bytes/token", "fertility", "NSL", "util.", "Rényi", "RT err",
                "parity", "MB/s"):
        t.add_column(col, justify="left" if col == "tokenizer" else "right")

    def f(v, d=3):
        return "–" if v is None else f"{v:.{d}f}"

    for name, m in result.tokenizers.items():
        label = f"[bold]{name}[/]" if name == result.candidate else name
        t.add_row(label, f(m.bytes_per_token), f(m.fertility), f(m.nsl), f(m.vocab_utilization),
                  f(m.renyi_efficiency), str(m.roundtrip_errors), f(m.parity), f(m.encode_mb_per_s, 1))
    out.print(t)
    for g in result.gates:  # escaped: "nsl[o200k]" is not rich markup
        mark = "[green]pass[/]" if g.passed else f"[red]FAIL[/] {escape(g.reason)}"
        out.print(f"gate {escape(g.expr)}: {mark}")
    out.print(f"report: {result.report_path}")
