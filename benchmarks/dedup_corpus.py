"""Real-text corpora for the dedup benchmark: a labelled near-duplicate set and a 1M-doc corpus.

Text comes only from this machine: licences (/usr/share/common-licenses), package copyright files
(/usr/share/doc/*/copyright), gettext catalogs (msgstr of /usr/share/locale/*/LC_MESSAGES/*.mo,
consecutive messages concatenated into paragraphs) and Python stdlib docstrings.

Labelled set (``labelled_set``): base documents are paragraphs that are pairwise dissimilar
(word 5-gram Jaccard < 0.3, candidates found with datasketch's MinHashLSH at 0.3 and checked
exactly), so every pair with Jaccard >= 0.3 lives inside one family. Derived documents apply
realistic edits (typos, word substitutions, insertions, deletions, dropped or repeated
sentences, truncation, a header or footer line, re-flowed lines and case) to their base until
the word 5-gram Jaccard reaches a target drawn uniformly from [0.3, 1.0); the exact Jaccard of
every pair inside a family is computed and stored. Exact copies are added too.

    python benchmarks/dedup_corpus.py --docs 10000 --out labelled.parquet   # inspect the set
"""

from __future__ import annotations

import argparse
import ast
import gettext
import glob
import itertools
import os
import random
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass

from tokenfoundry.tasks.dedup.minhash import jaccard, shingle_set

_SENT = re.compile(r"(?<=[.!?;:])\s+")


def _paragraphs(text: str, min_words: int) -> list[str]:
    out = []
    for p in re.split(r"\n\s*\n", text):
        p = p.strip()
        if len(p.split()) >= min_words:
            out.append(p)
    return out


