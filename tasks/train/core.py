"""The train stage's core: plan the sample, check the spec against the data, train, write.

``train(ws, spec, out_dir)`` is what ``tokenfoundry train`` (directly) and ``train_flow`` (through
Prefect tasks) both call. Every check that can fail on bad input runs before the trainer starts.

Writes are all-or-nothing: training writes into a temporary directory beside ``out_dir``
(``.<name>.tmp-*``), ``train_report.json`` last, and only then is that directory renamed into
place (an existing output of an earlier run is moved aside first and removed after), so a kill or
a full disk never leaves a new tokenizer beside an old report.

A trainer can deliver fewer tokens than asked (a small corpus has no more pairs that occur
``min_frequency`` times; SuperBPE's stage 1 can stop short of its transition point). That is never
silent: :class:`~tokenfoundry.schemas.train.TrainResult` ``shortfall`` says asked vs got and why,
and ``strict`` turns it into a failed check (exit 1) before anything is written.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tokenfoundry.schemas.errors import BadInputError, CheckFailed
from tokenfoundry.schemas.train import TrainResult, TrainSpec, VocabShortfall
from tokenfoundry.storage.provenance import code_version, library_versions, utc_now
from tokenfoundry.storage.workspace import Workspace
from tokenfoundry.tasks.progress import Progress, no_progress
from tokenfoundry.tasks.train import data as train_data
from tokenfoundry.tasks.train import hf, outputs



def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextmanager
def _single_threaded(on: bool) -> Iterator[None]:
    """``TOKENIZERS_PARALLELISM=false`` for the duration (read by tokenizers at each call)."""
    if not on:
        yield
        return
    old = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = old


def plan(ws: Workspace, spec: TrainSpec) -> tuple[train_data.Plan, dict[str, Any]]:
    """Resolve inputs, plan the sample and check the vocabulary size; no writes.

    Raises BadInputError for missing/empty snapshots, languages without text, and a vocabulary
    smaller than the alphabet + special tokens.
    """
    sources = train_data.resolve_sources(ws, spec)
    p = train_data.plan_sample(sources, spec)
    checks: dict[str, Any] = {}
    byte_level = spec.backend == "hf" and spec.model in ("bpe", "char-bpe", "superbpe") \
        and not spec.byte_fallback
    counts = {} if byte_level else train_data.alphabet_sample(p)
    floor, why = hf.alphabet_floor(spec, counts)
    checks["alphabet_floor"] = floor
    checks["alphabet_estimate"] = why
    target = spec.target_vocab_size
    if target < floor:
        raise BadInputError(
            f"vocab_size: {target} is below the alphabet + special tokens ({why} = {floor}); "
            f"set vocab_size to at least {floor}")
    if spec.model == "superbpe":
        from tokenfoundry.tasks.train.superbpe import transition_point

        t = transition_point(spec, target)
        if t >= target:
            raise BadInputError(f"superbpe_transition: transition point {t} leaves no stage-2 "
                                f"merges below vocab_size {target}; lower it or raise vocab_size")
    if spec.parity_aware:
        langs = sorted(p.groups) if spec.mix_by == "lang" else None
        if not langs or len(langs) < 2:
            raise BadInputError("parity_aware: needs mix_by: lang and at least two languages "
                                "with training text")
    return p, checks


#: Files that mark a directory as an earlier training output (safe to replace as a whole).
_OUTPUT_MARKERS = (outputs.REPORT, outputs.TOKENIZER_JSON, "tokenizer.model")


def check_out_dir(out_dir: str) -> None:
    """``--out`` must be new, empty, or an earlier training output (replaced as a whole)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BadInputError(f"--out {out_dir}: is a file; give a directory")
    if os.path.isdir(out_dir):
        names = os.listdir(out_dir)
        if names and not any(m in names for m in _OUTPUT_MARKERS):
            raise BadInputError(f"--out {out_dir}: exists and holds other files (no "
                                f"{outputs.REPORT}); give a new or empty directory")


