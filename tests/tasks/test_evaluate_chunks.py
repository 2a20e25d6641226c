"""Chunked, overlapped encoding gives exactly the metrics of one encode pass; the per-pool
alignment index agrees with a direct computation on real text."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

from tokenfoundry.schemas.evaluate import EvaluateSpec
from tokenfoundry.tasks.evaluate import metrics as M
from tokenfoundry.tasks.evaluate.adapters import Encoded, load_reference, load_tokenizer
from tokenfoundry.tasks.evaluate.core import chunk_bounds, measure
from tf_fixtures import evaluate as FX


SPEC = EvaluateSpec(tokenizers=["gpt2"], texts=["unused"], references=[])
SAME = ("n_tokens", "bytes_per_token", "chars_per_token", "fertility", "continued_word_rate",
        "vocab_utilization", "renyi_efficiency", "renyi_efficiency_full_vocab", "unk_rate",
        "byte_fallback_rate", "roundtrip_errors", "roundtrip_examples", "never_produced_tokens",
        "never_produced_examples", "mean_token_bytes", "by_language", "by_dataset")


@pytest.fixture(scope="module")
def docs():
    texts = FX.licence_texts()
    if len(texts) < 3:
        pytest.skip("needs /usr/share/common-licenses")
    # licences, an empty document, CJK, and an NFD document (Qwen-3 cannot align it)
    return texts + ["", "日本語のテキスト、中文文本。", "Cafe\u0301 re\u0301sume\u0301 " * 50]


def _same(a: dict, b: dict) -> None:
    for k in SAME:
        assert a[k] == b[k], k
    assert a["doc_counts"].tolist() == b["doc_counts"].tolist()
    assert a["token_length_counts"].tolist() == b["token_length_counts"].tolist()


def test_chunk_bounds_split_by_bytes():
    sizes = np.array([100, 100, 100, 100, 400, 0, 200], dtype=np.int64)
    assert chunk_bounds(sizes, chunk_bytes=10_000) == [0, 7]  # small: one range, no thread
    # targets 250, 500, 750 bytes: each range ends with the document that reaches its target
    assert chunk_bounds(sizes, chunk_bytes=250, max_chunks=4) == [0, 3, 5, 7]
    assert chunk_bounds(sizes, chunk_bytes=100, max_chunks=10) == [0, 2, 3, 5, 7]  # 7 targets
    assert chunk_bounds(np.zeros(0, dtype=np.int64)) == [0, 0]


@pytest.mark.parametrize("ref", ["o200k", "qwen3", "gpt2"])
def test_chunked_measure_equals_one_pass(docs, ref):
    pool = M.build_pool(docs, langs=["en"] * (len(docs) - 3) + ["und", "ja", "fr"])
    ad = load_reference(ref)
    whole = measure(ad, pool, SPEC, chunk_bytes=1 << 40)
    for chunk in (2000, 20_000):
        assert len(chunk_bounds(pool.doc_bytes, chunk)) > 3
        _same(measure(ad, pool, SPEC, chunk_bytes=chunk), whole)
    assert whole["roundtrip_errors"] == 0
    if ref == "qwen3":  # the NFD document takes the decode path; still no round-trip error
        assert not unicodedata.is_normalized("NFC", docs[-1])


def test_chunked_round_trip_error_found_in_its_chunk(docs):
    """A wrong token surface is caught in whichever chunk its documents land in, with the same
    documents as in one pass."""
    ad = load_reference("gpt2")
    ad.vocab_identity = lambda: None  # its table is altered below: not from/to the disk cache
    surfaces, special = ad.table
    the = ad.encode_batch([" the"]).ids.tolist()
    assert len(the) == 1
    wrong = list(surfaces)
    wrong[the[0]] = b" thE"
    ad.__dict__["table"] = (wrong, special)
    pool = M.build_pool(docs)
    whole = measure(ad, pool, SPEC, chunk_bytes=1 << 40)
    chunked = measure(ad, pool, SPEC, chunk_bytes=2000)
    with_the = sum(" the" in d for d in docs)
    assert whole["roundtrip_errors"] == chunked["roundtrip_errors"] == with_the >= 3
    assert whole["roundtrip_examples"] == chunked["roundtrip_examples"]


def test_pool_index_matches_direct_definitions(docs):
    """Separator-free positions, per-document hashes and the word-interior map, checked
    against straightforward per-document Python."""
    pool = M.build_pool(docs)
    idx = M.pool_index(pool)
    raw = [d.encode("utf-8") for d in docs]
    assert idx.doc_start.tolist() == [0, *np.cumsum([len(r) for r in raw]).tolist()]
    mask = (1 << 64) - 1
    for d, r in enumerate(raw):
        h = 0
        for j, byte in enumerate(r, start=int(idx.doc_start[d])):
            h = (h + int(M._HASH_R[byte]) * pow(int(M._HASH_B_INV), j, 1 << 64)) & mask
        assert int(idx.doc_hash[d]) == h
    inside = np.full(int(idx.doc_start[-1]) + 1, -1)
    for w, (s, e, d) in enumerate(zip(pool.word_byte_start, pool.word_byte_end, pool.word_doc)):
        inside[s - d + 1:e - d] = w
    assert idx.word_inside.tolist() == inside.tolist()


def test_continued_words_on_a_trained_byte_level_bpe(tmp_path, docs):
    """Continued words counted per document by the compiled pass and by the numpy path equal
    a direct check of every word against the token start offsets (tokens decoded one by
    one)."""
    ad = load_tokenizer(str(FX.train_bytelevel_bpe(tmp_path / "bpe" / "tokenizer.json")))
    pool = M.build_pool(docs[:4])
    enc = ad.encode_batch(pool.docs)
    mask = np.ones(pool.n_docs, dtype=bool)
    al = M.align_bytes(pool, ad, enc, mask)
    assert al.aligned.all() and al.mismatched_docs.size == 0
    expected = FX.continued_word_flags(pool, ad, enc)
    per_doc = np.bincount(pool.word_doc, weights=expected, minlength=pool.n_docs).astype(int)
    assert al.doc_continued.tolist() == per_doc.tolist()
    assert M._align_chunk_numpy(pool, ad, enc, 0, mask).doc_continued.tolist() == \
        per_doc.tolist()
    assert 0 < sum(expected) < len(expected)


def test_parallel_only_evaluation_reuses_the_encoding_with_the_same_premium(tmp_path):
    """With only parallel text, the pool is the parallel text: the premium comes from the
    pool's encoding and equals the premium from counting tokens of each segment directly."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import quicktok
    from tokenfoundry.tasks.evaluate.core import evaluate

    segs = [("Open File", "Datei öffnen", "ファイルを開く"),
            ("Save the document", "Das Dokument speichern", "文書を保存する"),
            ("Quit", "Beenden", "終了"), ("Print preview", "Druckvorschau", "印刷プレビュー")]
    rows = [{"seg_id": str(i), "lang": lang, "text": text}
            for i, s in enumerate(segs) for lang, text in zip(("en", "de", "ja"), s)]
    p = tmp_path / "par.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    res = evaluate(EvaluateSpec(tokenizers=["o200k"], parallel=str(p), references=["cl100k"]),
                   str(tmp_path / "out"))
    for name, enc_name in (("o200k", "o200k_base"), ("cl100k", "cl100k_base")):
        enc = quicktok.get_encoding(enc_name)
        n = {lg: sum(len(enc.encode_ordinary(s[k])) for s in segs)
             for k, lg in enumerate(("en", "de", "ja"))}
        m = res.tokenizers[name]
        assert m.premium == pytest.approx({"de": n["de"] / n["en"], "en": 1.0,
                                           "ja": n["ja"] / n["en"]})
        assert m.n_tokens == sum(n.values())
        assert m.parity == pytest.approx(max(n.values()) / min(n.values()))


