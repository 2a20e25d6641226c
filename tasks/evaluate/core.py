"""The evaluate stage: every tokenizer on the same held-out text, one encode pass each.

``evaluate(spec, out_dir)`` loads the candidate(s) and the reference tokenizers, reads the
held-out text (files, or corpus snapshots filtered by ``storage.splits``) and optional parallel
segments, and for each tokenizer ``measure``s the text: one ``encode_batch``, ``np.bincount`` of
the ids for every distribution metric, ``decode_batch`` compared with the tokenizer's lossless
form of each document for the round trip (``adapters``), and token start offsets searched into
word spans for continued words. It judges the gates on the candidate and writes the metrics
Parquet table, the markdown report with PNG plots and ``evaluation.json``. All metrics together
cost at most 3x a bare ``encode_batch`` of the same text (benchmarks/evaluate_throughput.py).

A new metric goes into ``TokenizerMetrics`` (schemas/evaluate.py) and is filled in ``measure``
(text metrics) or after it in ``evaluate`` (metrics of other inputs, e.g. ``bits_per_byte``).

It does not raise on failed gates: the result records them and ``gates.raise_for_gates`` (the
CLI and the flow call it) turns a failure into ``GateFailed`` (exit 1).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.evaluate import (
    DatasetInfo,
    EvaluateSpec,
    EvaluationResult,
    TokenizerMetrics,
    TokenLength,
    parse_gate,
)
from tokenfoundry.tasks.evaluate import metrics as M
from tokenfoundry.tasks.evaluate.adapters import TokenizerAdapter, load_reference, load_tokenizer
from tokenfoundry.tasks.evaluate.gates import check_gates
from tokenfoundry.tasks.evaluate.parallel import (
    parity_summary,
    read_parallel,
    segment_codes,
    token_premium,
    unk_char_share,
)
from tokenfoundry.tasks.evaluate.texts import TextSet, read_heldout, read_texts
from tokenfoundry.tasks.progress import Progress, no_progress


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def load_all(spec: EvaluateSpec) -> tuple[list[TokenizerAdapter], list[TokenizerAdapter]]:
    """Candidates (in order) and references (spec.references + any NSL reference needed)."""
    registry = spec.registry
    if registry is None and spec.workspace:
        from tokenfoundry.storage.workspace import Workspace

        registry = Workspace(spec.workspace).registry_uri
    cands = [load_tokenizer(t, registry=registry) for t in spec.tokenizers]
    refs_needed = list(spec.references)
    nsl_default = [spec.nsl_reference] if spec.references else []
    for extra in nsl_default + [parse_gate(g).key for g in spec.gates
                                         if parse_gate(g).metric == "nsl" and parse_gate(g).key]:
        if extra not in refs_needed:
            refs_needed.append(extra)
    # A reference named as a candidate is evaluated once, as the candidate.
    cand_sources = {ad.source for ad in cands}
    refs = [ad for ad in (load_reference(r) for r in refs_needed) if ad.source not in cand_sources]
    _unique_names(cands + refs)
    return cands, refs


def _unique_names(items: list) -> None:
    """Give the second, third ... item of a name the suffix #2, #3 ..."""
    seen: dict[str, int] = {}
    for it in items:
        seen[it.name] = seen.get(it.name, 0) + 1
        it.name = it.name if seen[it.name] == 1 else f"{it.name}#{seen[it.name]}"


def load_texts(spec: EvaluateSpec) -> list[TextSet]:
    sets = [read_texts(p, max_docs=spec.max_docs) for p in spec.texts]
    for corpus in spec.corpora:
        sets.append(read_heldout(spec.workspace or ".", corpus, spec.holdout_fraction or 0.0,
                                 spec.corpus_ref, max_docs=spec.max_docs))
    _unique_names(sets)
    return sets


def pool_from_sets(sets: list[TextSet]) -> M.TextPool:
    return M.build_pool([d for ts in sets for d in ts.docs], [lg for ts in sets for lg in ts.langs],
                        [i for i, ts in enumerate(sets) for _ in ts.docs], [ts.name for ts in sets])


# ---------------------------------------------------------------------------------------------
# One tokenizer on the pool