def replace_dir(tmp: str, out_dir: str) -> None:
    """Move the finished ``tmp`` into place as ``out_dir`` (an earlier output goes aside first,
    then is removed): readers see the old directory or the new one, never a mix."""
    out_dir = os.path.abspath(out_dir)
    old = None
    if os.path.isdir(out_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-",
                               dir=os.path.dirname(out_dir))
        os.rename(out_dir, os.path.join(old, "out"))
    os.rename(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def train(ws: Workspace, spec: TrainSpec, out_dir: str, progress: Progress = no_progress
          ) -> TrainResult:
    """Train one tokenizer from ``spec`` into ``out_dir``; see the module docstring."""
    check_out_dir(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.tmp-",
                            dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)  # mkdtemp makes 0700; the output is an ordinary directory
    try:
        result = _train_into(ws, spec, work, os.path.abspath(out_dir), progress)
        replace_dir(work, out_dir)
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)
    return result


def _train_into(ws: Workspace, spec: TrainSpec, work: str, out_dir: str, progress: Progress
                ) -> TrainResult:
    """Train into ``work`` (a fresh directory); paths in the result name ``out_dir``."""
    t0 = time.perf_counter()
    p, checks = plan(ws, spec)
    target = spec.target_vocab_size
    expected = max(p.expected_bytes, 1)
    first: list[train_data.StreamStats] = []

    def batches() -> Iterator[list[str]]:
        st = train_data.StreamStats()
        if not first:
            first.append(st)
        label = "reading" if len(first) == 1 and first[0] is st else "re-reading"
        yield from train_data.stream(
            p, st, progress=lambda done: progress(min(done, expected), expected, label))

    info: dict[str, Any] = {}
    spm_model = None
    progress(0, expected, f"training {spec.model} ({spec.backend}) to {target} tokens")
    t_train = time.perf_counter()
    # sentencepiece: num_threads=1 when deterministic; HF Unigram is made canonical after
    # training (hf.canonical_unigram); HF BPE needs nothing (see README "Determinism")
    with _single_threaded(spec.deterministic and spec.backend == "spm"):
        if spec.backend == "spm":
            from tokenfoundry.tasks.train import spm

            prefix = os.path.join(work, "tokenizer")
            info.update(spm.train_spm(spec, target, batches, prefix))
            spm_model = prefix + ".model"
            tok = spm.to_hf_tokenizer(spm_model, spec)
        elif spec.model == "superbpe":
            from tokenfoundry.tasks.train.superbpe import train_superbpe

            tok, sinfo = train_superbpe(spec, target, batches,
                                        on_stage=lambda m: progress(0, expected, m))
            info["superbpe"] = sinfo
        elif spec.parity_aware:
            langs = sorted(p.groups)
            dev = train_data.parallel_dev_set(p, langs, spec.parity_dev_segments)
            st = train_data.StreamStats()
            first.append(st)
            iters = [train_data.stream(p, st, group=g) for g in langs]
            tok = hf.train_parity(spec, target, iters, [dev[g] for g in langs])
            info["parity"] = {"languages": langs, "dev_segments": len(dev[langs[0]])}
        else:
            tok = hf.train_hf(spec, target, batches)
    train_seconds = time.perf_counter() - t_train
    stats = first[0] if first else train_data.StreamStats()
    padded = hf.pad_vocab(tok, target) if spec.round_vocab != "none" else 0
    if spm_model is not None:
        from tokenfoundry.tasks.train import spm

        sample = _sample_lines(p, 300)
        info["tokenizer_json_agreement"] = round(spm.agreement(spm_model, tok, sample), 4)
    specials = list(hf.specials_for(spec))
    if spec.backend == "spm" and spec.unk_token not in specials:
        specials.append(spec.unk_token)
    vocab = tok.get_vocab(with_added_tokens=True)
    special_ids = {t: vocab[t] for t in specials if t in vocab}
    shortfall = vocab_shortfall(spec, target, tok.get_vocab_size(with_added_tokens=True) - padded,
                                info, stats)
    if shortfall is not None and spec.strict:
        raise CheckFailed(f"train: vocabulary {shortfall.got} of {shortfall.asked} asked "
                          f"({shortfall.why}); nothing written to {out_dir} (strict)")
    outputs.write_hf_dir(work, tok, [t for t in specials if t in vocab],
                         model_max_length=1_000_000)
    byte_level = spec.backend == "hf" and not spec.byte_fallback and \
        spec.model in ("bpe", "char-bpe", "superbpe")
    seconds = round(time.perf_counter() - t0, 3)
    rss = peak_rss_mb()
    fingerprint = outputs.vocab_fingerprint(tok)
    mix = stats.mix()
    result = TrainResult(
        out=os.path.abspath(out_dir),
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        seconds=seconds, peak_rss_mb=rss, model=spec.model, backend=spec.backend,
        tokenizer_json=os.path.abspath(os.path.join(out_dir, outputs.TOKENIZER_JSON)),
        spm_model=os.path.join(out_dir, "tokenizer.model") if spm_model else None,
        report=os.path.abspath(os.path.join(out_dir, outputs.REPORT)),
        snapshots=[s.ref for s in p.sources if s.ref is not None],
        spec_hash=spec.spec_hash(), docs=stats.total_docs, bytes=stats.total_bytes,
        heldout_docs=p.heldout_docs, realised_mix=mix, special_tokens=special_ids,
        padded_tokens=padded, vocab_sha256=fingerprint, extra=info,
        requested_vocab_size=target, shortfall=shortfall,
    )
    report = {
        "created_at": utc_now(),
        "result": result.model_dump(mode="json"),
        "spec": spec.model_dump(mode="json"),
        "spec_hash": spec.spec_hash(),
        "snapshots": [s.model_dump(mode="json") for s in result.snapshots],
        "code_version": code_version(),
        "library_versions": library_versions(),
        "seconds": {"total": seconds, "train": round(train_seconds, 3)},
        "peak_rss_mb": rss,
        "vocab": {**outputs.vocab_stats(tok, byte_level), "sha256": fingerprint,
                  "target": target, "requested": spec.vocab_size, "padded": padded,
                  "shortfall": shortfall.model_dump(mode="json") if shortfall else None},
        "sample": {
            "docs": stats.total_docs, "bytes": stats.total_bytes,
            "heldout_docs_excluded": p.heldout_docs,
            "other_language_docs_excluded": p.excluded_lang_docs,
            "holdout_fraction": spec.holdout_fraction,
            "max_bytes": spec.max_bytes, "max_docs": spec.max_docs,
        },
        "mix": {
            "by": spec.mix_by, "alpha": spec.mix_alpha,
            "groups": {k: {"docs_available": g.docs, "bytes_available": g.bytes,
                           "target_fraction": round(g.target_fraction, 6),
                           "sampling_factor": round(g.factor, 6),
                           "docs_fed": stats.docs.get(k, 0), "bytes_fed": stats.bytes.get(k, 0),
                           "realised_fraction": mix.get(k, 0.0)}
                       for k, g in p.groups.items()},
        },
        "checks": checks,
        "extra": info,
    }
    outputs.write_report(work, report)
    progress(expected, expected, "done")
    return result