@pytest.mark.parametrize("ref", ["cl100k", "gpt2"])
def test_vocab_facts_cached_on_disk_give_the_same_metrics(tmp_path, monkeypatch, docs, ref):
    """The first evaluation stores the vocabulary facts; a fresh adapter then loads them
    (no token table is built) and every metric, including the unreachable-token list and the
    examples, is the same. A damaged cache file is recomputed."""
    from tokenfoundry.tasks.evaluate import vocab_cache

    monkeypatch.setenv("TOKENFOUNDRY_CACHE_DIR", str(tmp_path))
    pool = M.build_pool(docs)
    first_ad = load_reference(ref)
    assert first_ad.stored_facts is None
    first = measure(first_ad, pool, SPEC)
    files = list((tmp_path / "vocab").glob("*.safetensors"))
    assert len(files) == 1
    ad = load_reference(ref)
    assert ad.stored_facts is not None
    again = measure(ad, pool, SPEC)
    assert "table" not in ad.__dict__  # lengths, hashes, masks and reachability came from disk
    _same(again, first)
    for k in ("unreachable_tokens", "unreachable_examples", "partial_utf8_tokens"):
        assert again[k] == first[k], k
    assert first["never_produced_examples"] and first["partial_utf8_tokens"] > 0
    assert ad.token_bytes_len.tolist() == first_ad.token_bytes_len.tolist()
    assert M.token_hashes(ad).tolist() == M.token_hashes(first_ad).tolist()
    files[0].write_bytes(b"not a safetensors file")
    assert load_reference(ref).stored_facts is None
    monkeypatch.setenv("TOKENFOUNDRY_CACHE_DIR", "none")
    assert vocab_cache.cache_dir() is None and load_reference(ref).stored_facts is None


