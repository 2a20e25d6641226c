"""Metric values on small real text, checked against values computed by hand / independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tokenfoundry.schemas.evaluate import EvaluateSpec
from tokenfoundry.tasks.evaluate import metrics as M
from tokenfoundry.tasks.evaluate.adapters import load_reference, load_tokenizer
from tokenfoundry.tasks.evaluate.core import measure
from tf_fixtures import evaluate as FX


SPEC = EvaluateSpec(tokenizers=["gpt2"], texts=["unused"], references=[])


@pytest.fixture(scope="module")
def licences():
    texts = FX.licence_texts()
    if len(texts) < 3:
        pytest.skip("needs /usr/share/common-licenses")
    return texts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    return {"bpe": FX.train_bytelevel_bpe(d / "bpe" / "tokenizer.json"),
            "bpe_nfc": FX.train_bytelevel_bpe(d / "nfc" / "tokenizer.json", nfc=True),
            "wordpiece": FX.train_wordpiece(d / "wp" / "tokenizer.json"),
            "spm": FX.train_spm(d / "spm" / "tok.model")}


def test_words_split_on_spaces_and_per_character_in_cjk_and_thai():
    pool = M.build_pool(["Hello, world! 日本語です", "ที่นี่ नमस्ते under_score 3.14"])
    joined = "\n".join(pool.docs)
    words = [joined[s:e] for s, e in zip(pool.word_char_start, pool.word_char_end)]
    # Thai syllables keep their combining marks; Devanagari matras stay inside the word.
    assert words == ["Hello", "world", "日", "本", "語", "で", "す", "ที่", "นี่", "नमस्ते",
                     "under_score", "3", "14"]
    assert pool.doc_words.tolist() == [7, 6]
    assert pool.doc_bytes.tolist() == [len(d.encode()) for d in pool.docs]
    # word byte spans point at the same words in the UTF-8 buffer
    b = "\n".join(pool.docs).encode("utf-8")
    assert [b[s:e].decode() for s, e in zip(pool.word_byte_start, pool.word_byte_end)] == words


def test_renyi_efficiency_on_toy_distribution():
    # counts 3,2,1,1: p = (3,2,1,1)/7; H_2.5 = log2(Σp^2.5)/(1-2.5); |V| = 4 observed types
    p = np.array([3, 2, 1, 1]) / 7
    h = math.log2((p ** 2.5).sum()) / (1 - 2.5)
    assert M.renyi_efficiency(np.array([3, 2, 1, 1, 0, 0]), 2.5) == pytest.approx(h / 2)
    assert M.renyi_efficiency(np.array([3, 2, 1, 1]), 2.5) == pytest.approx(0.826506483, abs=1e-8)
    # full vocabulary |V| = 8 instead of the observed 4
    assert M.renyi_efficiency(np.array([3, 2, 1, 1]), 2.5, 8) == pytest.approx(h / 3)
    # uniform distribution is perfectly efficient; alpha = 1 is Shannon
    assert M.renyi_efficiency(np.array([5, 5, 5, 5]), 2.5) == pytest.approx(1.0)
    assert M.renyi_entropy(np.array([1, 1]), 1.0) == pytest.approx(1.0)


def test_bytes_per_token_and_fertility_match_direct_counts(licences):
    import quicktok

    enc = quicktok.get_encoding("cl100k_base")
    docs = licences[:3]
    n_tok = sum(len(enc.encode(d)) for d in docs)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    import re

    n_words = sum(len(re.findall(r"[^\W]+", d)) for d in docs)  # ASCII licences: \w runs
    pool = M.build_pool(docs)
    r = measure(load_reference("cl100k"), pool, SPEC)
    assert r.n_tokens == n_tok
    assert r.bytes_per_token == pytest.approx(n_bytes / n_tok)
    assert r.chars_per_token == pytest.approx(sum(map(len, docs)) / n_tok)
    assert r.fertility == pytest.approx(n_tok / n_words)
    assert r.roundtrip_errors == 0
    assert r.unk_rate == 0 and r.byte_fallback_rate == 0


def test_known_string_bytes_per_token():
    pool = M.build_pool(["Hello, world!"])  # GPT-2: Hello , Ġworld !  -> 13 bytes / 4 tokens
    r = measure(load_reference("gpt2"), pool, SPEC)
    assert r.n_tokens == 4
    assert r.bytes_per_token == pytest.approx(13 / 4)
    assert r.fertility == pytest.approx(4 / 2)
    assert r.continued_word_rate == 0.0


def test_continued_words_from_byte_offsets_equal_a_word_by_word_check(licences, trained):
    """Continued words from token byte offsets searched into word spans equal a direct check
    of every word against token starts summed from each token's own bytes, and see boundaries
    inside a character (a CJK character split into byte tokens is a split word), which HF's
    character offsets cannot show."""
    from tokenfoundry.tasks.evaluate.core import continued_per_doc

    docs = licences[:2] + ["Ünïcödé façade naïve 日本語 text"]
    pool = M.build_pool(docs)
    ad = load_tokenizer(str(trained["bpe"]))
    enc = ad.encode_batch(pool.docs, offsets=True)
    by_bytes = np.array(FX.continued_word_flags(pool, ad, enc))
    per_doc = np.bincount(pool.word_doc, weights=by_bytes, minlength=pool.n_docs).astype(int)
    exact = ad.byte_exact(pool.docs)
    assert exact.all()
    cont, known, _ = continued_per_doc(ad, pool, enc, exact)
    assert known.all() and cont.tolist() == per_doc.tolist()
    by_chars, _, _ = continued_per_doc(ad, pool, enc, np.zeros(pool.n_docs, dtype=bool))
    joined = "\n".join(docs)
    words = [joined[s:e] for s, e in zip(pool.word_char_start, pool.word_char_end)]
    # the 600-token vocabulary has no CJK: each of 日 本 語 is 3 byte tokens
    assert by_chars[:2].tolist() == cont[:2].tolist() and by_chars[2] == cont[2] - 3
    assert by_bytes[words.index("日")]
    r = measure(ad, pool, SPEC)
    assert 0.0 < r.continued_word_rate < 1.0
    assert r.continued_word_rate == pytest.approx(by_bytes.mean())


def test_roundtrip_zero_for_byte_level_and_errors_for_wordpiece_unk(trained):
    docs = ["Licence terms: ünïcode, 日本語, emoji 🙂 and\ttabs  double  spaces."]
    pool = M.build_pool(docs)
    for key in ("bpe", "bpe_nfc"):
        r = measure(load_tokenizer(str(trained[key])), pool, SPEC)
        assert r.roundtrip_errors == 0, key
        assert r.unk_rate == 0
    wp = load_tokenizer(str(trained["wordpiece"]))
    r = measure(wp, pool, SPEC)
    assert r.roundtrip_errors == 1  # CJK/emoji become [UNK] (its whitespace rule is no error)
    ids = wp.encode_batch(docs).ids
    assert r.unk_rate == pytest.approx(float((ids == wp.unk_id).sum()) / len(ids))
    assert r.unk_rate > 0


def test_byte_fallback_rate_counts_byte_pieces(trained):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(trained["spm"]))
    text = "The licence 許可証 applies."
    ids = sp.encode(text)
    expected = sum(sp.is_byte(i) for i in ids) / len(ids)
    assert expected > 0
    r = measure(load_tokenizer(str(trained["spm"])), M.build_pool([text]), SPEC)
    assert r.byte_fallback_rate == pytest.approx(expected)
    assert r.roundtrip_errors == 0  # byte fallback is lossless after nmt_nfkc


def test_vocab_utilization_never_produced_and_token_lengths(trained):
    ad = load_tokenizer(str(trained["bpe"]))
    text = "the the the license"
    pool = M.build_pool([text])
    r = measure(ad, pool, SPEC)
    ids = ad.encode_batch([text]).ids
    regular = int((~ad.special_mask).sum())
    assert r.vocab_utilization == pytest.approx(len(set(ids.tolist())) / regular)
    assert r.never_produced_tokens == regular - len(set(ids.tolist()))
    assert len(r.never_produced_examples) == SPEC.max_listed_tokens
    lens = [len(ad.surfaces[i]) for i in ids.tolist()]
    assert r.mean_token_bytes == pytest.approx(sum(lens) / len(lens))
    assert sum(r.token_length.histogram.values()) == pytest.approx(1.0)


def test_unreachable_tokens_found_for_tokens_an_nfc_normaliser_cannot_produce(tmp_path):
    """A token spelled in decomposed form (NFD) is unreachable behind an NFC normaliser."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    from tokenfoundry.tasks.evaluate.adapters import bytes_to_unicode

    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    nfd = "e\u0301"  # é decomposed
    vocab[b2u[0xCC] + b2u[0x81]] = 256
    vocab["".join(b2u[b] for b in nfd.encode())] = 257
    merges = [(b2u[0xCC], b2u[0x81]), (b2u[0x65], b2u[0xCC] + b2u[0x81])]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.normalizer = normalizers.NFC()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    ad = load_tokenizer(str(path))
    bad, partial = ad.unreachable
    assert 257 in bad and ad.token_repr(257) == "e\u0301"
    assert partial == 128  # bytes 0x80-0xFF are not text on their own