def vocab_shortfall(spec: TrainSpec, asked: int, got: int, info: dict[str, Any],
                    stats: train_data.StreamStats) -> VocabShortfall | None:
    """Asked vs got, and why, when the trainer learned fewer tokens than asked (else None)."""
    reasons = []
    sb = info.get("superbpe") or {}
    if sb and sb.get("stage1_vocab", sb.get("transition_point", 0)) < sb.get("transition_point", 0):
        reasons.append(f"SuperBPE stage 1 stopped at {sb['stage1_vocab']} tokens, below its "
                       f"transition point {sb['transition_point']}")
    if got >= asked and not reasons:
        return None
    data = f"{stats.total_docs} documents, {stats.total_bytes / 1e6:.2f} MB"
    if spec.backend == "hf" and spec.model in ("bpe", "char-bpe", "superbpe", "wordpiece"):
        why = (f"the training text ({data}) has no more pairs that occur at least "
               f"min_frequency={spec.min_frequency} times")
    else:
        why = f"the trainer found no more pieces in the training text ({data})"
    reasons.append(f"{why}; train on more text, lower min_frequency or vocab_size")
    return VocabShortfall(asked=asked, got=got, why="; ".join(reasons))


def _sample_lines(p: train_data.Plan, n: int) -> list[str]:
    out: list[str] = []
    for batch in train_data.stream(p, batch_size=64):
        for doc in batch:
            out.extend(line for line in doc.split("\n") if line.strip())
            if len(out) >= n:
                return out[:n]
    return out