def test_cache_key_follows_the_tokenizer_definition(tmp_path, monkeypatch):
    """Two trained tokenizers with different vocabularies never share cached facts; the same
    file loaded twice does."""
    monkeypatch.setenv("TOKENFOUNDRY_CACHE_DIR", str(tmp_path))
    a = load_tokenizer(str(FX.train_bytelevel_bpe(tmp_path / "a" / "tokenizer.json", 400)))
    b = load_tokenizer(str(FX.train_bytelevel_bpe(tmp_path / "b" / "tokenizer.json", 500)))
    a2 = load_tokenizer(str(tmp_path / "a" / "tokenizer.json"))
    assert a.vocab_identity() == a2.vocab_identity() != b.vocab_identity()
    pool = M.build_pool(["A licence grants permission to copy and modify the software."])
    measure(a, pool, SPEC)
    assert load_tokenizer(str(tmp_path / "a" / "tokenizer.json")).stored_facts is not None
    assert load_tokenizer(str(tmp_path / "b" / "tokenizer.json")).stored_facts is None


def test_sum_per_doc_with_empty_documents_anywhere():
    rng = np.random.default_rng(7)
    vals = rng.integers(0, 2**63, size=9, dtype=np.uint64)
    for offsets in ([0, 0, 3, 3, 9, 9], [0, 9], [0, 4, 9], [0, 0, 0, 9]):
        off = np.asarray(offsets, dtype=np.int64)
        with np.errstate(over="ignore"):
            assert M._sum_per_doc(vals, off).tolist() == M.per_doc_sum(
                vals, off, dtype=np.uint64).tolist()
    empty = np.zeros(0, dtype=np.uint64)
    assert M._sum_per_doc(empty, np.array([0, 0, 0])).tolist() == [0, 0]


def _chunk_eq(a: M.ChunkAlignment, b: M.ChunkAlignment) -> None:
    assert a.d0 == b.d0
    assert a.aligned.tolist() == b.aligned.tolist()
    assert sorted(a.mismatched_docs.tolist()) == sorted(b.mismatched_docs.tolist())
    assert a.doc_continued.tolist() == b.doc_continued.tolist()


@pytest.mark.parametrize("ref,long_token", [("o200k", False), ("llama3", False), ("gpt2", False),
                                            ("gpt2", True)])