def licence_paragraphs(min_words: int = 8) -> list[str]:
    out = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")) + \
            sorted(glob.glob("/usr/share/doc/*/copyright")):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                out += _paragraphs(fh.read(), min_words)
        except OSError:
            continue
    return out


def gettext_paragraphs(min_words: int = 8, per_paragraph: int = 6, max_files: int | None = None
                       ) -> list[str]:
    """msgstr of each catalog, ``per_paragraph`` consecutive messages joined into one paragraph."""
    out = []
    files = sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo"))
    for path in files[:max_files]:
        try:
            with open(path, "rb") as fh:
                cat = gettext.GNUTranslations(fh)._catalog  # noqa: SLF001 - the parsed catalog
        except Exception:  # noqa: BLE001 - a broken catalog: skip it
            continue
        msgs = [v for k, v in sorted(cat.items(), key=lambda kv: str(kv[0]))
                if k and isinstance(v, str) and v.strip()]
        for i in range(0, len(msgs), per_paragraph):
            p = " ".join(m.strip() for m in msgs[i:i + per_paragraph])
            if len(p.split()) >= min_words:
                out.append(p)
    return out


def docstring_paragraphs(min_words: int = 8) -> list[str]:
    out = []
    stdlib = sysconfig.get_paths()["stdlib"]
    for path in sorted(glob.glob(os.path.join(stdlib, "*.py")) +
                       glob.glob(os.path.join(stdlib, "*", "*.py"))):
        if "/test" in path or "site-packages" in path:
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read())
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    out += _paragraphs(doc, min_words)
    return out


def real_units(seed: int = 0, min_words: int = 8, max_mo_files: int | None = None) -> list[str]:
    """Distinct real paragraphs from all four sources, shuffled deterministically."""
    units = sorted(set(licence_paragraphs(min_words) + gettext_paragraphs(min_words, max_files=max_mo_files)
                       + docstring_paragraphs(min_words)))
    random.Random(seed).shuffle(units)
    return units


# ---- realistic edits --------------------------------------------------------------------------

HEADERS = ["Copyright (C) 2023 The Authors. All rights reserved.",
           "This file is part of the distribution; see the LICENSE file for details.",
           "-- forwarded message --", "Originally posted on the project wiki."]


def _typo(w: str, rng: random.Random) -> str:
    if len(w) < 3:
        return w + w[-1]
    i = rng.randrange(1, len(w) - 1)
    op = rng.randrange(3)
    if op == 0:
        return w[:i] + w[i + 1] + w[i] + w[i + 2:]  # swapped letters
    if op == 1:
        return w[:i] + w[i] + w[i:]  # doubled letter
    return w[:i] + w[i + 1:]  # dropped letter


def edit_once(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    """One realistic edit of a word list (returns a new list)."""
    w = list(words)
    if not w:
        return [rng.choice(vocab)]
    op = rng.random()
    i = rng.randrange(len(w))
    if op < 0.25:
        w[i] = _typo(w[i], rng)
    elif op < 0.45:
        w[i] = rng.choice(vocab)  # substituted word
    elif op < 0.60:
        w.insert(i, rng.choice(vocab))  # inserted word
    elif op < 0.75 and len(w) > 8:
        del w[i]  # dropped word
    elif op < 0.85 and len(w) > 20:
        k = rng.randrange(3, 10)  # dropped phrase/sentence fragment
        del w[i:i + k]
    elif op < 0.92 and len(w) > 20:
        k = rng.randrange(3, 8)  # repeated phrase
        w[i:i] = w[i:i + k]
    else:
        w = w[: max(5, len(w) - rng.randrange(2, 8))]  # truncated end
    return w


def derive(base: str, target: float, rng: random.Random, vocab: list[str], ngram: int = 5,
           max_steps: int = 400) -> tuple[str, float]:
    """Edit ``base`` until its word n-gram Jaccard to base is <= target; (text, exact Jaccard)."""
    bset = shingle_set(base, ngram)
    words = base.split()
    cur, j = words, 1.0
    for _ in range(max_steps):
        nxt = edit_once(cur, rng, vocab)
        jn = jaccard(bset, shingle_set(" ".join(nxt), ngram))
        if jn < target - 0.05 and j > target:  # overshoot: try another edit instead
            continue
        cur, j = nxt, jn
        if j <= target:
            break
    text = " ".join(cur)
    # surface changes that keep the shingles: line re-flow, case, a header/footer line
    r = rng.random()
    if r < 0.2:
        text = re.sub(r" ", "\n", text, count=max(1, len(cur) // 12))
    elif r < 0.3:
        text = text.upper()
    elif r < 0.4 and len(cur) > 60:
        text = rng.choice(HEADERS) + "\n" + text
    return text, jaccard(bset, shingle_set(text, ngram))


# ---- the labelled set ---------------------------------------------------------------------------


@dataclass
class LabelledSet:
    texts: list[str]
    family: list[int]  # base document index of every doc
    kind: list[str]  # "base", "exact", "near"
    target: list[float]  # target Jaccard of derived docs (1.0 for base/exact)
    pairs: dict[tuple[int, int], float]  # exact Jaccard of every pair inside a family

    def truth(self, threshold: float) -> set[tuple[int, int]]:
        return {p for p, j in self.pairs.items() if j >= threshold - 1e-12}


def distinct_bases(units: list[str], n: int, min_words: int = 30, max_words: int = 400,
                   max_jaccard: float = 0.3, seed: int = 0) -> list[str]:
    """n documents (1+ consecutive units joined to >= min_words) pairwise below max_jaccard."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=max_jaccard, num_perm=128)
    out: list[str] = []
    sets: list[set[int]] = []
    buf: list[str] = []
    for u in units:
        buf.append(u)
        doc = "\n\n".join(buf)
        nw = len(doc.split())
        if nw < min_words:
            continue
        buf = []
        if nw > max_words:
            doc = " ".join(doc.split()[:max_words])
        s = shingle_set(doc)
        m = MinHash(num_perm=128, seed=seed)
        m.update_batch([x.to_bytes(8, "little") for x in s])
        if any(jaccard(s, sets[k]) >= max_jaccard for k in lsh.query(m)):
            continue
        lsh.insert(len(out), m)
        out.append(doc)
        sets.append(s)
        if len(out) == n:
            break
    return out


def labelled_set(n_docs: int = 10_000, derived_fraction: float = 0.17,
                 exact_fraction: float = 0.04, seed: int = 0, ngram: int = 5,
                 units: list[str] | None = None) -> LabelledSet:
    rng = random.Random(seed)
    n_derived = int(round(n_docs * derived_fraction))
    n_exact = int(round(n_docs * exact_fraction))
    n_base = n_docs - n_derived - n_exact
    units = units if units is not None else real_units(seed)
    bases = distinct_bases(units, n_base, seed=seed)
    if len(bases) < n_base:
        raise SystemExit(f"only {len(bases)} distinct base documents on this machine; "
                         f"ask for fewer than {n_docs} documents")
    vocab = sorted({w for b in bases[:2000] for w in b.split() if w.isalpha()})
    texts, family, kind, target = list(bases), list(range(n_base)), ["base"] * n_base, [1.0] * n_base
    # families: most derived docs have their own base; some bases get 2-3 derived docs
    parents = [rng.randrange(n_base) for _ in range(n_derived)]
    for p in parents:
        t = rng.uniform(0.3, 1.0)
        text, _ = derive(bases[p], t, rng, vocab, ngram)
        texts.append(text), family.append(p), kind.append("near"), target.append(round(t, 4))
    for _ in range(n_exact):
        p = rng.randrange(n_base)
        texts.append(bases[p]), family.append(p), kind.append("exact"), target.append(1.0)
    members: dict[int, list[int]] = {}
    for i, f in enumerate(family):
        members.setdefault(f, []).append(i)
    sets = [shingle_set(t, ngram) for t in texts]
    pairs = {}
    for ms in members.values():
        for a, b in itertools.combinations(sorted(ms), 2):
            pairs[(a, b)] = jaccard(sets[a], sets[b])
    return LabelledSet(texts, family, kind, target, pairs)


# ---- the 1M-document corpus ----------------------------------------------------------------------


def scale_docs(n: int, units: list[str], seed: int = 0, dup_exact: float = 0.1,
               dup_near: float = 0.1) -> Iterator[str]:
    """n documents: 1-3 random real paragraphs each; a share are exact or lightly edited copies
    of an earlier document of the stream (the duplicates a crawl or a mirror brings)."""
    rng = random.Random(seed)
    vocab = sorted({w for u in units[:5000] for w in u.split() if w.isalpha()})
    recent: list[str] = []
    for i in range(n):
        r = rng.random()
        if recent and r < dup_exact:
            doc = rng.choice(recent)
        elif recent and r < dup_exact + dup_near:
            w = rng.choice(recent).split()
            for _ in range(1 + len(w) // 60):
                w = edit_once(w, rng, vocab)
            doc = " ".join(w)
        else:
            doc = "\n\n".join(rng.choice(units) for _ in range(rng.randint(1, 3)))
        if len(recent) < 50_000:
            recent.append(doc)
        else:
            recent[rng.randrange(50_000)] = doc
        yield doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the set as Parquet (text, family, kind, target)")
    args = ap.parse_args()
    ls = labelled_set(args.docs, seed=args.seed)
    kinds = {k: ls.kind.count(k) for k in ("base", "near", "exact")}
    print(f"{len(ls.texts)} docs: {kinds}; family pairs {len(ls.pairs)}; "
          f"pairs with J >= 0.8: {len(ls.truth(0.8))}")
    if args.out:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": ls.texts, "family": ls.family, "kind": ls.kind,
                                 "target": ls.target}), args.out)


if __name__ == "__main__":
    main()
