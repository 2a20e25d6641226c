"""The registry against hostile input and leftovers (issue 15, points 1-5 and 13): a bundle's
manifest is validated field by field and its content identity recomputed; stored content
records are not trusted blindly; size caps; symlinks inside a stored version; claims of killed
publishers; a publish killed after its commit; simultaneous identical publishes; a full disk."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import fsspec
import pytest

from tokenfoundry.schemas.errors import BadInputError, CheckFailed
from tokenfoundry.storage.registry import ENV_BARRIER, ENV_PAUSE, Registry
from tf_fixtures import registry as fx


fx.load(globals())


def _files(tokenizer_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(tokenizer_dir.iterdir())}


def _tree(root: Path) -> list[str]:
    return sorted(p.as_posix() for p in root.rglob("*"))


# ---- 1 + 2: every manifest field is checked before anything is written ----------------------


@pytest.mark.parametrize("field,value", [
    ("name", "../../escaped"), ("name", "<absolute>"), ("name", "a/b"), ("name", ""),
    ("version", 0), ("version", -3), ("version", 10**12), ("version", "2"), ("version", True),
    ("content_sha256", "../../../settings"), ("content_sha256", "ab" * 31),
    ("total_bytes", -1), ("files", "tokenizer.json"),
])
def test_import_refuses_a_bad_manifest_field_naming_it_and_writes_nothing(
        tmp_path, tokenizer_dir, field, value):
    files = _files(tokenizer_dir)
    manifest = fx.manifest_for(files)
    manifest[field] = str(tmp_path / "outside") if value == "<absolute>" else value
    bundle = fx.tar_bundle(tmp_path / "in" / "b.tar.gz", manifest, files)
    reg_dir = tmp_path / "deep" / "er" / "reg"
    before = _tree(tmp_path)
    with pytest.raises(CheckFailed, match=f"'{field}'"):
        Registry(reg_dir).import_bundle(bundle)
    assert _tree(tmp_path) == before  # (the absolute name points inside tmp_path too)


def test_import_refuses_a_bundle_whose_content_identity_is_forged(tmp_path, tokenizer_dir,
                                                                  tokenizer_dir_b):
    """The attacker's files under the content identity of the team's genuine files: refused, so
    the genuine publish later makes a new version instead of returning the attacker's."""
    genuine, evil = _files(tokenizer_dir), _files(tokenizer_dir_b)
    manifest = fx.manifest_for(evil)
    manifest["content_sha256"] = fx.manifest_for(genuine)["content_sha256"]
    bundle = fx.tar_bundle(tmp_path / "evil.tar.gz", manifest, evil)
    reg = Registry(tmp_path / "reg")
    with pytest.raises(CheckFailed, match="'content_sha256' does not match its files"):
        reg.import_bundle(bundle)
    res = reg.publish("legal-bpe", tokenizer_dir)
    assert (res.version, res.reused) == (1, False)


def test_a_stored_forged_version_is_not_reused_and_fails_verify(tmp_path, tokenizer_dir,
                                                                tokenizer_dir_b):
    """A version planted in the store (manifest claiming the genuine identity over other
    files) with a content record pointing at it: publish does not trust it, verify refuses."""
    root = tmp_path / "reg"
    evil = _files(tokenizer_dir_b)
    manifest = fx.manifest_for(evil)
    fp = fx.manifest_for(_files(tokenizer_dir))["content_sha256"]
    manifest["content_sha256"] = fp
    (root / "legal-bpe" / "1").mkdir(parents=True)
    for k, v in evil.items():
        (root / "legal-bpe" / "1" / k).write_bytes(v)
    (root / "legal-bpe" / "1" / "manifest.json").write_text(json.dumps(manifest))
    (root / "legal-bpe" / "_content").mkdir()
    (root / "legal-bpe" / "_content" / f"{fp}.json").write_text('{"version": 1}')
    reg = Registry(root)
    with pytest.raises(CheckFailed, match="'content_sha256'"):
        reg.verify("legal-bpe@1")
    res = reg.publish("legal-bpe", tokenizer_dir)
    assert (res.reused, res.version) == (False, 2)
    assert reg.verify(res.ref).ok


# ---- 4: size caps and symlinks ------------------------------------------------------------


def test_import_refuses_a_bundle_over_the_size_cap_before_writing(tmp_path, monkeypatch):
    """8 MiB of zeros compress to a few KB: the declared size is checked against the cap
    (here 1 MiB via the environment) before a byte is extracted."""
    files = {"model.safetensors": bytes(8 << 20), "tokenizer.json": b"{}"}
    bundle = fx.tar_bundle(tmp_path / "bomb.tar.gz", fx.manifest_for(files), files)
    assert bundle.stat().st_size < 100_000
    monkeypatch.setenv("TOKENFOUNDRY_REGISTRY_IMPORT_MAX_BYTES", str(1 << 20))
    before = _tree(tmp_path)
    with pytest.raises(CheckFailed, match="more than the import limit 1048576"):
        Registry(tmp_path / "reg").import_bundle(bundle)
    assert _tree(tmp_path) == before
    monkeypatch.delenv("TOKENFOUNDRY_REGISTRY_IMPORT_MAX_BYTES")
    imp = Registry(tmp_path / "reg").import_bundle(bundle)
    assert imp.bytes == (8 << 20) + 2


