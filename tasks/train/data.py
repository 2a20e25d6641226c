"""Training data: resolve inputs, plan a deterministic sample, and stream it in batches.

The sample is planned once with DuckDB over the documents' metadata (doc_id, group, bytes),
then streamed from Parquet in file order, batch by batch, so a corpus never sits in a Python
list. Rules, all deterministic (no RNG state, only hashes of ids):

- held out: documents under their input's held-out threshold (``storage.splits``: a rule on the
  content hash, with a minimum count for small inputs) are never yielded;
- budget (``max_bytes`` / ``max_docs``) and mixing: each document gets a key
  ``u = int(md5(f"{seed}:{content_hash}")[:15], 16)`` (its content, not its path, so two copies of
  the same sources at different paths give the same sample); a group i with target t_i and size n_i is fed
  ``floor(t_i / n_i)`` full copies of every document plus one more copy of the documents whose
  key is at most a threshold that DuckDB computes from the running byte (and doc) sums in key
  order: the key-order prefix whose bytes are closest to the remaining target (within one
  document of it);
- mixing (``mix_by`` lang or corpus): temperature sampling ``p_i = n_i^alpha / sum_j n_j^alpha``
  and t_i = p_i * B, with B = max_bytes or the total (Conneau et al. 2020, XLM-R).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.train import SnapshotRef, TrainSpec
from tokenfoundry.storage import catalog
from tokenfoundry.storage import splits
from tokenfoundry.storage.workspace import Snapshot, Workspace, check_name
from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
from tokenfoundry.tasks.ingest.readers import read_unit
from tokenfoundry.tasks.ingest.sources import expand_sources

_log = logging.getLogger(__name__)
_KEY_HEX = 15  # hex digits of the sampling key (fits a signed 64-bit integer)


def sample_key(seed: int, content_hash: str) -> int:
    """The sampling key of a document (same value as the DuckDB expression in :func:`_key_sql`)."""
    return int(hashlib.md5(f"{seed}:{content_hash}".encode()).hexdigest()[:_KEY_HEX], 16)


def _key_sql(seed: int) -> str:
    return f"('0x' || substr(md5('{int(seed)}:' || chash), 1, {_KEY_HEX}))::UBIGINT"


@dataclass
class Source:
    """One input: a snapshot or Parquet files (``parquet``) or text files (``text``)."""

    label: str  # corpus name (or the path's stem) — the group for mix_by=corpus
    kind: str  # "parquet" | "text"
    files: list[str]
    fs: Any = None  # fsspec filesystem of the files (None = local)
    columns: set[str] = field(default_factory=set)
    ref: SnapshotRef | None = None
    formats: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # text: reader

    def doc_id_sql(self) -> str:
        return "doc_id" if "doc_id" in self.columns else "(filename || ':' || file_row_number)"

    def lang_sql(self) -> str:
        return "coalesce(lang, 'und')" if "lang" in self.columns else "'und'"

    def bytes_sql(self) -> str:
        return "n_bytes" if "n_bytes" in self.columns else "strlen(text)"

    def content_sql(self) -> str:
        """The content hash that decides the split and the sample (storage.splits)."""
        return "content_hash" if "content_hash" in self.columns else "md5(text)"


def resolve_sources(ws: Workspace, spec: TrainSpec) -> list[Source]:
    """Turn ``spec.corpora`` into sources; BadInputError for missing/empty inputs.

    A PATH that is (or holds) Parquet is read as Parquet; any other PATH is read by ingest's
    readers with ingest's walk and format rules (``tasks.ingest.sources``): txt/md and other
    text files one document per file, jsonl/csv one per record, po/mo one per translation.
    """
    import pyarrow.parquet as pq

    sources: list[Source] = []
    for item in spec.corpora:
        p = Path(item)
        if p.exists():
            label = p.stem or p.name
            parquet = sorted(str(x) for x in p.rglob("*.parquet")) if p.is_dir() else \
                ([str(p)] if p.suffix.lower() in (".parquet", ".pq") else [])
            if parquet:
                cols = set(pq.read_schema(parquet[0]).names)
                if "text" not in cols:
                    raise BadInputError(f"corpora: {parquet[0]}: no 'text' column (has "
                                        f"{sorted(cols)}); ingest it or rename the column")
                sources.append(Source(label, "parquet", parquet, None, cols,
                                      SnapshotRef(corpus=label, path=str(p))))
                continue
            try:
                files, skipped = expand_sources(_text_spec(p), option="corpora")
            except BadInputError as e:
                raise BadInputError(f"corpora: {e}; point at a Parquet file/dir with a 'text' "
                                    "column or text files") from None
            if skipped:
                _log.warning("corpora: %s: %d file(s) not read (e.g. %s: %s)", item,
                             len(skipped), skipped[0].path, skipped[0].reason)
            sources.append(Source(label, "text", [f for f, _fmt, _c in files], None, set(),
                                  SnapshotRef(corpus=label, path=str(p)),
                                  formats={f: (fmt, c) for f, fmt, c in files}))
            continue
        if "/" in item or item.endswith((".parquet", ".txt")):
            raise BadInputError(f"corpora: {item}: no such file or directory")
        check_name(item, "corpus")
        snap: Snapshot = ws.resolve(item, spec.ref)
        if snap.rows == 0:
            raise BadInputError(f"corpora: {item}: snapshot {snap.snapshot_id} is empty; "
                                "ingest some text first (check the ingest rejects table)")
        cols = set(snap.dataset().schema.names)
        files = [posixpath.join(snap.dir, f.path) for f in snap.manifest.files]
        sources.append(Source(item, "parquet", files, ws.fs if not ws.is_local else None, cols,
                              SnapshotRef(corpus=item, snapshot_id=snap.snapshot_id)))
    labels = [s.label for s in sources]
    if len(set(labels)) != len(labels):
        raise BadInputError(f"corpora: the same corpus/path is listed twice: {labels}")
    return sources


@dataclass
class Group:
    name: str
    docs: int  # trainable (not held-out) documents
    bytes: int
    target_fraction: float = 1.0  # p_i
    factor: float = 1.0  # t_i / n_i
    full_copies: int = 1
    threshold: int = -1  # partial copy for keys <= threshold (-1: none) ...
    skip: frozenset[int] = frozenset()  # ... except these keys (did not fit)
    by_docs: bool = False  # the document budget (not bytes) decides the partial copy


@dataclass
class Plan:
    """What will be streamed: per group, how many copies of which documents."""

    sources: list[Source]
    groups: dict[str, Group]
    heldout_docs: int
    excluded_lang_docs: int
    spec: TrainSpec
    #: per input (label): documents whose split key is below this are held out
    heldout_below: dict[str, int] = field(default_factory=dict)

    @property
    def expected_bytes(self) -> int:
        return int(sum(g.bytes * g.factor for g in self.groups.values()))

    def group_of(self, source: Source, lang: str) -> str:
        by = self.spec.mix_by
        return lang if by == "lang" else source.label if by == "corpus" else "all"


def _meta_sql(con, sources: list[Source]) -> str:
    """A UNION ALL over every source's (label, doc_id, lang, n_bytes)."""
    parts = []
    for i, s in enumerate(sources):
        label = s.label.replace("'", "''")
        if s.kind == "parquet":
            if s.fs is not None:
                con.register_filesystem(s.fs)
                proto = s.fs.protocol[0] if isinstance(s.fs.protocol, tuple) else s.fs.protocol
                paths = [f"{proto}://{f}" for f in s.files]
            else:
                paths = s.files
            src = (f"read_parquet({catalog.sql_list(paths)}, filename=true, "
                   "file_row_number=true)")
            parts.append(f"SELECT '{label}' AS corpus, {s.doc_id_sql()} AS doc_id, "
                         f"{s.lang_sql()} AS lang, {s.bytes_sql()}::BIGINT AS n_bytes, "
                         f"{s.content_sql()} AS chash FROM {src}")
        else:
            con.register(f"_text_{i}", _text_meta(s))
            parts.append(f"SELECT '{label}' AS corpus, doc_id, lang, n_bytes, chash "
                         f"FROM _text_{i}")
    return " UNION ALL ".join(parts)


