"""Failure tests of the registry with real processes and crafted inputs: kill -9 mid-publish,
two publishing processes at once, crafted bundles (traversal, links, devices, checksums), and a
hypothesis round-trip property (publish -> pull and export -> import give identical bytes)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenfoundry.schemas.errors import CheckFailed
from tokenfoundry.storage.registry import ENV_CLAIM, ENV_PAUSE, Registry
from tf_fixtures import registry as fx


fx.load(globals())

WORKER = """
import sys
from tokenfoundry.storage.registry import Registry
res = Registry(sys.argv[1]).publish(sys.argv[2], sys.argv[3])
print(res.model_dump_json())
"""


def _publisher(uri: str, name: str, source: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, uri, name, str(source)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


def _wait_for(cond, timeout: float = 60.0) -> None:
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError("timed out waiting for the publisher to stage")
        time.sleep(0.1)


# ---- kill -9 mid-publish -----------------------------------------------------------------------


def test_kill_9_mid_publish_leaves_no_visible_version_and_gc_cleans(
        registry_uri, tokenizer_dir, tokenizer_dir_b):
    reg = Registry(registry_uri)
    fs, root = fsspec.core.url_to_fs(registry_uri)
    proc = _publisher(registry_uri, "legal-bpe", tokenizer_dir, **{ENV_PAUSE: "120"})

    def staged() -> bool:
        fs.invalidate_cache()
        if reg.local:
            d = Path(root, "_staging")
            want = (tokenizer_dir / "tokenizer.json").stat().st_size  # copied in full: paused
            return d.is_dir() and any(p.name == "tokenizer.json" and p.stat().st_size == want
                                      for p in d.rglob("*"))
        return bool(fs.glob(f"{root}/legal-bpe/*/tokenizer.json"))

    try:
        _wait_for(staged)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    # nothing visible: no versions, no alias, resolve refuses
    assert reg.versions("legal-bpe") == []
    assert reg.list().tokenizers == []
    with pytest.raises(Exception, match="no tokenizer 'legal-bpe'"):
        reg.resolve("legal-bpe")
    # gc keeps it within the grace period, removes it when forced
    assert reg.gc().removed == [] and len(reg.gc().kept) >= 1
    removed = reg.gc(force=True).removed
    assert removed and all(e.bytes > 0 for e in removed if e.kind != "staging" or reg.local)
    fs.invalidate_cache()
    assert not fs.glob(f"{root}/legal-bpe/*/tokenizer.json")
    if reg.local:
        assert os.listdir(Path(root, "_staging")) == []
    # a re-publish works and verifies
    res = reg.publish("legal-bpe", tokenizer_dir)
    assert not res.reused and reg.verify(res.ref).ok
    assert reg.resolve("legal-bpe") == ("legal-bpe", res.version)


# ---- two processes at once ---------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exclusive", "verify"])
def test_two_concurrent_publishers_get_different_versions(
        backend, registry_uri, tokenizer_dir, tokenizer_dir_b, claim):
    if claim == "verify" and backend == "local":
        pytest.skip("the read-back claim is the object-store fallback")
    at = f"@{time.time() + 3.0}"  # both processes claim a version at the same instant
    env = {ENV_PAUSE: at, **({ENV_CLAIM: "verify"} if claim == "verify" else {})}
    procs = [_publisher(registry_uri, "legal-bpe", d, **env)
             for d in (tokenizer_dir, tokenizer_dir_b)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    versions = sorted(r["version"] for r in results)
    assert versions == [1, 2], results
    reg = Registry(registry_uri)
    assert reg.versions("legal-bpe") == [1, 2]
    for r, src in zip(results, (tokenizer_dir, tokenizer_dir_b)):
        m = reg.manifest("legal-bpe", r["version"])
        assert {f.path: f.sha256 for f in m.files} == {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
        assert reg.verify(r["ref"]).ok
    assert reg.resolve("legal-bpe") == ("legal-bpe", 2)


# ---- crafted bundles ---------------------------------------------------------------------------


def _good_members(tokenizer_dir: Path) -> tuple[dict, dict[str, bytes]]:
    files = {p.name: p.read_bytes() for p in sorted(tokenizer_dir.iterdir())}
    from tokenfoundry.storage.registry import content_sha256
    from tokenfoundry.schemas.registry import FileEntry

    entries = [FileEntry(path=k, size=len(v), sha256=hashlib.sha256(v).hexdigest())
               for k, v in files.items()]
    manifest = {"format": "tokenfoundry-registry-manifest", "format_version": 1,
                "name": "legal-bpe", "version": 1, "created_at": "2026-01-01T00:00:00+00:00",
                "content_sha256": content_sha256(entries),
                "total_bytes": sum(len(v) for v in files.values()),
                "files": [e.model_dump() for e in entries]}
    return manifest, files


def _tar(path: Path, manifest: dict, files: dict[str, bytes], extra=None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))

        add("legal-bpe-1/manifest.json", json.dumps(manifest).encode())
        for k, v in files.items():
            add(f"legal-bpe-1/{k}", v)
        if extra:
            extra(tf, add)
    return path


def _zip(path: Path, manifest: dict, files: dict[str, bytes], extra=None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for k, v in files.items():
            zf.writestr(k, v)
        if extra:
            extra(zf)
    return path


def _special(kind):
    def extra(tf, add):
        ti = tarfile.TarInfo("legal-bpe-1/" + kind)
        if kind == "symlink":
            ti.type, ti.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            ti.type, ti.linkname = tarfile.LNKTYPE, "legal-bpe-1/tokenizer.json"
        elif kind == "device":
            ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
        tf.addfile(ti)
    return extra


def _zip_symlink(zf):
    zi = zipfile.ZipInfo("link")
    zi.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(zi, "/etc/passwd")


CRAFTED = {
    "dotdot": ("tar", lambda tf, add: add("../evil.txt", b"evil"), "../evil.txt"),
    "dotdot-inside": ("tar", lambda tf, add: add("legal-bpe-1/../../evil.txt", b"evil"),
                      "legal-bpe-1/../../evil.txt"),
    "absolute": ("tar", lambda tf, add: add("/tmp/evil.txt", b"evil"), "/tmp/evil.txt"),
    "symlink": ("tar", _special("symlink"), "legal-bpe-1/symlink"),
    "hardlink": ("tar", _special("hardlink"), "legal-bpe-1/hardlink"),
    "device": ("tar", _special("device"), "legal-bpe-1/device"),
    "zip-backslash": ("zip", lambda zf: zf.writestr("..\\..\\evil.txt", "evil"),
                      "..\\..\\evil.txt"),
    "zip-absolute": ("zip", lambda zf: zf.writestr("/evil.txt", "evil"), "/evil.txt"),
    "zip-symlink": ("zip", _zip_symlink, "link"),
    "unlisted": ("tar", lambda tf, add: add("legal-bpe-1/extra.bin", b"x"),
                 "legal-bpe-1/extra.bin"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_bundles_are_refused_naming_the_member_and_nothing_is_written(
        tmp_path, tokenizer_dir, case):
    kind, extra, member = CRAFTED[case]
    manifest, files = _good_members(tokenizer_dir)
    make = _tar if kind == "tar" else _zip
    bundle = make(tmp_path / f"bundle.{'tar.gz' if kind == 'tar' else 'zip'}", manifest, files,
                  extra)
    reg = Registry(tmp_path / "reg")
    before = sorted(p.as_posix() for p in tmp_path.rglob("*"))
    with pytest.raises(CheckFailed, match="bundle refused") as ei:
        reg.import_bundle(bundle)
    assert repr(member) in str(ei.value)
    assert sorted(p.as_posix() for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/evil.txt").exists()
    # the same bundle without the crafted member imports fine
    good = make(tmp_path / f"good.{'tar.gz' if kind == 'tar' else 'zip'}", manifest, files)
    assert reg.import_bundle(good).version == 1 and reg.verify("legal-bpe@1").ok


def test_bundle_with_a_checksum_mismatch_is_refused_on_both_backends(registry_uri,
                                                                      tokenizer_dir, tmp_path):
    manifest, files = _good_members(tokenizer_dir)
    bad = dict(files)
    data = bytearray(bad["tokenizer.json"])
    data[100] ^= 0x20
    bad["tokenizer.json"] = bytes(data)
    bundle = _tar(tmp_path / "bad.tar.gz", manifest, bad)
    reg = Registry(registry_uri)
    with pytest.raises(CheckFailed, match=r"member 'legal-bpe-1/tokenizer\.json': sha256"):
        reg.import_bundle(bundle)
    fs, root = fsspec.core.url_to_fs(registry_uri)
    fs.invalidate_cache()
    assert not fs.exists(root) or fs.find(root) == []


# ---- round-trip property ----------------------------------------------------------------------

_component = st.text("abcxyz019_-.", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..") and not s.startswith("."))
_tree = st.dictionaries(
    st.lists(_component, min_size=1, max_size=3).map("/".join),
    st.binary(max_size=3000), min_size=1, max_size=5,
).filter(lambda t: "manifest.json" not in t and not any(
    a != b and b.startswith(a + "/") for a in t for b in t))


def _round_trip(uri_a: str, uri_b: str, tree: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "src")
        for rel, data in tree.items():
            p = src.joinpath(*rel.split("/"))
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        a, b = Registry(uri_a), Registry(uri_b)
        res = a.publish("prop", src)
        pulled = Path(a.pull(res.ref, Path(tmp, "pulled")).path)
        got = fx.tree_bytes(pulled)
        assert got.pop("manifest.json") == a.manifest_bytes("prop", res.version)
        assert got == tree
        bundle = a.export_bundle(res.ref, Path(tmp, "b.tar.gz")).path
        imp = b.import_bundle(bundle)
        again = fx.tree_bytes(Path(b.pull(imp.ref, Path(tmp, "pulled2")).path))
        again.pop("manifest.json")
        assert again == tree


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=_tree)
def test_round_trip_property_local(tmp_path, tree):
    run = tmp_path / uuid.uuid4().hex
    _round_trip(str(run / "a"), str(run / "b"), tree)


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=_tree)
def test_round_trip_property_s3(moto_s3, tree):
    _round_trip(f"s3://{fx.new_bucket(moto_s3)}/r", f"s3://{fx.new_bucket(moto_s3)}/r", tree)
