"""The dedup stage's report: example near-duplicate pairs and ``_dedup_report.md``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from tokenfoundry.storage.catalog import connect, scan
from tokenfoundry.storage.workspace import Snapshot, Workspace
from tokenfoundry.tasks.dedup.boilerplate import strip_boilerplate
from tokenfoundry.tasks.dedup.minhash import jaccard, shingle_set
from tokenfoundry.tasks.dedup.plan import DedupPlan

N_EXAMPLES = 6


def examples(ws: Workspace, snap: Snapshot, doc_ids: pa.Array, pos_of_idx: np.ndarray,
              a: np.ndarray, b: np.ndarray, est: np.ndarray, ngram: int, lines: frozenset[str]
              ) -> list[dict[str, Any]]:
    """A few verified pairs spread over the estimated-Jaccard range, with their true Jaccard."""
    if len(a) == 0:
        return []
    order = np.lexsort((b, a, est))
    pick = sorted({int(order[int(round(i))]) for i in np.linspace(0, len(order) - 1,
                                                                  min(N_EXAMPLES, len(order)))})
    ids = {int(x): doc_ids[int(pos_of_idx[x])].as_py() for i in pick for x in (a[i], b[i])}
    con = connect(ws)
    id_list = ", ".join("'" + d.replace("'", "''") + "'" for d in ids.values())
    rows = con.execute(f"SELECT doc_id, text FROM {scan(snap)} WHERE doc_id IN ({id_list})"
                       ).fetchall()
    con.close()
    text = {d: t for d, t in rows}
    out = []
    for i in pick:
        ta = strip_boilerplate(text.get(ids[int(a[i])]), lines)
        tb = strip_boilerplate(text.get(ids[int(b[i])]), lines)
        out.append({"a": ids[int(a[i])], "b": ids[int(b[i])], "estimated_jaccard": float(est[i]),
                    "jaccard": round(jaccard(shingle_set(ta, ngram), shingle_set(tb, ngram)), 4),
                    "a_text": ta[:160], "b_text": tb[:160]})
    return out


def verify_text(plan: DedupPlan) -> str:
    mode = plan.spec["verify"]
    if mode == "jaccard":
        return f"exact Jaccard >= {plan.spec['threshold']} (signature pre-filter >= {plan.verify_threshold})"
    if mode == "estimate":
        return f"estimated Jaccard >= {plan.verify_threshold}"
    return "off"


def report_markdown(plan: DedupPlan, counts: dict[str, int], stats: dict[str, Any]) -> str:
    s = plan.spec
    lines = [
        f"# Dedup report: {plan.corpus}",
        "",
        f"Input snapshot `{plan.input_snapshot}` -> output snapshot `{plan.snapshot_id}`.",
        "",
        f"Word {s['ngram']}-gram shingles, {s['num_perm']} permutations, "
        f"{plan.bands} bands x {plan.rows} rows, Jaccard threshold {s['threshold']}, "
        f"verification: {verify_text(plan)}."
        + (f" Incremental against {', '.join(plan.prior) or 'no earlier snapshot'}." if s["incremental"] else ""),
        "",
        "| count | documents |",
        "|---|---:|",
    ]
    for k in ("input", "exact_duplicates", "near_duplicates", "boilerplate_only", "kept"):
        lines.append(f"| {k} | {counts[k]:,} |")
    lines += ["", f"Candidate pairs from LSH: {stats['candidate_pairs']:,}; verified: "
              f"{stats['verified_pairs']:,}. Boilerplate lines removed: {stats['boilerplate_lines']:,}.",
              "", "## Cluster sizes", "", "| size | clusters |", "|---|---:|"]
    for k, v in stats["cluster_sizes"].items():
        lines.append(f"| {k} | {v:,} |")
    lines += ["", "## Example near-duplicate pairs", ""]
    if not stats["examples"]:
        lines.append("(none)")
    else:
        lines += ["| estimated Jaccard | Jaccard | a | b |", "|---:|---:|---|---|"]
        for e in stats["examples"]:
            def cell(t: str) -> str:
                return t.replace("|", "\\|").replace("\n", " ")[:100]
            lines.append(f"| {e['estimated_jaccard']:.3f} | {e['jaccard']:.3f} | "
                         f"`{e['a']}`: {cell(e['a_text'])} | `{e['b']}`: {cell(e['b_text'])} |")
    return "\n".join(lines) + "\n"