def plan_sample(sources: list[Source], spec: TrainSpec) -> Plan:
    """Count, check and plan the sample with DuckDB; BadInputError when nothing is trainable."""
    con = catalog.connect(threads=2)
    con.execute(f"CREATE TEMP TABLE meta0 AS {_meta_sql(con, sources)}")
    below = {}
    for s in sources:
        keys = con.execute(f"SELECT {splits.key_sql('chash')} AS k FROM meta0 WHERE corpus = ?",
                           [s.label]).fetchnumpy()["k"]
        below[s.label] = splits.heldout_threshold(keys, spec.holdout_fraction)
    con.register("_heldout_below", pa.table({"corpus": list(below),
                                             "below": pa.array(list(below.values()),
                                                               pa.uint64())}))
    con.execute(f"CREATE TEMP VIEW meta AS SELECT meta0.*, {splits.key_sql('chash')} < below "
                "AS held FROM meta0 JOIN _heldout_below USING (corpus)")
    held = "held"
    grp = {"lang": "lang", "corpus": "corpus"}.get(spec.mix_by, "'all'")
    rows = con.execute(
        f"SELECT corpus, lang, count(*) FILTER (WHERE {held}), "
        f"count(*) FILTER (WHERE NOT {held}), coalesce(sum(n_bytes) FILTER (WHERE NOT {held}), 0)"
        " FROM meta GROUP BY ALL ORDER BY ALL").fetchall()
    total_docs = sum(r[2] + r[3] for r in rows)
    names = ", ".join(s.label for s in sources)
    if total_docs == 0:
        raise BadInputError(f"corpora: {names}: no documents; ingest text first")
    langs_present = sorted({r[1] for r in rows})
    heldout = sum(r[2] for r in rows)
    where = f"NOT {held}"
    excluded = 0
    if spec.languages:
        wanted = set(spec.languages)
        excluded = sum(r[3] for r in rows if r[1] not in wanted)
        rows = [r for r in rows if r[1] in wanted]
        if not any(r[3] for r in rows):
            raise BadInputError(
                f"languages: no training text in {sorted(wanted)} in {names} (languages "
                f"present: {', '.join(langs_present)}); fix `languages` or ingest that text")
        lang_list = ", ".join("'" + lang.replace("'", "''") + "'" for lang in sorted(wanted))
        where += f" AND lang IN ({lang_list})"
    if not any(r[3] for r in rows):
        raise BadInputError(f"corpora: {names}: every one of {total_docs} documents is held out "
                            f"(holdout_fraction {spec.holdout_fraction}); lower it (train --holdout-fraction, "
                            "or train.holdout_fraction in a pipeline)")
    groups: dict[str, Group] = {}
    for corpus, lang, _h, n, b in rows:
        name = lang if spec.mix_by == "lang" else corpus if spec.mix_by == "corpus" else "all"
        g = groups.setdefault(name, Group(name, 0, 0))
        g.docs += n
        g.bytes += b
    groups = {k: g for k, g in sorted(groups.items()) if g.docs > 0}
    total_bytes = sum(g.bytes for g in groups.values())
    total_n = sum(g.docs for g in groups.values())
    if spec.mix_by == "none":
        weights = {k: g.bytes / max(total_bytes, 1) for k, g in groups.items()}
    else:
        raw = {k: float(max(g.bytes, 1)) ** spec.mix_alpha for k, g in groups.items()}
        z = sum(raw.values())
        weights = {k: v / z for k, v in raw.items()}
    budget_b = spec.max_bytes or total_bytes
    budget_d = spec.max_docs
    for k, g in groups.items():
        g.target_fraction = weights[k]
        f = weights[k] * budget_b / max(g.bytes, 1)
        g.by_docs = False
        if budget_d is not None:
            fd = weights[k] * budget_d / g.docs if spec.mix_by != "none" else budget_d / total_n
            if fd < f or (spec.max_bytes is None and spec.mix_by == "none"):
                f, g.by_docs = fd, True
        if spec.mix_by == "none" or not spec.upsample:
            f = min(f, 1.0)
        g.factor = f
        g.full_copies = int(f)
    # the partial copy: documents in key order, first fit (a document that would overflow the
    # remaining bytes is skipped, so one huge document cannot stop the sample short)
    for k, g in groups.items():
        frac = g.factor - g.full_copies
        if frac <= 1e-12:
            continue
        target_b = float("inf") if g.by_docs else frac * g.bytes
        target_d = round(frac * g.docs) if g.by_docs else float("inf")
        arr = con.execute(
            f"SELECT {_key_sql(spec.seed)} AS u, n_bytes FROM meta WHERE {where} AND {grp} = ? "
            "ORDER BY u", [k]).fetchnumpy()
        g.threshold, g.skip = _first_fit(arr["u"], arr["n_bytes"], target_b, target_d)
    con.close()
    return Plan(sources, groups, heldout, excluded, spec, below)