def test_compiled_pass_equals_numpy_path(docs, ref, long_token):
    """The numba passes and the numpy path agree document by document, with
    misaligned documents (masked, and a wrong token length) and a wrong token byte; with a
    token of 300 bytes in the vocabulary the packed table keeps 16 length bits (48 hash
    bits) and still agrees."""
    assert M._kernel() is not None  # numba is a dependency: the compiled pass is in use
    ad = load_reference(ref)
    ad.vocab_identity = lambda: None  # its table is altered below: not from/to the disk cache
    surfaces, special = ad.table
    wrong = list(surfaces)
    the = ad.encode_batch([" the"]).ids.tolist()
    assert len(the) == 1
    wrong[the[0]] = b" thE"  # same length: aligned, but the round trip differs
    moz = ad.encode_batch([" Mozilla"]).ids.tolist()
    assert len(moz) == 1
    wrong[moz[0]] = b" Mozilla!"  # longer: documents that use it no longer align
    if long_token:
        wrong[50000] = b"=" * 300  # (a token the text never produces)
    ad.__dict__["table"] = (wrong, special)
    assert M.token_pass_tables(ad)[1] == (48 if long_token else 56)
    pool = M.build_pool(docs)
    enc = ad.encode_batch(pool.docs)
    mask = np.ones(pool.n_docs, dtype=bool)
    mask[1] = False
    for d0, d1 in ((0, pool.n_docs), (2, pool.n_docs)):
        sub = Encoded(ids=enc.ids[enc.offsets[d0]:enc.offsets[d1]],
                      offsets=enc.offsets[d0:d1 + 1] - enc.offsets[d0], seconds=0.0)
        freq = np.zeros(ad.vocab_size, dtype=np.int64)
        fast = M.align_chunk(pool, ad, sub, d0, mask[d0:d1], freq)
        slow = M._align_chunk_numpy(pool, ad, sub, d0, mask[d0:d1])
        _chunk_eq(fast, slow)
        assert freq.tolist() == np.bincount(sub.ids, minlength=ad.vocab_size).tolist()
    full = M.align_chunk(pool, ad, enc, 0, mask)
    assert not full.aligned[1] and 0 < full.aligned.sum() < pool.n_docs - 1
    assert len(full.mismatched_docs) > 0
    assert full.doc_continued.sum() > 0 and full.doc_continued[1] == 0


@pytest.mark.parametrize("parallel", [False, True])
def test_an_id_outside_the_token_table_raises(docs, parallel):
    """An id the tokenizer's table does not have (a broken encoder) is an IndexError from
    either pass, wherever it sits, not a silent wrong count."""
    ad = load_reference("gpt2")
    pool = M.build_pool(docs[:3])
    enc = ad.encode_batch(pool.docs)
    mask = np.ones(pool.n_docs, dtype=bool)
    mask[0] = False  # the bad id in a masked document: only the frequency pass sees it
    for at in (0, int(enc.offsets[1]) + 5, len(enc.ids) - 1):
        ids = enc.ids.copy()
        ids[at] = len(ad.token_bytes_len) + 7
        bad = Encoded(ids=ids, offsets=enc.offsets, seconds=0.0)
        freq = np.zeros(ad.vocab_size, dtype=np.int64)
        with pytest.raises(IndexError):
            M.align_chunk(pool, ad, bad, 0, mask, freq, parallel=parallel)
    good = M.align_chunk(pool, ad, enc, 0, mask, parallel=parallel)
    assert good.aligned[1:].all() and not good.aligned[0]


def test_renyi_efficiencies_equal_the_two_separate_calls():
    rng = np.random.default_rng(1)
    for c in (np.array([3, 2, 1, 1, 0, 0]), np.array([5]), np.array([0, 0]),
              rng.integers(0, 50, 1000), np.array([1, 0, 0, 0])):
        for v in (1, 2, len(c), 8):
            assert M.renyi_efficiencies(c, 2.5, v) == (M.renyi_efficiency(c, 2.5),
                                                      M.renyi_efficiency(c, 2.5, v))


def test_byte_level_surfaces_by_translate_equal_per_character_lookup():
    from tokenfoundry.tasks.evaluate.adapters import _BYTE_DECODER

    def lookup(s: str) -> bytes:
        try:
            return bytes(_BYTE_DECODER[c] for c in s)
        except KeyError:
            return s.encode("utf-8")

    ad = load_reference("gpt2")
    strings = [*ad.tok.get_vocab(with_added_tokens=True), "plain text", "日本", "\x00x", "ĀĠ"]
    assert [ad._surface(s) for s in strings] == [lookup(s) for s in strings]
    assert ad._surface("Ġhello") == b" hello" and ad._surface("plain text") == b"plain text"