def test_import_refuses_a_member_whose_header_size_differs_from_its_entry(tmp_path):
    """A zip whose central directory declares another size than the manifest: refused before
    a byte is read (reading stops at the declared size + 1 anyway), naming the member."""
    files = {"a.bin": b"x" * 1000}
    manifest = fx.manifest_for(files)
    path = tmp_path / "long.zip"
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("a.bin", b"x" * 1000)
    data = bytearray(path.read_bytes())
    # shrink the declared size of a.bin in the central directory (a lying header)
    cd = data.rfind(b"PK\x01\x02")
    while cd != -1:
        name_len = int.from_bytes(data[cd + 28:cd + 30], "little")
        if data[cd + 46:cd + 46 + name_len] == b"a.bin":
            data[cd + 24:cd + 28] = (999).to_bytes(4, "little")
        cd = data.rfind(b"PK\x01\x02", 0, cd)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckFailed, match=r"member 'a\.bin'"):
        Registry(tmp_path / "reg").import_bundle(path)
    assert not (tmp_path / "reg").exists()


def test_a_directory_symlink_in_a_stored_version_never_makes_pull_read_outside(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "weights.bin").write_bytes(b"w" * 4096)
    (src / "tokenizer.json").write_text("{}")
    reg = Registry(tmp_path / "reg")
    res = reg.publish("m", src)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "weights.bin").write_bytes(b"w" * 4096)  # the same bytes: only the path is wrong
    stored = tmp_path / "reg" / "m" / "1" / "sub"
    shutil.rmtree(stored)
    stored.symlink_to(outside, target_is_directory=True)
    with pytest.raises(CheckFailed, match=r"sub/weights\.bin: resolves through a symlink"):
        reg.pull(res.ref, tmp_path / "out", cache=False)
    assert not (tmp_path / "out").exists()
    v = reg.verify(res.ref)
    assert not v.ok and {p.path for p in v.problems} == {"sub/weights.bin", "sub"}


# ---- 5: leftovers of killed publishers --------------------------------------------------------


def test_gc_releases_the_claim_of_a_killed_publisher(registry_uri, tokenizer_dir):
    reg = Registry(registry_uri)
    fs, root = fsspec.core.url_to_fs(registry_uri)
    proc = fx.cli_publisher(registry_uri, "legal-bpe", tokenizer_dir, **{ENV_PAUSE: "300"})

    def claimed_and_staged() -> bool:
        fs.invalidate_cache()
        if not fs.exists(f"{root}/legal-bpe/_claims/1.json"):
            return False
        if reg.local:
            return any(p.name == "tokenizer.json" for p in Path(root, "_staging").rglob("*"))
        return fs.exists(f"{root}/legal-bpe/1/tokenizer.json")

    try:
        fx.wait_until(claimed_and_staged, "the publisher to claim version 1 and stage")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert reg.versions("legal-bpe") == []
    assert reg.gc().removed == []  # within the grace period: kept
    removed = reg.gc(force=True).removed
    assert {e.kind for e in removed} >= ({"staging", "claim"} if reg.local
                                         else {"uncommitted-version"})
    fs.invalidate_cache()
    assert not fs.exists(f"{root}/legal-bpe/_claims/1.json")
    res = reg.publish("legal-bpe", tokenizer_dir)
    assert (res.version, res.reused) == (1, False) and reg.verify(res.ref).ok
    assert reg.gc(force=True).removed == []


@pytest.mark.parametrize("lost", ["latest", "latest-and-record"])
def test_a_publish_killed_after_its_commit_is_repaired_not_duplicated(registry_uri,
                                                                      tokenizer_dir, lost):
    """What a kill right after the commit leaves: the version, without its ``latest`` event
    (and, with the earlier protocol, without its content record)."""
    reg = Registry(registry_uri)
    reg.publish("legal-bpe", tokenizer_dir)
    fs, root = fsspec.core.url_to_fs(registry_uri)
    fs.rm(f"{root}/legal-bpe/_aliases", recursive=True)
    if lost == "latest-and-record":
        fs.rm(f"{root}/legal-bpe/_content", recursive=True)
    fs.invalidate_cache()
    assert reg.alias_version("legal-bpe", "latest") is None
    res = reg.publish("legal-bpe", tokenizer_dir)
    assert (res.version, res.reused, res.aliases) == (1, True, {"latest": 1})
    assert reg.versions("legal-bpe") == [1]
    assert reg.alias_version("legal-bpe", "latest") == 1