def _first_fit(keys, sizes, target_bytes: float, target_docs: float,
               slack: float = 0.005, max_skips: int = 100_000) -> tuple[int, frozenset[int]]:
    """Walk documents in key order taking each one that fits the remaining bytes; stop within
    ``slack`` of the target. Returns (last key examined, keys skipped before it)."""
    remaining, taken, thr = target_bytes, 0, -1
    skipped: list[int] = []
    for u, n in zip(keys.tolist(), sizes.tolist()):
        if taken >= target_docs or len(skipped) >= max_skips or (
                target_bytes != float("inf") and remaining <= slack * target_bytes):
            break
        thr = u
        if n <= remaining:
            remaining -= n
            taken += 1
        else:
            skipped.append(u)
    return thr, frozenset(skipped)


#: Longest training document read from a text PATH (characters; ingest's reader limit).
TEXT_MAX_CHARS = 10_000_000


def _text_spec(path: Path) -> IngestSpec:
    """How a text PATH corpus is read: ingest's readers, bad bytes repaired (U+FFFD)."""
    return IngestSpec(corpus="train", sources=[str(path)], utf8="repair", lang_id=False,
                      max_chars=TEXT_MAX_CHARS)


def _read_text_source(source: Source, batch_size: int
                      ) -> Iterator[tuple[list[str], list[str], list[str], list[tuple]]]:
    """(doc_ids, langs, texts, rejects) per reader batch of a text source, in file order.

    A whole-file document's id is its path (as before); a record's is ``path:location``.
    """
    spec = _text_spec(Path(source.ref.path if source.ref and source.ref.path else "."))
    spec = spec.model_copy(update={"batch_rows": batch_size})
    for f in source.files:
        fmt, comp = source.formats.get(f, ("txt", None))
        unit = IngestUnit(name="00000-0000", path=f, format=fmt, compression=comp,
                          size=os.path.getsize(f))
        for batch, _ in read_unit(unit, spec):
            ids = [f if loc == "file" else f"{f}:{loc}" for loc in batch.location]
            yield ids, [x or "und" for x in batch.lang], batch.text, batch.rejects