def test_alignment_split_over_two_threads_equals_one_pass(docs, monkeypatch):
    from tokenfoundry.tasks.evaluate import core

    pool = M.build_pool(docs)
    ad = load_reference("llama3")
    one = measure(ad, pool, SPEC)
    monkeypatch.setattr(core, "SPLIT_TOKENS", 100)
    spec2 = SPEC.model_copy(update={"threads": 2})
    _same(measure(ad, pool, spec2), one)
    _same(measure(ad, pool, spec2, chunk_bytes=2000), one)


def test_token_counts_widen_to_int64_before_they_could_overflow(docs, monkeypatch):
    """Counts are int32 while fewer than 2**31 tokens were seen, then int64: forced here after
    the first chunk, the metrics are the same."""
    from tokenfoundry.tasks.evaluate import core

    pool = M.build_pool(docs)
    ad = load_reference("o200k")
    one = measure(ad, pool, SPEC)
    monkeypatch.setattr(core, "FREQ_INT32_LIMIT", 10)
    seen = []
    real = M.vocab_summary
    monkeypatch.setattr(M, "vocab_summary", lambda freq, *a: seen.append(freq.dtype) or
                        real(freq, *a))
    _same(measure(ad, pool, SPEC, chunk_bytes=2000), one)
    assert seen == [np.dtype(np.int64)]


@pytest.mark.parametrize("ref", ["o200k", "gpt2"])
def test_vocab_summary_compiled_equals_numpy_and_the_separate_formulas(docs, ref):
    """One pass over the vocabulary (numba) gives what the numpy path and the per-metric
    formulas give, on the frequencies of real text."""
    ad = load_reference(ref)
    enc = ad.encode_batch(docs)
    freq = np.bincount(enc.ids, minlength=ad.vocab_size).astype(np.int64)
    regular = ~ad.special_mask
    lengths = ad.token_bytes_len
    fast = M.vocab_summary(freq, regular, lengths, ad.byte_fallback_mask, 7)
    slow = M._vocab_summary_numpy(freq, regular, lengths, ad.byte_fallback_mask, 7)
    assert fast.total == slow.total == len(enc.ids)
    reg = freq[regular]
    assert fast.observed.tolist() == slow.observed.tolist() == reg[reg > 0].tolist()
    assert fast.length_counts.tolist() == slow.length_counts.tolist()
    assert fast.length_counts.tolist() == np.bincount(np.minimum(lengths, 16), weights=freq,
                                                      minlength=17).tolist()
    assert fast.length_sum == slow.length_sum
    never = np.flatnonzero(regular & (freq == 0))
    assert fast.never == slow.never == len(never) > 0
    assert fast.never_first.tolist() == slow.never_first.tolist() == never[:7].tolist()
    assert fast.byte_fallback == slow.byte_fallback == 0
    assert fast.token_length() == M.token_length_histogram(lengths, freq)
    assert M.renyi_efficiencies(fast.observed, 2.5, int(regular.sum())) == \
        M.renyi_efficiencies(freq[regular], 2.5, int(regular.sum()))


def test_count_per_doc_compiled_equals_numpy(docs):
    pool = M.build_pool(docs)
    rng = np.random.default_rng(3)
    flags = rng.random(len(pool.word_doc)) < 0.3
    got = M.count_per_doc(flags, pool.doc_word_start)
    want = np.bincount(pool.word_doc, weights=flags, minlength=pool.n_docs).astype(np.int64)
    assert got.tolist() == want.tolist()
    assert pool.doc_words[-3] == 0 and got[-3] == 0  # the empty document
    assert got.sum() == flags.sum() > 0


def test_flatten_and_gc_pause_keep_state():
    import gc

    from tokenfoundry.tasks.evaluate.adapters import _flatten, _no_gc

    ids, offsets = _flatten([[5, 70000], [], [1]])
    assert ids.dtype == np.uint32 and ids.tolist() == [5, 70000, 1]
    assert offsets.tolist() == [0, 2, 2, 3]
    assert _flatten([])[0].tolist() == [] and _flatten([])[1].tolist() == [0]
    it = iter([[3], [4, 5]])  # an iterator with known lengths: consumed once
    assert _flatten(it, np.array([1, 2]))[0].tolist() == [3, 4, 5]
    with pytest.raises(RuntimeError):
        _flatten([[1, 2]], np.array([1]))
    assert gc.isenabled()
    with _no_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _no_gc():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
