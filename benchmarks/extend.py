"""Vocabulary extension benchmark: SmolLM2 + N merge-aware tokens, every init, zero-shot bits/byte.

Per language: learn N merges on the extension corpus (the stage's own learn_merges), then for
each init method (any METHODS entry) initialise the new rows, resize SmolLM2 and score held-out
running text with the same bits-per-byte code as ``tokenfoundry evaluate --model``. The base
model is scored on exactly the same byte segments.

Data (all installed on this machine; none reserved):
- uk: extension corpus = gettext catalogs /usr/share/locale/uk/LC_MESSAGES/*.mo + LibreOffice
  UI catalogs (libreoffice-l10n-uk); held-out = two disjoint slices of running text: the
  Double Commander help (doublecmd-help-uk) and the Ubuntu packaging guide
  (ubuntu-packaging-guide-html-uk). Filter: script (non-ASCII merges only).
- de: extension corpus = gettext catalogs /usr/share/locale/de/LC_MESSAGES/*.mo; held-out =
  two disjoint slices of debian-reference-de (first and second half of the book). Filter: none.
Held-out paragraphs (and paragraphs containing a sentence) that occur in the extension corpus
are removed.

    python benchmarks/extend.py                          # uk + de, baselines, +4000, 30 KB slices
    python benchmarks/extend.py --lang uk --methods fvt,focus --slice-bytes 40000 --json out.json
"""

from __future__ import annotations

import argparse
import gettext
import glob
import gzip
import html.parser
import json
import re
import sys
import tempfile
import time
from pathlib import Path

BASELINES = ["random", "mean", "univariate", "multivariate", "fvt"]


def catalog_messages(patterns: list[str]) -> list[str]:
    out = []
    for pat in patterns:
        for f in sorted(glob.glob(pat)):
            with open(f, "rb") as fh:
                try:
                    cat = gettext.GNUTranslations(fh)._catalog  # noqa: SLF001 - stdlib's table
                except Exception:  # noqa: BLE001 - a broken catalog is skipped (and counted)
                    print(f"skipped unreadable catalog {f}", file=sys.stderr)
                    continue
            out += [v.strip() for k, v in sorted(cat.items(), key=lambda kv: str(kv[0]))
                    if isinstance(v, str) and k and v.strip()]
    return out


class _Text(html.parser.HTMLParser):
    BLOCK = {"p", "div", "li", "h1", "h2", "h3", "h4", "br", "tr", "pre", "dd", "dt", "td",
             "table", "ul", "ol"}

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style")
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_paragraphs(pattern: str) -> list[str]:
    out = []
    for f in sorted(glob.glob(pattern)):
        p = _Text()
        p.feed(Path(f).read_text(encoding="utf-8", errors="replace"))
        out += [" ".join(x.split()) for x in re.split(r"\n\s*\n", "".join(p.parts))]
    return out


def text_paragraphs(path: str) -> list[str]:
    raw = gzip.open(path, "rt", encoding="utf-8").read()
    return [" ".join(x.split()) for x in re.split(r"\n\s*\n", raw)]


def letters_share(p: str, lo: str, hi: str) -> float:
    return sum(lo <= c <= hi for c in p) / max(len(p), 1)


def dedup_against(paras: list[str], corpus: list[str]) -> tuple[list[str], int]:
    """Drop paragraphs that occur in the corpus, or contain a corpus message of >= 40 chars."""
    norm = {" ".join(m.split()) for m in corpus}
    long_msgs = {m for m in norm if len(m) >= 40}
    kept, dropped = [], 0
    for p in paras:
        sentences = re.split(r"(?<=[.!?:])\s+", p)
        if p in norm or any(s in long_msgs for s in sentences):
            dropped += 1
            continue
        kept.append(p)
    return kept, dropped


def take(paras: list[str], n_bytes: int) -> list[str]:
    out, size = [], 0
    for p in paras:
        if size >= n_bytes:
            break
        out.append(p)
        size += len(p.encode("utf-8"))
    return out


def language_data(lang: str, slice_bytes: int) -> dict:
    if lang == "uk":
        corpus = catalog_messages(["/usr/share/locale/uk/LC_MESSAGES/*.mo",
                                   "/usr/lib/libreoffice/program/resource/uk/LC_MESSAGES/*.mo"])
        raw = {"doublecmd-help": html_paragraphs("/usr/share/doublecmd/doc/uk/*.html"),
               "packaging-guide": html_paragraphs(
                   "/usr/share/doc/ubuntu-packaging-guide-html-uk/*.html")}
        keep = {k: [p for p in v if len(p) >= 40 and letters_share(p, "\u0400", "\u04ff") > 0.3]
                for k, v in raw.items()}
        filt = "script"
    elif lang == "de":
        corpus = catalog_messages(["/usr/share/locale/de/LC_MESSAGES/*.mo"])
        paras = text_paragraphs("/usr/share/debian-reference/debian-reference.de.txt.gz")
        prose = [p for p in paras if 120 <= len(p) <= 3000 and letters_share(p, "a", "z") > 0.6
                 and letters_share(p, "0", "9") < 0.03 and re.search(r"\b(und|die|der|ist)\b", p)]
        half = len(prose) // 2
        keep = {"debian-reference-1": prose[:half], "debian-reference-2": prose[half:]}
        filt = "none"
    else:
        raise SystemExit(f"--lang {lang}: choose uk or de")
    slices, dropped = {}, {}
    for k, v in keep.items():
        kept, dropped[k] = dedup_against(v, corpus)
        slices[k] = take(kept, slice_bytes)
        size = sum(len(p.encode()) for p in slices[k])
        if size < min(slice_bytes, 30_000):
            print(f"warning: {lang}/{k}: only {size} bytes of held-out text", file=sys.stderr)
    return {"corpus": corpus, "slices": slices, "dropped": dropped, "filter": filt}