def _text_meta(source: Source) -> pa.Table:
    """(doc_id, lang, n_bytes, chash) of every document of a text source (one reading pass); the
    reader's rejects are counted and logged, so nothing is left out without a word."""
    ids: list[str] = []
    langs: list[str] = []
    sizes: list[int] = []
    hashes: list[str] = []
    rejects: dict[str, int] = {}
    for b_ids, b_langs, texts, rej in _read_text_source(source, 8192):
        ids += b_ids
        langs += b_langs
        sizes += [len(t.encode("utf-8", "replace")) for t in texts]
        hashes += [splits.text_hash(t) for t in texts]
        for r in rej:
            rejects[r[1]] = rejects.get(r[1], 0) + 1
    if rejects:
        _log.warning("corpora: %s: %d record(s) not read (%s); `tokenfoundry ingest` it to see "
                     "them in a rejects table", source.label, sum(rejects.values()),
                     ", ".join(f"{k} {v}" for k, v in sorted(rejects.items())))
    return pa.table({"doc_id": pa.array(ids, pa.string()), "lang": pa.array(langs, pa.string()),
                     "n_bytes": pa.array(sizes, pa.int64()),
                     "chash": pa.array(hashes, pa.string())})


@dataclass
class StreamStats:
    docs: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    heldout_seen: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    @property
    def total_docs(self) -> int:
        return sum(self.docs.values())

    def mix(self) -> dict[str, float]:
        t = self.total_bytes or 1
        return {k: round(v / t, 6) for k, v in sorted(self.bytes.items())}


def _iter_rows(source: Source, batch_size: int
               ) -> Iterator[tuple[list, list, list, list | None, list]]:
    """(doc_ids, langs, texts, n_bytes|None, content hashes) per batch, in file order."""
    import pyarrow.parquet as pq

    if source.kind == "text":
        for ids, langs, texts, _rejects in _read_text_source(source, batch_size):
            if ids:
                yield ids, langs, texts, None, [splits.text_hash(t) for t in texts]
        return
    cols = ["text"] + [c for c in ("doc_id", "lang", "n_bytes", "content_hash")
                       if c in source.columns]
    for path in source.files:
        fh = source.fs.open(path, "rb") if source.fs is not None else open(path, "rb")
        with fh:
            pf = pq.ParquetFile(fh)
            row0 = 0
            for batch in pf.iter_batches(batch_size=batch_size, columns=cols):
                n = batch.num_rows
                d = batch.to_pydict()
                ids = d.get("doc_id") or [f"{path}:{row0 + j}" for j in range(n)]
                langs = [x or "und" for x in d["lang"]] if "lang" in d else ["und"] * n
                row0 += n
                hashes = d.get("content_hash") or [splits.text_hash(t) for t in d["text"]]
                yield ids, langs, d["text"], d.get("n_bytes"), hashes


