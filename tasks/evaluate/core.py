"""The evaluate stage: every tokenizer on the same held-out text, one encode pass each.

``evaluate(spec, out_dir)`` loads the candidate(s) and the reference tokenizers, reads the
held-out text (files, or corpus snapshots filtered by ``storage.splits``) and optional parallel
segments, encodes each text once per tokenizer with ``encode_batch`` and derives every metric
from the ids with numpy (see ``metrics.py``), judges the gates on the candidate, and writes the
metrics Parquet table, the markdown report with PNG plots and ``evaluation.json``.

It does not raise on failed gates: the result records them and ``gates.raise_for_gates`` (the
CLI and the flow call it) turns a failure into ``GateFailed`` (exit 1).
"""

from __future__ import annotations

import json
import os
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
from tokenfoundry.tasks.evaluate import vocab_cache
from tokenfoundry.tasks.evaluate.adapters import (
    Encoded,
    TokenizerAdapter,
    load_reference,
    load_tokenizer,
)
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
    seen: dict[str, int] = {}
    for ad in cands + refs:
        if ad.name in seen:
            seen[ad.name] += 1
            ad.name = f"{ad.name}#{seen[ad.name]}"
        else:
            seen[ad.name] = 1
    return cands, refs


def load_texts(spec: EvaluateSpec) -> list[TextSet]:
    sets = [read_texts(p, max_docs=spec.max_docs) for p in spec.texts]
    for corpus in spec.corpora:
        sets.append(read_heldout(spec.workspace or ".", corpus, spec.holdout_fraction or 0.0,
                                 spec.corpus_ref, max_docs=spec.max_docs))
    names: dict[str, int] = {}
    for ts in sets:  # unique dataset names
        if ts.name in names:
            names[ts.name] += 1
            ts.name = f"{ts.name}#{names[ts.name]}"
        else:
            names[ts.name] = 1
    return sets


def pool_from_sets(sets: list[TextSet]) -> M.TextPool:
    docs: list[str] = []
    langs: list[str] = []
    ds: list[int] = []
    for i, ts in enumerate(sets):
        docs += ts.docs
        langs += ts.langs
        ds += [i] * len(ts.docs)
    return M.build_pool(docs, langs, ds, [ts.name for ts in sets])


# ---------------------------------------------------------------------------------------------
# One tokenizer on the pool


def unreachable_tokens(adapter: TokenizerAdapter, cap: int) -> tuple[int, list[str], int]:
    """A property of the vocabulary, not of the text: cached per adapter and, with the other
    vocabulary facts, on disk per tokenizer definition (``vocab_cache``)."""
    cached = getattr(adapter, "_unreachable", None)
    stored = adapter.stored_facts
    if cached is None and stored is not None:
        cached = ([int(i) for i in stored["unreachable"]], int(stored["partial_utf8"][0]))
    if cached is None:
        cached = _unreachable_tokens(adapter)
        vocab_cache.save(adapter.vocab_identity(), {
            "token_len": adapter.token_bytes_len, "token_hash": M.token_hashes(adapter),
            "special": adapter.special_mask, "byte_fallback": adapter.byte_fallback_mask,
            "unreachable": np.asarray(cached[0], dtype=np.int64), "partial_utf8": cached[1]})
    adapter._unreachable = cached  # noqa: SLF001
    bad, partial = cached
    return len(bad), [adapter.token_repr(i) for i in bad[:cap]], partial


def _unreachable_tokens(adapter: TokenizerAdapter) -> tuple[list[int], int]:
    """(count, examples, partial-UTF-8 count): regular tokens whose own string does not encode
    to exactly that token. Tokens that are not valid UTF-8 on their own (byte pieces of a
    multi-byte character) cannot be written as text; they are counted as partial-UTF-8."""
    surfaces, special = adapter.table
    ids: list[int] = []
    strings: list[str] = []
    partial = 0
    skip = set(np.flatnonzero(special | adapter.byte_fallback_mask).tolist())
    if adapter.unk_id is not None:
        skip.add(adapter.unk_id)
    # the base class's reachability string is the surface decoded: no second decode, no call
    plain = type(adapter).reachability_string is TokenizerAdapter.reachability_string
    for i, s in enumerate(surfaces):
        if s is None or i in skip:
            continue
        try:
            text = s.decode("utf-8")
        except UnicodeDecodeError:
            partial += 1
            continue
        if not plain:
            text = adapter.reachability_string(i, s)
        if not text:
            continue
        ids.append(i)
        strings.append(text)
    bad: list[int] = []
    if strings:
        enc = adapter.encode_batch(strings)
        single = enc.counts == 1
        first = np.zeros(len(strings), dtype=np.int64)
        nz = enc.counts > 0
        first[nz] = enc.ids[enc.offsets[:-1][nz]]
        ok = single & (first == np.asarray(ids))
        bad = [ids[k] for k in np.flatnonzero(~ok)]
    return bad, partial