def continued_per_doc(adapter: TokenizerAdapter, pool: M.TextPool, enc, exact: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(continued words per doc, whether the doc's words are known, whether its token bytes are
    its bytes). A token's start is the
    document's start + the byte lengths of the tokens before it where ``exact`` (token bytes
    are the document's bytes), else the tokenizer's own character offset (HF, ``enc.char_starts``);
    without either the document's words are not known."""
    counts = enc.counts
    cum = np.concatenate([[0], np.cumsum(adapter.token_bytes_len[enc.ids])])
    aligned = exact & (cum[enc.offsets[1:]] - cum[enc.offsets[:-1]] == pool.doc_bytes)
    known = aligned.copy()
    flags = np.zeros(len(pool.word_doc), dtype=bool)
    if aligned.any():
        starts = cum[:-1] + np.repeat(pool.doc_byte_start - cum[enc.offsets[:-1]], counts)
        words = aligned[pool.word_doc]
        if not aligned.all():
            starts = starts[np.repeat(aligned, counts)]
        flags[words] = M.continued_words(pool.word_byte_start[words], pool.word_byte_end[words],
                                         starts)
    rest = ~exact
    if enc.char_starts is not None and rest.any():
        starts = np.sort((enc.char_starts + np.repeat(pool.doc_char_start, counts))
                         [np.repeat(rest, counts)])
        words = rest[pool.word_doc]
        flags[words] = M.continued_words(pool.word_char_start[words], pool.word_char_end[words],
                                         starts)
        known |= rest
    return np.bincount(pool.word_doc[flags], minlength=pool.n_docs), known, aligned


def roundtrip_errors(adapter: TokenizerAdapter, pool: M.TextPool, enc) -> list[int]:
    """Documents where ``decode_batch`` of their ids != ``adapter.expected(doc)`` (the decode
    itself is compared: a decoder that loses a byte is caught)."""
    decoded = adapter.decode_batch(enc.lists())
    return [d for d, (got, doc) in enumerate(zip(decoded, pool.docs))
            if got != adapter.expected(doc)]


def measure(adapter: TokenizerAdapter, pool: M.TextPool, spec: EvaluateSpec) -> TokenizerMetrics:
    """Encode the pool once and derive every text metric of ``adapter`` (see module docstring)."""
    exact = adapter.byte_exact(pool.docs)
    enc = adapter.encode_batch(pool.docs, spec.threads, offsets=not exact.all())
    t0 = time.perf_counter()
    V = adapter.vocab_size
    freq = np.bincount(enc.ids, minlength=V)[:V] if len(enc.ids) else np.zeros(V, np.int64)
    counts = enc.counts
    n_tok = int(counts.sum())
    regular = ~adapter.special_mask

    doc_cont, known, aligned = continued_per_doc(adapter, pool, enc, exact)
    bad = roundtrip_errors(adapter, pool, enc)

    observed = freq[regular][freq[regular] > 0]
    never = np.flatnonzero(regular & (freq == 0))
    mean_len, hist = M.token_length_histogram(adapter.token_bytes_len, freq)
    unreachable, partial = adapter.unreachable
    unk = int(freq[adapter.unk_id]) if adapter.unk_id is not None and adapter.unk_id < V else 0
    byte_fallback = int(freq[adapter.byte_fallback_mask].sum())
    n_regular = int(regular.sum())

    def groups(codes: np.ndarray, names: list[str]) -> dict[str, dict[str, float | None]]:
        k = len(names)
        s = {key: np.bincount(codes, weights=w, minlength=k) for key, w in (
            ("docs", None), ("tok", counts), ("bytes", pool.doc_bytes), ("chars", pool.doc_chars),
            ("words", pool.doc_words), ("known", pool.doc_words * known), ("cont", doc_cont))}
        return {names[i]: {"docs": float(s["docs"][i]), "n_tokens": float(s["tok"][i]),
                           "bytes_per_token": _ratio(s["bytes"][i], s["tok"][i]),
                           "chars_per_token": _ratio(s["chars"][i], s["tok"][i]),
                           "fertility": _ratio(s["tok"][i], s["words"][i]),
                           "continued_word_rate": _ratio(s["cont"][i], s["known"][i])}
                for i in range(k)}

    lang_u, lang_code = pool.lang_codes
    return TokenizerMetrics(
        name=adapter.name, source=adapter.source, kind=adapter.kind,
        is_reference=adapter.is_reference, vocab_size=V, n_docs=pool.n_docs, n_tokens=n_tok,
        bytes_per_token=_ratio(pool.total_bytes, n_tok),
        chars_per_token=_ratio(int(pool.doc_chars.sum()), n_tok),
        fertility=_ratio(n_tok, int(pool.doc_words.sum())),
        continued_word_rate=_ratio(int(doc_cont.sum()), int(pool.doc_words[known].sum())),
        vocab_utilization=_ratio(len(observed), n_regular),
        renyi_efficiency=M.renyi_efficiency(observed, spec.renyi_alpha),
        renyi_efficiency_full_vocab=M.renyi_efficiency(observed, spec.renyi_alpha, n_regular),
        renyi_alpha=spec.renyi_alpha,
        unk_rate=_ratio(unk, n_tok), byte_fallback_rate=_ratio(byte_fallback, n_tok),
        roundtrip_errors=len(bad), roundtrip_checked_docs=pool.n_docs,
        roundtrip_examples=[f"{pool.dataset_names[pool.dataset[d]]} doc {d}: {pool.docs[d][:60]!r}"
                            for d in bad[:3]],
        encode_mb_per_s=pool.total_bytes / enc.seconds / 1e6 if enc.seconds > 0 else None,
        token_length=TokenLength(mean_bytes=mean_len, histogram=hist),
        mean_token_bytes=mean_len if n_tok else None,
        unreachable_tokens=len(unreachable),
        unreachable_examples=[adapter.token_repr(i) for i in unreachable[:spec.max_listed_tokens]],
        partial_utf8_tokens=partial, never_produced_tokens=len(never),
        never_produced_examples=[adapter.token_repr(int(i))
                                 for i in never[:spec.max_listed_tokens]],
        by_language=groups(lang_code, [str(x) for x in lang_u]),
        by_dataset=groups(pool.dataset, pool.dataset_names),
        encode_seconds=enc.seconds, metrics_seconds=time.perf_counter() - t0,
        doc_tokens=counts.tolist())


def measure_parallel(adapter: TokenizerAdapter, par: tuple[list[str], list[str], list[str]],
                     spec: EvaluateSpec, counts: list[int] | None = None,
                     codes: tuple | None = None) -> dict:
    """Token premium and parity on aligned segments. ``counts``: tokens per segment if the
    segments were already encoded (they are the evaluation text); ``codes``: their
    ``segment_codes`` (the same for every tokenizer)."""
    seg, lang, text = par
    share = np.zeros(len(text))
    if counts is None or adapter.unk_id is not None:
        enc = adapter.encode_batch(text, spec.threads)
        counts, share = enc.counts, unk_char_share(adapter, enc, text)
    premium, used, dropped = token_premium(seg, lang, np.asarray(counts), share, spec.pivot_lang,
                                           spec.max_unk_char_share, codes=codes)
    return {"premium": premium, "parallel_pairs_used": used,
            "parallel_pairs_dropped_unk": dropped, **parity_summary(premium)}


# ---------------------------------------------------------------------------------------------


def evaluate(spec: EvaluateSpec, out_dir: str, progress: Progress = no_progress
             ) -> EvaluationResult:
    """Evaluate ``spec.tokenizers`` (candidate first) and ``spec.references`` side by side."""
    from tokenfoundry.tasks.evaluate.report import write_reports

    t_start = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: exists and is not a directory")
    progress(0, None, "loading tokenizers")
    cands, refs = load_all(spec)
    adapters = cands + refs
    progress(0, None, "reading text")
    sets = load_texts(spec)
    par = read_parallel(spec.parallel, spec.pivot_lang) if spec.parallel else None
    datasets: list[DatasetInfo] = []
    par_is_pool = not sets and par is not None
    if par_is_pool:  # only parallel text: it is the text too
        sets = [TextSet(name=Path(spec.parallel).stem, source=spec.parallel, docs=par[2],
                        langs=par[1])]
    pool = pool_from_sets(sets)
    for i, ts in enumerate(sets):
        m = pool.dataset == i
        langs, n = np.unique(pool.langs[m].astype(str), return_counts=True)
        datasets.append(DatasetInfo(
            name=ts.name, source=ts.source, kind="text", docs=int(m.sum()),
            bytes=int(pool.doc_bytes[m].sum()), chars=int(pool.doc_chars[m].sum()),
            words=int(pool.doc_words[m].sum()),
            languages={str(a): int(b) for a, b in zip(langs, n)}))
    if par is not None:
        langs, n = np.unique(np.asarray(par[1], dtype=str), return_counts=True)
        datasets.append(DatasetInfo(
            name=Path(spec.parallel).stem, source=str(spec.parallel), kind="parallel",
            docs=len(par[2]), bytes=sum(len(t.encode("utf-8")) for t in par[2]),
            chars=sum(len(t) for t in par[2]), words=0,
            languages={str(a): int(b) for a, b in zip(langs, n)}))

    results: dict[str, TokenizerMetrics] = {}
    total = len(adapters)
    codes = segment_codes(par[0], par[1]) if par is not None else None
    for k, ad in enumerate(adapters):
        progress(k, total, f"encoding with {ad.name}")
        m = measure(ad, pool, spec)
        if par is not None:  # the parallel text may be the pool's text: reuse its counts
            m = m.model_copy(update=measure_parallel(
                ad, par, spec, counts=m.doc_tokens if par_is_pool else None, codes=codes))
        results[ad.name] = m
    progress(total, total, "computing NSL and gates")
    results = {name: _with_nsl(m, results, [ad.name for ad in refs], pool, spec)
               for name, m in results.items()}

    candidate = cands[0].name if cands else None
    gate_results = check_gates(results[candidate].model_dump(), spec.gates) if candidate else []
    out.mkdir(parents=True, exist_ok=True)
    result = EvaluationResult(
        tokenizers=results, candidate=candidate, references=[ad.name for ad in refs],
        nsl_reference=spec.nsl_reference, renyi_alpha=spec.renyi_alpha, datasets=datasets,
        gates=gate_results, gates_passed=all(g.passed for g in gate_results), out=str(out),
        metrics_path=str(out / "metrics.parquet"), report_path=str(out / "report.md"),
        json_path=str(out / "evaluation.json"), plots=[], seconds=0.0,
        spec_hash=spec.spec_hash())
    plots = write_reports(result, out)
    result = result.model_copy(update={"plots": plots,
                                       "seconds": time.perf_counter() - t_start})
    tmp = out / "evaluation.json.tmp"
    tmp.write_text(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False),
                   encoding="utf-8")
    tmp.replace(out / "evaluation.json")
    progress(total, total, "done")
    return result


