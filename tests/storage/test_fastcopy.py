"""Two-lane SHA-256 (storage/_sha256mb.c via storage/sha256mb.py) and the verified copy engine
(storage/fastcopy.py) against hashlib and the bytes on disk."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfoundry.storage import sha256mb
from tokenfoundry.storage.fastcopy import CHUNK, copy_files
from tokenfoundry.storage.sha256mb import Sha256, update2

LICENCES = sorted(p for p in Path("/usr/share/common-licenses").iterdir() if p.is_file())


def _cpu_has_sha() -> bool:
    try:
        return " sha_ni " in f" {Path('/proc/cpuinfo').read_text()} ".replace("\n", " ")
    except OSError:
        return False


def test_the_two_lane_extension_is_built_and_used_where_it_can_be():
    """A compiler and SHA-NI here mean the install must have built and enabled it (a silent
    fallback to hashlib would halve the registry's copy speed)."""
    if not (shutil.which("cc") or shutil.which("gcc")) or not _cpu_has_sha():
        pytest.skip("no C compiler or no SHA-NI on this machine: the hashlib fallback is used")
    assert sha256mb.NATIVE


@pytest.mark.parametrize("native", [True, False])
def test_digests_equal_hashlib_at_every_boundary(monkeypatch, native):
    if native and not sha256mb.NATIVE:
        pytest.skip("extension not available")
    monkeypatch.setattr(sha256mb, "NATIVE", native)
    rng = random.Random(7)
    data = rng.randbytes(5000)
    for n in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096, 5000]:
        assert Sha256(data[:n]).hexdigest() == hashlib.sha256(data[:n]).hexdigest(), n
        h = Sha256()  # the same bytes in odd pieces
        i = 0
        while i < n:
            k = rng.randint(1, 70)
            h.update(memoryview(data)[i:min(i + k, n)])
            i += k
        assert h.hexdigest() == hashlib.sha256(data[:n]).hexdigest(), n


@settings(max_examples=60, deadline=None)
@given(a=st.binary(max_size=700), b=st.binary(max_size=700), blocks=st.integers(0, 6),
       pre_a=st.integers(0, 130), pre_b=st.integers(0, 130))
def test_update2_equals_two_hashlib_streams(a, b, blocks, pre_a, pre_b):
    """Paired whole-block updates (and the fallback when lanes are misaligned or lengths
    differ) give exactly hashlib's digests."""
    rng = random.Random(len(a) * 1000 + len(b))
    ha, hb, ra, rb = Sha256(), Sha256(), hashlib.sha256(), hashlib.sha256()
    for h, r, pre in ((ha, ra, pre_a), (hb, rb, pre_b)):
        head = rng.randbytes(pre)
        h.update(head)
        r.update(head)
    ca, cb = rng.randbytes(64 * blocks), rng.randbytes(64 * blocks)
    update2(ha, ca, hb, cb)
    ra.update(ca)
    rb.update(cb)
    update2(ha, a, hb, b)  # arbitrary lengths: falls back
    ra.update(a)
    rb.update(b)
    assert (ha.hexdigest(), hb.hexdigest()) == (ra.hexdigest(), rb.hexdigest())


def test_update2_on_real_text_of_many_blocks():
    texts = [p.read_bytes() for p in LICENCES[:6]]
    n = min(len(t) for t in texts) // 64 * 64
    for x, y in zip(texts[::2], texts[1::2]):
        a, b = Sha256(), Sha256()
        update2(a, x[:n], b, y[:n])
        a.update(x[n:])
        b.update(y[n:])
        assert a.hexdigest() == hashlib.sha256(x).hexdigest()
        assert b.hexdigest() == hashlib.sha256(y).hexdigest()