def _race(uri: str, tmp_path: Path, sources: list[Path]) -> list[dict]:
    """Publishers as real processes that all stage, then meet at a barrier (a directory each
    adds a file to and waits on) before any of them commits."""
    env = {ENV_BARRIER: f"{tmp_path / 'barrier'}:{len(sources)}"}
    procs = [fx.cli_publisher(uri, "legal-bpe", s, **env) for s in sources]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout))
    return out


def _all_met(tmp_path: Path, n: int) -> bool:
    return len(os.listdir(tmp_path / "barrier")) == n


def test_eight_simultaneous_publishes_of_identical_files_give_one_version(tmp_path,
                                                                          tokenizer_dir):
    uri = str(tmp_path / "reg")
    results = _race(uri, tmp_path, [tokenizer_dir] * 8)
    assert {r["ref"] for r in results} == {"legal-bpe@1"}
    assert sorted(r["reused"] for r in results) == [False] + [True] * 7
    reg = Registry(uri)
    assert reg.versions("legal-bpe") == [1] and reg.verify("legal-bpe@1").ok
    assert reg.alias_version("legal-bpe", "latest") == 1
    assert os.listdir(tmp_path / "reg" / "legal-bpe" / "_claims") == ["1.json"]
    assert reg.gc(force=True).removed == []
    assert _all_met(tmp_path, 8)


def test_simultaneous_publishes_of_identical_files_on_s3_give_one_version(
        moto_s3, tmp_path, tokenizer_dir):
    uri = f"s3://{fx.new_bucket(moto_s3)}/registry"
    results = _race(uri, tmp_path, [tokenizer_dir] * 3)
    assert {r["ref"] for r in results} == {"legal-bpe@1"}
    reg = Registry(uri)
    assert reg.versions("legal-bpe") == [1] and reg.verify("legal-bpe@1").ok
    assert _all_met(tmp_path, 3)


def test_two_publishers_at_a_barrier_get_different_versions(registry_uri, tmp_path,
                                                            tokenizer_dir, tokenizer_dir_b):
    results = _race(registry_uri, tmp_path, [tokenizer_dir, tokenizer_dir_b])
    assert sorted(r["version"] for r in results) == [1, 2]
    assert not any(r["reused"] for r in results)
    reg = Registry(registry_uri)
    assert reg.versions("legal-bpe") == [1, 2] and reg.resolve("legal-bpe")[1] == 2
    assert all(reg.verify(r["ref"]).ok for r in results)
    assert _all_met(tmp_path, 2)


# ---- 13 (registry side): a full disk ----------------------------------------------------------


def _no_space(monkeypatch, free: int = 1000) -> None:
    real = shutil.disk_usage

    def disk_usage(path):
        u = real(path)
        return type(u)(u.total, u.total - free, free)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)


def test_publish_on_a_full_disk_names_the_registry_and_the_space_needed(tmp_path,
                                                                         tokenizer_dir,
                                                                         monkeypatch):
    reg = Registry(tmp_path / "reg")
    _no_space(monkeypatch)
    need = sum(p.stat().st_size for p in tokenizer_dir.iterdir()) / 1e6
    with pytest.raises(CheckFailed, match=rf"registry {tmp_path / 'reg'}.*needs {need:.1f} MB"):
        reg.publish("legal-bpe", tokenizer_dir)
    assert not (tmp_path / "reg" / "legal-bpe").exists()
    assert list((tmp_path / "reg").rglob("*")) in ([], [tmp_path / "reg" / "_staging"])


def test_enospc_while_copying_cleans_temporaries_and_names_the_registry(tmp_path,
                                                                        tokenizer_dir,
                                                                        monkeypatch):
    reg = Registry(tmp_path / "reg")

    def full(src, dst, *a, **k):
        Path(dst).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(CheckFailed, match=rf"registry {tmp_path / 'reg'}: publishing legal-bpe: "
                       "no space left on device"):
        reg.publish("legal-bpe", tokenizer_dir)
    monkeypatch.undo()
    assert [p for p in (tmp_path / "reg").rglob("*") if p.is_file()] == []
    assert reg.publish("legal-bpe", tokenizer_dir).version == 1


def test_pull_on_a_full_disk_names_the_target_and_leaves_no_temporaries(tmp_path,
                                                                        tokenizer_dir,
                                                                        monkeypatch):
    reg = Registry(tmp_path / "reg")
    reg.publish("legal-bpe", tokenizer_dir)
    _no_space(monkeypatch)
    with pytest.raises(CheckFailed, match=rf"pull legal-bpe@1 into {tmp_path / 'out'}.*needs"):
        reg.pull("legal-bpe", tmp_path / "out", cache=False)
    assert not (tmp_path / "out").exists()
    assert [p for p in os.listdir(tmp_path) if ".pull-" in p] == []


def test_parse_ref_refuses_a_non_ascii_digit_version():
    from tokenfoundry.storage.registry import parse_ref

    with pytest.raises(BadInputError, match="invalid version or alias"):
        parse_ref("tok@²")
    with pytest.raises(BadInputError, match="positive integer"):
        parse_ref("tok@0")