#: ``measure(..., chunk_bytes=N)`` encodes pools above N bytes in chunks of about N bytes (at
#: most ``MAX_CHUNKS``), converting and deriving the metrics of one chunk while the next is
#: encoded. Off by default (0): one ``encode_batch`` call over all documents is fastest for
#: every backend here (measured in benchmarks/evaluate_throughput.py): quicktok's own threads
#: keep both cores busy, and HF's thread pool loses more to a third busy thread than the
#: overlapped per-document conversion saves.
CHUNK_BYTES = 0
MAX_CHUNKS = 8


def chunk_bounds(doc_bytes: np.ndarray, chunk_bytes: int = CHUNK_BYTES,
                 max_chunks: int = MAX_CHUNKS) -> list[int]:
    """Document boundaries ``[0, ..., n]`` of consecutive ranges of about equal byte size."""
    n = len(doc_bytes)
    total = int(doc_bytes.sum())
    k = min(max_chunks, n, total // chunk_bytes) if chunk_bytes > 0 else 1
    if k <= 1:
        return [0, n]
    ends = np.cumsum(doc_bytes)
    cuts = np.searchsorted(ends, total * np.arange(1, k) / k, side="left") + 1
    return sorted({0, n, *(int(c) for c in cuts if 0 < c < n)})


#: Token counts are kept as int32 below this many tokens (then int64).
FREQ_INT32_LIMIT = 2**31 - 1

#: Encodings with at least this many tokens are aligned by two threads (one pass each).
SPLIT_TOKENS = 1 << 18


def _align_split(pool: M.TextPool, adapter: TokenizerAdapter, enc: Encoded, d0: int,
                 mask: np.ndarray, freq: np.ndarray, threads: int) -> list[M.ChunkAlignment]:
    """``align_chunk`` of ``enc`` (documents ``d0 ..``), on two cores when it is large: the
    frequency/round-trip pass and the continued-words pass run side by side (they release the
    GIL and write disjoint arrays; a split by documents balanced badly when one document holds
    a third of the tokens)."""
    cores = threads or os.cpu_count() or 1
    parallel = cores >= 2 and len(enc.ids) >= SPLIT_TOKENS
    return [M.align_chunk(pool, adapter, enc, d0, mask, freq, parallel=parallel)]


def measure(adapter: TokenizerAdapter, pool: M.TextPool, spec: EvaluateSpec,
            chunk_bytes: int = CHUNK_BYTES) -> dict:
    """Encode the pool once and derive every text metric; returns a plain dict.

    With ``chunk_bytes`` > 0, large pools are encoded chunk by chunk (:func:`chunk_bounds`):
    the frequencies and byte alignment of a chunk are computed while the next chunk is encoded
    in the background. The results are the same as from one ``encode_batch`` of the pool.
    """
    alignable = adapter.alignable_docs(pool.docs, pool.is_normalized)
    V = adapter.vocab_size
    # token counts as int32 (half the cache footprint of the per-token pass's random writes)
    # while no count can reach 2**31
    freq = np.zeros(V, dtype=np.int32)
    n_seen = 0
    parts: list[M.ChunkAlignment] = []
    encs = []
    work = 0.0  # seconds spent deriving metrics (not waiting for the encoder)
    bounds = chunk_bounds(pool.doc_bytes, chunk_bytes)
    for d0, d1, e in adapter.encode_chunks(pool.docs, bounds, spec.threads,
                                           offsets=not alignable.all()):
        t = time.perf_counter()
        n_seen += len(e.ids)
        if freq.dtype != np.int64 and n_seen >= FREQ_INT32_LIMIT:
            freq = freq.astype(np.int64)
        if alignable[d0:d1].any():  # also counts the chunk's ids into freq
            parts += _align_split(pool, adapter, e, d0, alignable[d0:d1], freq, spec.threads)
        elif len(e.ids):
            freq += np.bincount(e.ids_intp, minlength=V)[:V]
        encs.append(e)
        work += time.perf_counter() - t
    t0 = time.perf_counter()
    enc = Encoded.concat(encs) if encs else adapter.encode_batch([], spec.threads)
    counts = enc.counts
    n_tok = int(counts.sum())
    regular = ~adapter.special_mask
    n_regular = int(regular.sum())

    # alignment, round trip, continued words (counted per document; a document's words are
    # known when it is aligned, or from the tokenizer's own offsets)
    rt_bad: set[int] = set()
    if alignable.any():
        al = M.merge_alignments(pool, parts)
        rt_bad.update(int(d) for d in al.mismatched_docs)
        rt_bad.update(int(d) for d in np.flatnonzero(alignable & ~al.aligned))
        doc_known = al.aligned
        doc_cont = al.doc_continued
    else:
        doc_known = np.zeros(pool.n_docs, dtype=bool)
        doc_cont = np.zeros(pool.n_docs, dtype=np.int64)
    rest = np.flatnonzero(~alignable)
    if rest.size:
        decoded = adapter.decode_batch(enc, rest.tolist())
        for d, text in zip(rest.tolist(), decoded):
            if text != adapter.normalize(pool.docs[d]):
                rt_bad.add(d)
        if enc.encodings is not None:
            wc, wk = M.continued_from_offsets(pool, enc, rest)
            kd = np.zeros(pool.n_docs, dtype=bool)
            kd[rest] = True
            doc_known = doc_known | kd
            doc_cont = np.where(kd, M.count_per_doc(wc & wk, pool.doc_word_start), doc_cont)
    rt_examples = []
    for d in sorted(rt_bad)[:3]:
        rt_examples.append(f"{pool.dataset_names[pool.dataset[d]]} doc {d}: "
                           f"{pool.docs[d][:60]!r}")

    # distribution metrics: one pass over the vocabulary
    vs = M.vocab_summary(freq, regular, adapter.token_bytes_len, adapter.byte_fallback_mask,
                         spec.max_listed_tokens)
    renyi = M.renyi_efficiencies(vs.observed, spec.renyi_alpha, n_regular)
    mean_len, hist = vs.token_length()
    unreach, unreach_ex, partial = unreachable_tokens(adapter, spec.max_listed_tokens)
    unk = int(freq[adapter.unk_id]) if adapter.unk_id is not None and adapter.unk_id < V else 0
    bf = vs.byte_fallback
    total_words = int(pool.doc_words.sum())
    all_known = bool(doc_known.all())
    known = total_words if all_known else int(pool.doc_words[doc_known].sum())
    n_cont = int(doc_cont.sum())  # (0 for documents whose words are not known)

    def groups(codes: np.ndarray, names: list[str]) -> dict[str, dict[str, float | None]]:
        k = len(names)
        if k == 1:  # one group: the totals (no per-word pass)
            return {names[0]: {"docs": float(pool.n_docs), "n_tokens": float(n_tok),
                               "bytes_per_token": _ratio(pool.total_bytes, n_tok),
                               "chars_per_token": _ratio(int(pool.doc_chars.sum()), n_tok),
                               "fertility": _ratio(n_tok, total_words),
                               "continued_word_rate": _ratio(n_cont, known)}}
        ndoc, byt, chs, wds = pool.group_sums(codes, k)  # text side: once per pool
        tok = np.bincount(codes, weights=counts, minlength=k)
        kn = wds if all_known else np.bincount(codes, weights=pool.doc_words * doc_known,
                                                   minlength=k)
        ct = np.bincount(codes, weights=doc_cont, minlength=k)
        return {names[i]: {"docs": float(ndoc[i]), "n_tokens": float(tok[i]),
                           "bytes_per_token": _ratio(byt[i], tok[i]),
                           "chars_per_token": _ratio(chs[i], tok[i]),
                           "fertility": _ratio(tok[i], wds[i]),
                           "continued_word_rate": _ratio(ct[i], kn[i])} for i in range(k)}

    lang_u, lang_code = pool.lang_codes()
    out = {
        "n_docs": pool.n_docs,
        "n_tokens": n_tok,
        "doc_counts": counts,
        "lang_code": lang_code,
        "bytes_per_token": _ratio(pool.total_bytes, n_tok),
        "chars_per_token": _ratio(int(pool.doc_chars.sum()), n_tok),
        "fertility": _ratio(n_tok, total_words),
        "continued_word_rate": _ratio(n_cont, known),
        "vocab_utilization": _ratio(len(vs.observed), n_regular),
        "renyi_efficiency": renyi[0],
        "renyi_efficiency_full_vocab": renyi[1],
        "unk_rate": _ratio(unk, n_tok) if n_tok else None,
        "byte_fallback_rate": _ratio(bf, n_tok) if n_tok else None,
        "roundtrip_errors": len(rt_bad),
        "roundtrip_checked_docs": pool.n_docs,
        "roundtrip_examples": rt_examples,
        "encode_mb_per_s": (pool.total_bytes / enc.seconds / 1e6) if enc.seconds > 0 else None,
        "token_length": TokenLength(mean_bytes=mean_len, histogram=hist),
        "token_length_counts": vs.length_counts,
        "mean_token_bytes": mean_len if n_tok else None,
        "unreachable_tokens": unreach,
        "unreachable_examples": unreach_ex,
        "partial_utf8_tokens": partial,
        "never_produced_tokens": vs.never,
        "never_produced_examples": [adapter.token_repr(int(i)) for i in vs.never_first],
        "by_language": groups(lang_code, [str(x) for x in lang_u]),
        "by_dataset": groups(pool.dataset, pool.dataset_names),
        "encode_seconds": enc.seconds,
    }
    out["metrics_seconds"] = work + time.perf_counter() - t0
    out["encoded"] = enc  # for the premium when the pool is the parallel text (not a metric)
    return out


def measure_parallel(adapter: TokenizerAdapter, par: tuple[list[str], list[str], list[str]],
                     spec: EvaluateSpec, enc: Encoded | None = None,
                     codes: tuple | None = None) -> dict:
    """Token premium and parity on aligned segments. ``enc``: the segments' encoding if
    already made (when the parallel text is also the evaluation text); ``codes``: their
    ``segment_codes`` (the same for every tokenizer)."""
    seg, lang, text = par
    if enc is None:
        enc = adapter.encode_batch(text, spec.threads)
    share = unk_char_share(adapter, enc, text)
    premium, used, dropped = token_premium(seg, lang, enc.counts, share, spec.pivot_lang,
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

    raw: dict[str, dict] = {}
    total = len(adapters)
    codes = segment_codes(par[0], par[1]) if par is not None else None
    for k, ad in enumerate(adapters):
        progress(k, total, f"encoding with {ad.name}")
        r = measure(ad, pool, spec)
        enc = r.pop("encoded")
        if par is not None:  # the parallel text is the pool's text: reuse its encoding
            r.update(measure_parallel(ad, par, spec, enc=enc if par_is_pool else None,
                                      codes=codes))
        raw[ad.name] = r
    progress(total, total, "computing NSL and gates")

    ref_names = {ad.name: ad for ad in refs}
    results: dict[str, TokenizerMetrics] = {}
    lang_names = sorted({str(x) for x in pool.langs})
    for ad in adapters:
        r = raw[ad.name]
        nsl_by = {rn: _ratio(r["n_tokens"], raw[rn]["n_tokens"]) for rn in ref_names
                  if raw[rn]["n_tokens"]}
        nsl_by = {k: v for k, v in nsl_by.items() if v is not None}
        nsl_ref = spec.nsl_reference if spec.nsl_reference in raw else None
        if nsl_ref is not None:
            rc = raw[nsl_ref]["doc_counts"]
            for lg in lang_names:
                sel = pool.langs == lg
                r["by_language"][lg]["nsl"] = _ratio(r["doc_counts"][sel].sum(), rc[sel].sum())
            for i, dn in enumerate(pool.dataset_names):
                sel = pool.dataset == i
                r["by_dataset"][dn]["nsl"] = _ratio(r["doc_counts"][sel].sum(), rc[sel].sum())
        results[ad.name] = TokenizerMetrics(
            name=ad.name, source=ad.source, kind=ad.kind, is_reference=ad in refs,
            vocab_size=ad.vocab_size, nsl=nsl_by.get(nsl_ref) if nsl_ref else None,
            nsl_reference=nsl_ref, nsl_by_reference=nsl_by, renyi_alpha=spec.renyi_alpha,
            premium=r.get("premium", {}), parity=r.get("parity"),
            premium_max=r.get("premium_max"), premium_min=r.get("premium_min"),
            premium_std=r.get("premium_std"),
            parallel_pairs_used=r.get("parallel_pairs_used", {}),
            parallel_pairs_dropped_unk=r.get("parallel_pairs_dropped_unk", {}),
            **{k: v for k, v in r.items() if k in TokenizerMetrics.model_fields and k not in (
                "premium", "parity", "premium_max", "premium_min", "premium_std",
                "parallel_pairs_used", "parallel_pairs_dropped_unk")})

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
    length_counts = {name: raw[name]["token_length_counts"] for name in raw}
    plots = write_reports(result, out, length_counts)
    result = result.model_copy(update={"plots": plots,
                                       "seconds": time.perf_counter() - t_start})
    tmp = out / "evaluation.json.tmp"
    tmp.write_text(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False),
                   encoding="utf-8")
    tmp.replace(out / "evaluation.json")
    progress(total, total, "done")
    return result