def run(lang: str, methods: list[str], new_tokens: int, slice_bytes: int,
        max_bytes: int) -> dict:
    import torch

    from tokenfoundry.tasks.evaluate.bits_per_byte import score, segments
    from tokenfoundry.tasks.extend.base import check_bpe_tokenizer, resolve_base
    from tokenfoundry.tasks.extend.core import base_arrays, model_from, resize
    from tokenfoundry.tasks.extend.init import InitContext, initialise
    from tokenfoundry.tasks.extend.merges import learn_merges
    from tokenizers import Tokenizer

    torch.manual_seed(0)
    data = language_data(lang, slice_bytes)
    base = resolve_base("smollm2")
    base_json = check_bpe_tokenizer(base.path / "tokenizer.json", "smollm2")
    corpus = data["corpus"]
    corpus_bytes = sum(len(t.encode()) for t in corpus)
    t0 = time.perf_counter()
    ext = learn_merges(base_json, corpus, new_tokens, filter=data["filter"])
    merge_s = time.perf_counter() - t0
    print(f"[{lang}] corpus {len(corpus)} messages, {corpus_bytes / 1e6:.2f} MB; "
          f"+{len(ext.new_tokens)} merges in {merge_s:.1f} s", file=sys.stderr)
    old_tok = Tokenizer.from_str(json.dumps(base_json))
    new_tok = Tokenizer.from_str(json.dumps(ext.data))
    segs = {k: segments(v, max_bytes) for k, v in data["slices"].items()}
    rows: list[dict] = []
    base_model = model_from(base.path)
    for k, sg in segs.items():
        s = score(base_model, old_tok, sg, name="base")
        rows.append({"lang": lang, "slice": k, "method": "base", **_row(s), "init_seconds": 0.0})
        print(f"[{lang}] {k} base: {s.bits_per_byte:.4f} bits/byte, {s.tokens} tokens, "
              f"{s.bytes} bytes ({s.seconds:.0f} s)", file=sys.stderr)
    E, E_out, tied, old_tokens, old_bytes = base_arrays(base_model, base_json, ext.n_old,
                                                        "smollm2")
    del base_model
    tmp = Path(tempfile.mkdtemp(prefix="bench-extend-"))
    (tmp / "tokenizer.json").write_text(json.dumps(ext.data), encoding="utf-8")
    for method in methods:
        ctx = InitContext(embeddings=E, output_embeddings=E_out, old_tokens=old_tokens,
                          old_token_bytes=old_bytes, new_tokens=ext.new_tokens,
                          new_token_bytes=ext.new_token_bytes, leaves=ext.leaves,
                          target_texts=lambda: iter(corpus), tokenizer_path=tmp / "tokenizer.json",
                          base_tokenizer_path=base.path / "tokenizer.json", init_std=0.02, seed=0)
        t = time.perf_counter()
        result = initialise(method, ctx)
        init_s = time.perf_counter() - t
        model = resize(model_from(base.path), result.rows, result.output_rows, E, E_out, tied)
        for k, sg in segs.items():
            s = score(model, new_tok, sg, name=method)
            rows.append({"lang": lang, "slice": k, "method": method, **_row(s),
                         "init_seconds": init_s, "fallbacks": result.fallbacks})
            print(f"[{lang}] {k} {method}: {s.bits_per_byte:.4f} bits/byte, {s.tokens} tokens "
                  f"(init {init_s:.1f} s, score {s.seconds:.0f} s)", file=sys.stderr)
        del model
    base_by_slice = {r["slice"]: r for r in rows if r["method"] == "base"}
    for r in rows:
        b = base_by_slice[r["slice"]]
        r["bpb_vs_base"] = r["bits_per_byte"] / b["bits_per_byte"]
        r["token_reduction"] = 1 - r["tokens"] / b["tokens"]
    return {"lang": lang, "new_tokens": len(ext.new_tokens), "filter": data["filter"],
            "corpus_messages": len(corpus), "corpus_bytes": corpus_bytes,
            "merge_seconds": merge_s, "heldout_dropped_as_duplicates": data["dropped"],
            "rows": rows}


def _row(s) -> dict:
    return {"bits_per_byte": s.bits_per_byte, "tokens": s.tokens, "bytes": s.bytes,
            "bytes_per_token": s.bytes_per_token, "score_seconds": s.seconds}


def markdown(results: list[dict]) -> str:
    lines = ["| lang | slice | method | bytes | tokens | bytes/token | bits/byte | vs base | "
             "fewer tokens | init s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            lines.append(f"| {r['lang']} | {r['slice']} | {r['method']} | {r['bytes']} | "
                         f"{r['tokens']} | {r['bytes_per_token']:.3f} | "
                         f"{r['bits_per_byte']:.4f} | {r['bpb_vs_base']:.3f} | "
                         f"{100 * r['token_reduction']:.1f} % | {r['init_seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lang", default="uk,de")
    ap.add_argument("--methods", default=",".join(BASELINES),
                    help="comma-separated METHODS entries, or 'all'")
    ap.add_argument("--new-tokens", type=int, default=4000)
    ap.add_argument("--slice-bytes", type=int, default=32_000)
    ap.add_argument("--max-bytes", type=int, default=1024, help="bits/byte segment cap")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    from tokenfoundry.tasks.extend.init import METHODS

    methods = list(METHODS) if a.methods == "all" else a.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {list(METHODS)}")
    results = []
    for lang in a.lang.split(","):
        results.append(run(lang, methods, a.new_tokens, a.slice_bytes, a.max_bytes))
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(markdown(results))


if __name__ == "__main__":
    main()