def _with_nsl(m: TokenizerMetrics, results: dict[str, TokenizerMetrics], refs: list[str],
              pool: M.TextPool, spec: EvaluateSpec) -> TokenizerMetrics:
    """``m`` with NSL = Σ|T(d)| / Σ|T_ref(d)| against every reference, and per language and
    dataset against ``spec.nsl_reference``."""
    nsl_by = {r: v for r in refs if (v := _ratio(m.n_tokens, results[r].n_tokens)) is not None}
    ref = spec.nsl_reference if spec.nsl_reference in results else None
    by_language, by_dataset = m.by_language, m.by_dataset
    if ref is not None:
        mine, theirs = np.asarray(m.doc_tokens), np.asarray(results[ref].doc_tokens)
        by_language = {lg: {**v, "nsl": _ratio(mine[pool.langs == lg].sum(),
                                               theirs[pool.langs == lg].sum())}
                       for lg, v in m.by_language.items()}
        by_dataset = {dn: {**v, "nsl": _ratio(mine[pool.dataset == i].sum(),
                                              theirs[pool.dataset == i].sum())}
                      for i, (dn, v) in enumerate(m.by_dataset.items())}
    return m.model_copy(update={"nsl": nsl_by.get(ref) if ref else None, "nsl_reference": ref,
                                "nsl_by_reference": nsl_by, "is_reference": m.name in refs,
                                "by_language": by_language, "by_dataset": by_dataset})
