"""Evaluation outputs people read: a metrics Parquet table, a markdown report and PNG plots,
and the one metrics-table renderer (the pipeline's report and the Python API use it).

``metrics.parquet`` has one row per tokenizer x dataset x language x metric (columns
tokenizer, is_reference, dataset, language, metric, value); "all" marks an aggregate.
``metrics_frame(result)`` is the same table as a ``polars.DataFrame``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenfoundry.schemas.evaluate import EvaluationResult, TokenizerMetrics

METRICS_SCHEMA = pa.schema([
    pa.field("tokenizer", pa.string(), nullable=False),
    pa.field("is_reference", pa.bool_(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("language", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64()),
])

SCALARS = ("vocab_size", "n_tokens", "bytes_per_token", "chars_per_token", "fertility",
           "continued_word_rate", "nsl", "vocab_utilization", "renyi_efficiency",
           "renyi_efficiency_full_vocab", "unk_rate", "byte_fallback_rate", "roundtrip_errors",
           "encode_mb_per_s", "mean_token_bytes", "unreachable_tokens", "partial_utf8_tokens",
           "never_produced_tokens", "bits_per_byte")


def metric_rows(result: EvaluationResult) -> list[dict]:
    rows: list[dict] = []
    par = next((d.name for d in result.datasets if d.kind == "parallel"), "parallel")

    def add(tm: TokenizerMetrics, ds: str, lang: str, metric: str, value) -> None:
        rows.append({"tokenizer": tm.name, "is_reference": tm.is_reference, "dataset": ds,
                     "language": lang, "metric": metric,
                     "value": None if value is None else float(value)})

    for tm in result.tokenizers.values():
        for m in SCALARS:
            add(tm, "all", "all", m, getattr(tm, m))
        for ref, v in tm.nsl_by_reference.items():
            add(tm, "all", "all", f"nsl[{ref}]", v)
        for length, share in (tm.token_length.histogram if tm.token_length else {}).items():
            add(tm, "all", "all", f"token_length_share[{length}]", share)
        for lang, vals in tm.by_language.items():
            for m, v in vals.items():
                add(tm, "all", lang, m, v)
        for ds, vals in tm.by_dataset.items():
            for m, v in vals.items():
                add(tm, ds, "all", m, v)
        for lang, v in tm.premium.items():
            add(tm, par, lang, "premium", v)
            add(tm, par, lang, "parallel_pairs", tm.parallel_pairs_used.get(lang, 0))
        for m in ("parity", "premium_max", "premium_min", "premium_std"):
            if getattr(tm, m) is not None:
                add(tm, par, "all", m, getattr(tm, m))
    return rows


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return f"{v:.{digits}f}"


def metrics_frame(result: EvaluationResult | dict | str | Path):
    """The metrics table (``metric_rows``) of an evaluation as a ``polars.DataFrame``;
    ``result`` may also be its ``evaluation.json`` (path or parsed)."""
    import polars as pl

    if isinstance(result, (str, Path)):
        result = Path(result).read_text(encoding="utf-8")
        result = EvaluationResult.model_validate_json(result)
    elif isinstance(result, dict):
        result = EvaluationResult.model_validate(result)
    return pl.from_arrow(pa.Table.from_pylist(metric_rows(result), schema=METRICS_SCHEMA))


def _length_shares(tm: TokenizerMetrics) -> np.ndarray:
    hist = tm.token_length.histogram if tm.token_length else {}
    return np.array([hist.get(str(i), 0.0) for i in range(16)] + [hist.get("16+", 0.0)])


def _plots(result: EvaluationResult, out: Path) -> list[str]:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[str] = []
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    names = list(result.tokenizers)
    colors = ["#d62728" if n == result.candidate else
              ("#1f77b4" if result.tokenizers[n].is_reference else "#ff7f0e") for n in names]

    fig, ax = plt.subplots(figsize=(max(5, 1.0 * len(names) + 2), 3.6))
    vals = [result.tokenizers[n].bytes_per_token or 0 for n in names]
    ax.bar(names, vals, color=colors)
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("UTF-8 bytes per token (higher = fewer tokens)")
    ax.set_title("Compression on the held-out text")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    p = plots / "bytes_per_token.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    if any(tm.premium for tm in result.tokenizers.values()):
        base = result.tokenizers[result.candidate or names[0]].premium or next(
            tm.premium for tm in result.tokenizers.values() if tm.premium)
        langs = sorted(base, key=lambda x: base[x])
        fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(langs) + 2), 4))
        for n, c in zip(names, colors):
            prem = result.tokenizers[n].premium
            ys = [prem.get(lg, np.nan) for lg in langs]
            style = "-o" if n == result.candidate else "--."
            ax.plot(langs, ys, style, label=f"{n} (parity {_fmt(result.tokenizers[n].parity, 2)})",
                    color=None if n != result.candidate else c, markersize=3, linewidth=1.2)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_ylabel("token premium vs pivot")
        ax.set_title("Token premium per language (lower and flatter is fairer)")
        ax.tick_params(axis="x", rotation=90, labelsize=7)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = plots / "premium.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(str(p))

    fig, ax = plt.subplots(figsize=(7, 3.6))
    xs = np.arange(17)
    for n in names:
        c = _length_shares(result.tokenizers[n])
        if c.sum() > 0:
            ax.plot(xs, c / c.sum(), "-o" if n == result.candidate else "--.", label=n,
                    markersize=3, linewidth=1.2)
    ax.set_xticks(xs, [str(i) if i < 16 else "16+" for i in xs])
    ax.set_xlabel("token length (UTF-8 bytes)")
    ax.set_ylabel("share of produced tokens")
    ax.set_title("Token-length distribution")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = plots / "token_length.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))
    return paths


def markdown(result: EvaluationResult, plots: list[str], out: Path) -> str:
    a = result.renyi_alpha
    L: list[str] = ["# Tokenizer evaluation", ""]
    if result.candidate:
        L.append(f"Candidate: **{result.candidate}**; references: "
                 f"{', '.join(result.references) or 'none'}. NSL reference: "
                 f"`{result.nsl_reference}`. Rényi α = {a}.")
    L += ["", "Data: " + "; ".join(
        f"{d.name} ({d.kind}, {d.docs:,} docs, {d.bytes:,} bytes, "
        f"{len(d.languages)} language(s))" for d in result.datasets), ""]
    if result.gates:
        verdict = "PASSED" if result.gates_passed else "FAILED"
        L += [f"## Gates: {verdict}", "", "| gate | value | result |", "|---|---|---|"]
        for g in result.gates:
            L.append(f"| `{g.expr}` | {g.text()} | {'pass' if g.passed else 'FAIL'} |")
        L.append("")
    L += ["## Intrinsic metrics", "",
          f"| tokenizer | vocab | bytes/token | chars/token | fertility | continued words | "
          f"NSL | vocab util. | Rényi eff. (α={a}) | UNK | byte fallback | round-trip errors | "
          f"unreachable | MB/s |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, t in result.tokenizers.items():
        label = f"**{n}**" if n == result.candidate else n
        L.append(f"| {label} | {t.vocab_size:,} | {_fmt(t.bytes_per_token)} | "
                 f"{_fmt(t.chars_per_token)} | {_fmt(t.fertility)} | "
                 f"{_fmt(t.continued_word_rate)} | {_fmt(t.nsl)} | {_fmt(t.vocab_utilization)} | "
                 f"{_fmt(t.renyi_efficiency)} | {_fmt(t.unk_rate, 4)} | "
                 f"{_fmt(t.byte_fallback_rate, 4)} | {t.roundtrip_errors} | "
                 f"{t.unreachable_tokens} | {_fmt(t.encode_mb_per_s, 1)} |")
    L.append("")
    with_prem = [n for n, t in result.tokenizers.items() if t.premium]
    if with_prem:
        langs = sorted({lg for n in with_prem for lg in result.tokenizers[n].premium})
        L += ["## Token premium on parallel text (Petrov et al. 2023)", "",
              "| language | " + " | ".join(with_prem) + " |",
              "|---|" + "---:|" * len(with_prem)]
        for lg in langs:
            L.append(f"| {lg} | " + " | ".join(
                _fmt(result.tokenizers[n].premium.get(lg)) for n in with_prem) + " |")
        for m, label in (("parity", "**parity (max/min)**"), ("premium_max", "max"),
                         ("premium_min", "min"), ("premium_std", "std")):
            L.append(f"| {label} | " + " | ".join(
                _fmt(getattr(result.tokenizers[n], m)) for n in with_prem) + " |")
        L.append("")
    langs_all = sorted({lg for t in result.tokenizers.values() for lg in t.by_language})
    if len(langs_all) > 1:
        names = list(result.tokenizers)
        L += ["## Bytes per token by language", "", "| language | " + " | ".join(names) + " |",
              "|---|" + "---:|" * len(names)]
        for lg in langs_all:
            L.append(f"| {lg} | " + " | ".join(_fmt(result.tokenizers[n].by_language.get(
                lg, {}).get("bytes_per_token")) for n in names) + " |")
        L.append("")
    if result.candidate:
        t = result.tokenizers[result.candidate]
        L += [f"## Vocabulary of {result.candidate}", "",
              f"- never produced on this text: {t.never_produced_tokens:,} tokens; first: "
              + ", ".join(f"`{x!r}`" for x in t.never_produced_examples[:20]),
              f"- unreachable (own string does not encode to it): {t.unreachable_tokens:,}; "
              + ", ".join(f"`{x!r}`" for x in t.unreachable_examples[:20]),
              f"- partial UTF-8 tokens (not text on their own): {t.partial_utf8_tokens:,}",
              f"- round-trip errors: {t.roundtrip_errors} of {t.roundtrip_checked_docs} docs "
              + "; ".join(t.roundtrip_examples), ""]
    if plots:
        L += ["## Plots", ""]
        for p in plots:
            rel = os.path.relpath(p, out)
            L.append(f"![{Path(p).stem}]({rel})")
        L.append("")
    L += ["## Definitions", "",
          "bytes/chars per token = Σ UTF-8 bytes (code points) / Σ tokens. Fertility = Σ tokens / "
          "Σ words; a word is a run of letters/marks/digits/_ (per character in Han, Kana, "
          "Thai, Lao, Khmer, Myanmar). Continued words = share of words with a token boundary "
          "inside. NSL = Σ|T(d)| / Σ|T_ref(d)|. Vocab utilisation = share of the regular "
          f"vocabulary produced. Rényi efficiency = H_α/log|V_observed| with α = {a} "
          "(tokenization-scorer's definition). Premium = Σ|T(s_lang)| / Σ|T(s_pivot)| over "
          "aligned pairs, dropping pairs with > 10% UNK characters; parity = max/min premium.",
          ""]
    return "\n".join(L)


def write_reports(result: EvaluationResult, out: Path) -> list[str]:
    """Write metrics.parquet, plots/*.png and report.md into ``out``; return the plot paths."""
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(metric_rows(result), schema=METRICS_SCHEMA)
    tmp = out / "metrics.parquet.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out / "metrics.parquet")
    plots = _plots(result, out)
    (out / "report.md").write_text(markdown(result, plots, out), encoding="utf-8")
    return plots


# ---------------------------------------------------------------------------------------------
# The pipeline's evaluation report (a Prefect markdown artifact)

#: Metrics in the report and the CLI table: (key, header).
REPORT_METRICS = [
    ("vocab_size", "vocab"), ("bytes_per_token", "B/tok"), ("fertility", "fert."),
    ("nsl", "NSL"), ("renyi_efficiency", "Rényi"), ("vocab_utilization", "used"),
    ("parity", "parity"), ("roundtrip_errors", "rt err"), ("encode_mb_per_s", "MB/s"),
]


def _short(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def metrics_rows(evaluated: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per tokenizer (candidate first) with the report metrics."""
    toks: dict[str, Any] = evaluated.get("tokenizers", {}) or {}
    cand = evaluated.get("candidate")
    order = ([cand] if cand in toks else []) + [n for n in toks if n != cand]
    return [{"tokenizer": n + (" (candidate)" if n == cand else ""),
             **{k: toks[n].get(k) for k, _h in REPORT_METRICS}} for n in order]


def gate_lines(gates: list[dict[str, Any]]) -> list[str]:
    """Markdown bullets, one per gate: "- FAIL `roundtrip_errors == 0`: roundtrip_errors 4000
    of 4000 documents, needs == 0"."""
    from tokenfoundry.schemas.evaluate import GateResult

    return [f"- {'PASS' if g.get('passed') else 'FAIL'} `{g.get('expr')}`: "
            f"{GateResult.model_validate(g).text()}" for g in gates] or ["- (no gates)"]


def evaluation_report(ps: Any, evaluated: dict[str, Any]) -> str:
    """The pipeline ``ps``'s evaluation summary: the metrics table and the gates."""
    rows = metrics_rows(evaluated)
    head = "| tokenizer | " + " | ".join(h for _k, h in REPORT_METRICS) + " |"
    sep = "|---" * (len(REPORT_METRICS) + 1) + "|"
    body = ["| " + r["tokenizer"] + " | " + " | ".join(_short(r[k]) for k, _h in REPORT_METRICS)
            + " |" for r in rows]
    return "\n".join([
        f"# Evaluation report: {ps.name}", "",
        f"Candidate `{evaluated.get('candidate')}` on held-out text, beside the reference "
        "tokenizers.", "", head, sep, *body, "", "## Gates", "",
        *gate_lines(evaluated.get("gates", []) or []), "",
        f"Full report: `{evaluated.get('report_path', '')}`",
    ])