def stream(plan: Plan, stats: StreamStats | None = None, *, group: str | None = None,
           progress: Callable[[int], None] | None = None, batch_size: int | None = None
           ) -> Iterator[list[str]]:
    """Batches of training texts following ``plan`` (optionally only one group)."""
    spec = plan.spec
    wanted = set(spec.languages) if spec.languages else None
    bs = batch_size or spec.batch_size
    seed = spec.seed
    groups = plan.groups
    out: list[str] = []
    for source in plan.sources:
        below = plan.heldout_below.get(source.label, 0)
        for ids, langs, texts, nb, hashes in _iter_rows(source, bs):
            for j, chash in enumerate(hashes):
                if below and splits.split_key(chash) < below:
                    if stats is not None:
                        stats.heldout_seen += 1
                    continue
                lang = langs[j]
                if wanted is not None and lang not in wanted:
                    continue
                gname = plan.group_of(source, lang)
                if group is not None and gname != group:
                    continue
                g = groups.get(gname)
                if g is None:
                    continue
                copies = g.full_copies
                if g.threshold >= 0:
                    key = sample_key(seed, chash)
                    if key <= g.threshold and key not in g.skip:
                        copies += 1
                if copies == 0:
                    continue
                text = texts[j]
                if stats is not None:
                    n = nb[j] if nb is not None else len(text.encode("utf-8"))
                    stats.docs[gname] = stats.docs.get(gname, 0) + copies
                    stats.bytes[gname] = stats.bytes.get(gname, 0) + copies * n
                out.extend([text] * copies)
                if len(out) >= bs:
                    yield out
                    if progress is not None and stats is not None:
                        progress(stats.total_bytes)
                    out = []
    if out:
        yield out


def parallel_dev_set(plan: Plan, langs: list[str], n: int) -> dict[str, list[str]]:
    """Aligned segments (same ``align_key`` in every language) from the training documents.

    Keys are taken in sampling-key order (deterministic); returns lang -> texts in key order.
    """
    srcs = [s for s in plan.sources if s.kind == "parquet" and "align_key" in s.columns]
    if not srcs:
        raise BadInputError("parity_aware: no input has an align_key column (ingest gettext "
                            ".po/.mo catalogs, which are parallel by msgid)")
    con = catalog.connect(threads=2)
    parts = []
    for s in srcs:
        if s.fs is not None:
            con.register_filesystem(s.fs)
        below = plan.heldout_below.get(s.label, 0)
        parts.append(f"SELECT {s.doc_id_sql()} AS doc_id, {s.lang_sql()} AS lang, align_key, "
                     f"text FROM read_parquet({catalog.sql_list(s.files)}, filename=true, "
                     f"file_row_number=true) WHERE align_key IS NOT NULL AND "
                     f"{splits.key_sql(s.content_sql())} >= {below}::UBIGINT")
    lang_list = ", ".join("'" + x.replace("'", "''") + "'" for x in langs)
    rows = con.execute(
        f"WITH a AS ({' UNION ALL '.join(parts)}), b AS (SELECT * FROM a WHERE "
        f"lang IN ({lang_list})), k AS (SELECT align_key FROM b GROUP BY align_key "
        f"HAVING count(DISTINCT lang) = {len(langs)} ORDER BY md5('{plan.spec.seed}:' || "
        f"align_key) LIMIT {int(n)}) SELECT b.lang, b.align_key, min(b.text) FROM b "
        "JOIN k USING (align_key) GROUP BY ALL ORDER BY b.align_key, b.lang").fetchall()
    con.close()
    dev: dict[str, list[str]] = {lang: [] for lang in langs}
    for lang, _key, text in rows:
        dev[lang].append(text)
    if not dev[langs[0]]:
        raise BadInputError(f"parity_aware: no align_key is shared by all of {langs}; "
                            "choose languages whose catalogs translate the same messages")
    return dev


def alphabet_sample(plan: Plan, max_bytes: int = 4_000_000) -> dict[str, int]:
    """Character counts of the first ``max_bytes`` of the stream (an alphabet estimate)."""
    from collections import Counter

    from tokenfoundry.tasks.train.presets import normalize_text

    counts: Counter[str] = Counter()
    seen = 0
    for batch in stream(plan, batch_size=256):
        for t in batch:
            t = normalize_text(t, plan.spec.normalization, plan.spec.lowercase)
            counts.update(t)
            seen += len(t)
        if seen >= max_bytes:
            break
    return dict(counts)