def test_extension_refuses_bad_arguments():
    if not sha256mb.NATIVE:
        pytest.skip("extension not available")
    from tokenfoundry.storage import _sha256mb as C

    s = bytearray(32)
    with pytest.raises(ValueError, match="multiple of 64"):
        C.compress(s, b"x" * 65)
    with pytest.raises(ValueError, match="32 bytes"):
        C.compress(bytearray(31), b"x" * 64)
    with pytest.raises(ValueError, match="differ in length"):
        C.compress2(s, b"x" * 64, bytearray(32), b"x" * 128)
    with pytest.raises(ValueError, match="share one state"):
        C.compress2(s, b"x" * 64, s, b"x" * 64)
    with pytest.raises(BufferError):
        C.compress(bytes(32), b"x" * 64)  # the state must be writable


SIZES = [0, 1, 63, 64, 65, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, 2 * CHUNK]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_copy_files_copies_and_hashes_every_size(tmp_path, workers):
    rng = random.Random(workers)
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    jobs, want = [], []
    for i, n in enumerate(SIZES):
        p = src / f"f{i}"
        p.write_bytes(rng.randbytes(n))
        jobs.append((p, dst / f"f{i}", n))
        want.append((hashlib.sha256(p.read_bytes()).hexdigest(), n))
    seen = []
    got = copy_files(jobs, seen.append, workers=workers)
    assert got == want
    assert sum(seen) == sum(SIZES)
    for s, d, _ in jobs:
        assert d.read_bytes() == s.read_bytes()
    assert copy_files([(s, None, n) for s, _, n in jobs], workers=workers) == want  # hash only


def test_copy_files_reports_what_was_copied_when_the_size_hint_is_wrong(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"legal text " * 300_000)  # 3.3 MB
    b.write_bytes(b"short")
    got = copy_files([(a, tmp_path / "a2", 10 * CHUNK), (b, tmp_path / "b2", 3 * CHUNK)])
    assert got == [(hashlib.sha256(a.read_bytes()).hexdigest(), a.stat().st_size),
                   (hashlib.sha256(b"short").hexdigest(), 5)]
    assert (tmp_path / "a2").stat().st_size == a.stat().st_size
    assert (tmp_path / "b2").read_bytes() == b"short"
    # the preallocated space past the end was given back
    assert os.stat(tmp_path / "b2").st_blocks * 512 < CHUNK


def test_copy_files_missing_source_names_it_and_writes_nothing(tmp_path):
    ok = tmp_path / "ok"
    ok.write_bytes(LICENCES[0].read_bytes())
    with pytest.raises(FileNotFoundError) as exc:
        copy_files([(ok, tmp_path / "ok2", 10), (tmp_path / "nope", tmp_path / "nope2", 10)])
    assert exc.value.filename == str(tmp_path / "nope")
    assert not (tmp_path / "ok2").exists() and not (tmp_path / "nope2").exists()


def test_copy_files_on_real_licences_balances(tmp_path):
    jobs = [(p, tmp_path / p.name, p.stat().st_size) for p in LICENCES]
    seen = []
    got = copy_files(jobs, seen.append)
    assert [n for _, n in got] == [p.stat().st_size for p in LICENCES]
    assert sum(seen) == sum(p.stat().st_size for p in LICENCES)
    assert [s for s, _ in got] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in LICENCES]


def test_copy_files_a_failing_write_raises_instead_of_hanging(tmp_path, monkeypatch):
    """A disk error in one worker (here ENOSPC on the 5th write) stops every worker and
    reaches the caller."""
    import errno

    from tokenfoundry.storage import fastcopy

    src = tmp_path / "big"
    src.write_bytes(random.Random(3).randbytes(12 * CHUNK))
    calls = []
    real = os.pwrite

    def pwrite(fd, data, off):
        calls.append(off)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, off)

    monkeypatch.setattr(fastcopy.os, "pwrite", pwrite)
    with pytest.raises(OSError, match="No space left"):
        copy_files([(src, tmp_path / "out", 12 * CHUNK)])
    assert len(calls) < 12  # stopped early