def test_premium_and_parity_on_tiny_parallel_set():
    import quicktok

    from tokenfoundry.tasks.evaluate.parallel import parity_summary, token_premium

    segs = {"s1": {"en": "Open file", "de": "Datei öffnen", "fr": "Ouvrir le fichier"},
            "s2": {"en": "Save as…", "de": "Speichern unter …", "fr": "Enregistrer sous…"},
            "s3": {"en": "Quit", "de": "Beenden"}}
    enc = quicktok.get_encoding("cl100k_base")
    seg, lang, text = zip(*[(s, lg, t) for s, d in segs.items() for lg, t in d.items()])
    counts = np.array([len(enc.encode(t)) for t in text])
    premium, used, dropped = token_premium(list(seg), list(lang), counts, np.zeros(len(text)))
    n = {(s, lg): len(enc.encode(t)) for s, lg, t in zip(seg, lang, text)}
    de = (n["s1", "de"] + n["s2", "de"] + n["s3", "de"]) / (n["s1", "en"] + n["s2", "en"]
                                                            + n["s3", "en"])
    fr = (n["s1", "fr"] + n["s2", "fr"]) / (n["s1", "en"] + n["s2", "en"])  # s3 has no fr
    assert premium == pytest.approx({"de": de, "en": 1.0, "fr": fr})
    assert used == {"de": 3, "en": 3, "fr": 2}
    # a duplicated (segment, language) row is ignored
    dup, = [k for k, (s_, lg) in enumerate(zip(seg, lang)) if (s_, lg) == ("s1", "en")]
    premium_d, _, _ = token_premium(list(seg) + ["s1"], list(lang) + ["en"],
                                    np.append(counts, 99), np.zeros(len(text) + 1))
    assert premium_d == pytest.approx(premium) and dup >= 0
    summary = parity_summary(premium)
    assert summary["parity"] == pytest.approx(max(de, fr, 1.0) / min(de, fr, 1.0))
    assert summary["premium_std"] == pytest.approx(np.std([de, 1.0, fr]))
    # a pair with > 10% UNK characters on one side is dropped for every language's sum
    unk = np.array([0.5 if (s, lg) == ("s1", "de") else 0.0 for s, lg in zip(seg, lang)])
    premium2, used2, dropped2 = token_premium(list(seg), list(lang), counts, unk)
    assert dropped2 == {"de": 1}
    assert premium2["de"] == pytest.approx((n["s2", "de"] + n["s3", "de"]) /
                                           (n["s2", "en"] + n["s3", "en"]))


