"""The registry on both backends (local directory and S3 through moto's server + s3fs): publish,
idempotency, aliases, verified pull, tamper and traversal refusals, bundles, garbage collection."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import fsspec
import pytest

from tokenfoundry.schemas.errors import BadInputError, CheckFailed
from tokenfoundry.storage.registry import Registry, load_tokenizer, pull
from tf_fixtures import registry as fx


fx.load(globals())


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _fs(uri: str):
    return fsspec.core.url_to_fs(uri)


# ---- publish, idempotency, aliases ---------------------------------------------------------


def test_publish_writes_manifest_with_checksums_lineage_and_latest(registry_uri, tokenizer_dir):
    reg = Registry(registry_uri)
    res = reg.publish("legal-bpe", tokenizer_dir, lineage={"corpus_snapshots": {"legal": "s1"},
                                                            "spec_hash": "abc"},
                      metrics={"bytes_per_token": 3.9}, gates=[{"expr": "x", "passed": True}])
    assert (res.version, res.reused, res.ref) == (1, False, "legal-bpe@1")
    assert res.aliases == {"latest": 1}
    m = reg.manifest("legal-bpe", 1)
    expected = {p.name: (p.stat().st_size, _sha(p)) for p in tokenizer_dir.iterdir()}
    assert {f.path: (f.size, f.sha256) for f in m.files} == expected
    assert m.total_bytes == sum(s for s, _ in expected.values())
    assert m.lineage["corpus_snapshots"] == {"legal": "s1"}
    assert m.lineage["code_version"].startswith("0.1.0")
    assert "tokenizers" in m.lineage["library_versions"]
    assert m.metrics == {"bytes_per_token": 3.9}
    # readable with fsspec alone, as the README's layout says
    fs, root = _fs(registry_uri)
    raw = json.loads(fs.cat_file(f"{root}/legal-bpe/1/manifest.json"))
    assert raw["format"] == "tokenfoundry-registry-manifest" and raw["version"] == 1
    assert fs.cat_file(f"{root}/legal-bpe/1/tokenizer.json") == \
        (tokenizer_dir / "tokenizer.json").read_bytes()


def test_republish_identical_is_reused_and_new_content_gets_next_version(
        registry_uri, tokenizer_dir, tokenizer_dir_b):
    reg = Registry(registry_uri)
    assert reg.publish("legal-bpe", tokenizer_dir).version == 1
    again = reg.publish("legal-bpe", tokenizer_dir)
    assert (again.version, again.reused) == (1, True)
    other = reg.publish("legal-bpe", tokenizer_dir_b)
    assert (other.version, other.reused) == (2, False)
    assert reg.versions("legal-bpe") == [1, 2]
    assert reg.resolve("legal-bpe") == ("legal-bpe", 2)
    # re-publishing old content returns the old version; latest does not move backwards
    assert reg.publish("legal-bpe", tokenizer_dir).version == 1
    assert reg.resolve("legal-bpe@latest") == ("legal-bpe", 2)
    # a publisher that read 'latest' before a concurrent one moved it cannot move it back
    assert reg._move_alias("legal-bpe", "latest", 1, "publish", forward_only=True) == (2, False)
    assert reg.resolve("legal-bpe") == ("legal-bpe", 2)


def test_promote_moves_only_the_alias_and_keeps_history(registry_uri, tokenizer_dir,
                                                        tokenizer_dir_b):
    reg = Registry(registry_uri)
    reg.publish("legal-bpe", tokenizer_dir)
    reg.publish("legal-bpe", tokenizer_dir_b)
    p1 = reg.promote("legal-bpe@1", "production")
    assert (p1.version, p1.previous, p1.changed) == (1, None, True)
    assert reg.resolve("legal-bpe@production") == ("legal-bpe", 1)
    p2 = reg.promote("legal-bpe@latest", "production")
    assert (p2.version, p2.previous) == (2, 1)
    assert reg.promote("legal-bpe@2", "production").changed is False
    hist = reg.alias_events("legal-bpe", "production")
    assert [(e.seq, e.version, e.previous, e.by) for e in hist] == [
        (1, 1, None, "promote"), (2, 2, 1, "promote")]
    show = reg.show("legal-bpe@production")
    assert show.version == 2 and show.aliases == ["latest", "production"]
    with pytest.raises(BadInputError, match="moved by publish only"):
        reg.promote("legal-bpe@1", "latest")
    with pytest.raises(BadInputError, match="no alias 'staging'"):
        reg.resolve("legal-bpe@staging")
    with pytest.raises(BadInputError, match=r"versions of legal-bpe: 1, 2"):
        reg.resolve("legal-bpe@9")


# ---- consumption ---------------------------------------------------------------------------


def test_pull_gives_an_autotokenizer_dir_and_load_tokenizer_encodes_the_same(
        registry_uri, tokenizer_dir, tmp_path, licence_dir):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    reg = Registry(registry_uri)
    reg.publish("legal-bpe", tokenizer_dir)
    reg.promote("legal-bpe@1", "production")
    d = pull("legal-bpe@production", to=tmp_path / "tok", registry=registry_uri)
    assert fx.tree_bytes(d) == {**fx.tree_bytes(tokenizer_dir),
                                "manifest.json": reg.manifest_bytes("legal-bpe", 1)}
    text = (licence_dir / "MIT").read_text() if (licence_dir / "MIT").exists() else \
        (licence_dir / "GPL-2").read_text()[:2000]
    want = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).encode(text).ids
    assert AutoTokenizer.from_pretrained(str(d))(text)["input_ids"] == want
    tok = load_tokenizer("legal-bpe@production", registry=registry_uri)
    assert isinstance(tok, Tokenizer) and tok.encode(text).ids == want
    # second pull of the same version comes from the cache, verified
    again = reg.pull("legal-bpe@1", tmp_path / "tok2")
    assert again.cached is True and fx.tree_bytes(Path(again.path)) == fx.tree_bytes(d)


def test_pull_refuses_a_non_empty_target(registry_uri, tokenizer_dir, tmp_path):
    reg = Registry(registry_uri)
    reg.publish("legal-bpe", tokenizer_dir)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="holds other files"):
        reg.pull("legal-bpe", target)
    assert (target / "notes.txt").read_text() == "mine"
    reg.pull("legal-bpe", target, force=True)
    assert not (target / "notes.txt").exists() and (target / "tokenizer.json").is_file()


def _tamper(uri: str, rel: str) -> None:
    fs, root = _fs(uri)
    path = f"{root}/{rel}"
    data = bytearray(fs.cat_file(path))
    data[len(data) // 2] ^= 0x01
    fs.pipe_file(path, bytes(data))


def test_tampered_byte_fails_verify_and_pull_naming_the_file(registry_uri, tokenizer_dir,
                                                              tmp_path):
    reg = Registry(registry_uri)
    reg.publish("legal-bpe", tokenizer_dir)
    assert reg.verify("legal-bpe@1").ok
    _tamper(registry_uri, "legal-bpe/1/tokenizer.json")
    v = reg.verify("legal-bpe@1")
    assert not v.ok and [p.path for p in v.problems] == ["tokenizer.json"]
    assert "sha256" in v.problems[0].problem
    with pytest.raises(CheckFailed, match=r"tokenizer\.json: sha256 mismatch"):
        reg.pull("legal-bpe@1", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p for p in os.listdir(tmp_path) if ".pull-" in p] == []
    with pytest.raises(CheckFailed, match="tokenizer.json"):
        reg.export_bundle("legal-bpe@1", tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


def _big_text_dir(out: Path, licence_dir: Path) -> Path:
    """A version with files of several 1 MiB copy chunks (real licence text, repeated with a
    counter so no chunk equals another) and one empty file."""
    out.mkdir()
    text = b"".join(p.read_bytes() for p in sorted(licence_dir.iterdir()) if p.is_file())
    big = b"".join(b"%d\n" % i + text for i in range(1 + (5 << 20) // len(text)))[:5_300_001]
    (out / "embeddings.bin").write_bytes(big)
    (out / "sub").mkdir()
    (out / "sub" / "middle.bin").write_bytes(big[: (1 << 20) + 7])
    (out / "empty.txt").write_bytes(b"")
    return out


def test_multi_chunk_files_round_trip_byte_identical(registry_uri, tmp_path, licence_dir):
    src = _big_text_dir(tmp_path / "src", licence_dir)
    reg = Registry(registry_uri)
    res = reg.publish("big", src)
    m = reg.manifest("big", res.version)
    assert {f.path: (f.size, f.sha256) for f in m.files} == {
        rel: (len(b), hashlib.sha256(b).hexdigest()) for rel, b in fx.tree_bytes(src).items()}
    out = Path(reg.pull(res.ref, tmp_path / "out", cache=False).path)
    got = fx.tree_bytes(out)
    assert got.pop("manifest.json") == reg.manifest_bytes("big", res.version)
    assert got == fx.tree_bytes(src)


@pytest.mark.parametrize("damage", ["grown", "truncated", "missing"])
def test_damaged_stored_file_fails_pull_naming_it_and_leaves_nothing(
        registry_uri, tmp_path, licence_dir, damage):
    src = _big_text_dir(tmp_path / "src", licence_dir)
    reg = Registry(registry_uri)
    res = reg.publish("big", src)
    fs, root = _fs(registry_uri)
    path = f"{root}/big/{res.version}/embeddings.bin"
    data = fs.cat_file(path)
    if damage == "missing":
        fs.rm(path)
    else:
        fs.pipe_file(path, data + b"x" * 3_000_000 if damage == "grown" else data[:-1000])
    want = {"grown": r"embeddings\.bin: size", "truncated": r"embeddings\.bin: size 5299001 != "
            r"5300001", "missing": r"embeddings\.bin: missing"}[damage]
    with pytest.raises(CheckFailed, match=want):
        reg.pull(res.ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p for p in os.listdir(tmp_path) if ".pull-" in p] == []


@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt",
                                 "..\\evil.txt", "C:/evil.txt", "./x"])
def test_crafted_manifest_paths_are_refused_on_pull(registry_uri, tokenizer_dir, tmp_path, bad):
    reg = Registry(registry_uri)
    reg.publish("legal-bpe", tokenizer_dir)
    fs, root = _fs(registry_uri)
    m = json.loads(reg.manifest_bytes("legal-bpe", 1))
    m["version"] = 2
    m["files"].append({"path": bad, "size": 4, "sha256": hashlib.sha256(b"evil").hexdigest()})
    fs.makedirs(f"{root}/legal-bpe/2", exist_ok=True)
    fs.pipe_file(f"{root}/legal-bpe/2/tokenizer.json",
                 (tokenizer_dir / "tokenizer.json").read_bytes())
    fs.pipe_file(f"{root}/legal-bpe/2/manifest.json", json.dumps(m).encode())
    before = set(os.listdir(tmp_path))
    with pytest.raises(CheckFailed, match="refused") as ei:
        reg.pull("legal-bpe@2", tmp_path / "out" / "inner")
    assert repr(bad)[1:-1] in str(ei.value) or bad in str(ei.value)
    with pytest.raises(CheckFailed):
        reg.verify("legal-bpe@2")
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()
    assert set(os.listdir(tmp_path)) - before <= {"out"}
    assert not (tmp_path / "out" / "inner").exists()


# ---- garbage collection ----------------------------------------------------------------------


def test_gc_removes_only_old_staging_unless_forced(registry_uri, tokenizer_dir):
    reg = Registry(registry_uri)
    reg.publish("legal-bpe", tokenizer_dir)
    fs, root = _fs(registry_uri)
    # what a crashed publish leaves: local staging dir / S3 claimed but uncommitted prefix
    if reg.local:
        stale = f"{root}/_staging/legal-bpe.deadbeef"
        os.makedirs(stale)
        Path(stale, "tokenizer.json").write_bytes(b"partial")
    else:
        stale = f"{root}/legal-bpe/2"
        fs.pipe_file(f"{root}/legal-bpe/_claims/2.json", b'{"version": 2, "claimed_ts": 1}')
        fs.pipe_file(f"{stale}/tokenizer.json", b"partial")
    assert reg.versions("legal-bpe") == [1]
    kept = reg.gc(grace_seconds=10 ** 12)
    assert kept.removed == [] and len(kept.kept) == 1
    done = reg.gc(force=True)
    assert [e.kind for e in done.removed] == ["staging" if reg.local else "uncommitted-version"]
    assert done.bytes_freed == len(b"partial")
    assert not fs.exists(stale)
    assert reg.verify("legal-bpe@1").ok and reg.versions("legal-bpe") == [1]


# ---- bundles ---------------------------------------------------------------------------------


def test_export_import_round_trip_keeps_version_and_bytes(make_registry_uri, tokenizer_dir,
                                                          tokenizer_dir_b, tmp_path):
    src, dst = Registry(make_registry_uri()), Registry(make_registry_uri())
    src.publish("legal-bpe", tokenizer_dir_b)
    src.publish("legal-bpe", tokenizer_dir)
    ex = src.export_bundle("legal-bpe@2", tmp_path / "legal-bpe-2.tar.gz")
    assert ex.sha256 == _sha(Path(ex.path))
    imp = dst.import_bundle(ex.path)
    assert (imp.version, imp.reused) == (2, False)
    assert dst.manifest_bytes("legal-bpe", 2) == src.manifest_bytes("legal-bpe", 2)
    assert dst.verify("legal-bpe@latest").ok
    assert dst.import_bundle(ex.path).reused is True
    # a registry where 2 is taken by other files: refused unless --as-new
    other = Registry(make_registry_uri())
    other.publish("legal-bpe", tokenizer_dir_b)
    other.publish("legal-bpe", {"tokenizer.json": tokenizer_dir_b / "tokenizer.json"})
    with pytest.raises(BadInputError, match="--as-new"):
        other.import_bundle(ex.path)
    new = other.import_bundle(ex.path, as_new=True)
    assert new.version == 3
    assert other.manifest("legal-bpe", 3).model_extra["imported_from"]["version"] == 2
    d = other.pull("legal-bpe@3", tmp_path / "pulled").path
    assert {k: v for k, v in fx.tree_bytes(Path(d)).items() if k != "manifest.json"} == \
        fx.tree_bytes(tokenizer_dir)