def test_empty_documents_anywhere(trained):
    docs = ["", "The licence.", "", "日本語", ""]
    pool = M.build_pool(docs)
    for ad in (load_reference("o200k"), load_tokenizer(str(trained["wordpiece"])),
               load_tokenizer(str(trained["spm"]))):
        r = measure(ad, pool, SPEC)
        assert r.n_tokens == int(ad.encode_batch(docs).counts.sum())
        assert r.doc_tokens[0] == 0 and r.doc_tokens[-1] == 0


def test_parallel_pairs_with_unk_characters_are_dropped(trained):
    """Petrov et al.: pairs with > 10% UNK characters on either side are left out."""
    from tokenfoundry.tasks.evaluate.core import measure_parallel

    wp = load_tokenizer(str(trained["wordpiece"]))
    seg = ["1", "1", "1", "2", "2", "2"]
    lang = ["en", "de", "ja", "en", "de", "ja"]
    text = ["Open the file", "Die Datei laden", "ファイルを開く",
            "Copy the software", "Die Software kopieren", "ソフトウェアをコピー"]
    r = measure_parallel(wp, (seg, lang, text), SPEC)
    assert r["parallel_pairs_dropped_unk"] == {"ja": 2}
    assert "ja" not in r["premium"] and r["parallel_pairs_used"]["de"] == 2
    counts = wp.encode_batch(text).counts
    # "öffnen" would be one [UNK] for this English-only WordPiece (6 of 16 characters): dropped
    r2 = measure_parallel(wp, (seg, lang, text[:1] + ["Die Datei öffnen"] + text[2:]), SPEC)
    assert r2["parallel_pairs_dropped_unk"] == {"de": 1, "ja": 2}
    assert r["premium"]["de"] == pytest.approx((counts[1] + counts[4]) / (counts[0] + counts[3]))


def test_roundtrip_respects_each_tokenizers_own_normalisation():
    """Qwen NFC-normalises: decoding gives NFC text, which is not a round-trip error; the
    byte-level references without a normaliser give the NFD bytes back exactly."""
    import unicodedata

    docs = ["Cafe\u0301 and re\u0301sume\u0301", "plain text"]
    pool = M.build_pool(docs)
    qwen = load_reference("qwen3")
    assert qwen.byte_exact(docs).tolist() == [False, True]
    assert qwen.expected(docs[0]) == unicodedata.normalize("NFC", docs[0])
    for ad in (qwen, load_reference("o200k"), load_reference("llama3")):
        assert measure(ad, pool, SPEC).roundtrip_errors == 0, ad.name


def test_round_trip_is_the_exact_decode():
    """A decoder that gives back one wrong byte is a round-trip error in exactly the documents
    that contain the token (the decode is compared, nothing is inferred from token lengths)."""
    ad = load_reference("gpt2")
    hello = ad.encode_batch(["Hello"]).ids.tolist()
    assert hello == [15496]
    real = ad.decode_batch
    ad.decode_batch = lambda ids: [t.replace("Hello", "Jello") for t in real(ids)]
    docs = ["Say Hello, world", "nothing to see", "Hello again"]
    r = measure(ad, M.build_pool(docs), SPEC)
    assert r.roundtrip_errors == 2 and r.roundtrip_examples[1].startswith("text doc 2")
