"""Registry benchmark: publish and pull of a version vs a plain fsspec copy of the same files.

    python benchmarks/registry.py --model                 # one 540 MB model.safetensors + tokenizer
    python benchmarks/registry.py --backend both --size-mb 100 --files 4 --rounds 3

The version is random bytes (incompressible, like weights). ``--model``: a model version as the
vocabulary extension publishes it (a 540 MB ``model.safetensors``, a 3 MB ``tokenizer.json``, a
small ``extend_report.json``). Otherwise ``--files N`` equal files of ``--size-mb`` in all. In
the same run, alternating round by round:

- publish: ``Registry.publish`` (copy into the staging directory and sha256 of what was copied,
  claim a version, commit by rename / manifest-last) vs ``fs.put(files, dest)``;
- pull: ``Registry.pull`` into a new directory with a cold cache (every sha256 and size
  verified, temporary directory + rename) vs ``fs.get(src_files, local_files)``.

Both sides copy the same page-cached files; neither fsyncs the data. Throughput = bytes / wall
seconds, median over rounds, ours vs the baseline (reported, no target: ours also reads every
byte once more to hash it, with hashlib on a few threads).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import fsspec


def _random_file(p: Path, size: int) -> Path:
    with open(p, "wb") as fh:
        while size:
            n = min(size, 8 << 20)
            fh.write(os.urandom(n))
            size -= n
    return p


def make_files(root: Path, size_mb: int, count: int, model: bool) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    if model:
        return [_random_file(root / "model.safetensors", 540_000_000),
                _random_file(root / "tokenizer.json", 3_000_000),
                _random_file(root / "extend_report.json", 4_000)]
    return [_random_file(root / f"part-{i:03d}.bin", size_mb * 1_000_000 // count)
            for i in range(count)]


def start_moto() -> tuple[subprocess.Popen, str]:
    """moto's S3 server as its own process on a free loopback port."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
    return proc, endpoint


def _base_uri(backend: str, work: Path) -> str:
    if backend == "local":
        return str(work / "store")
    import boto3

    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}"


def run_backend(backend: str, files: list[Path], src_dir: Path, work: Path, rounds: int
                ) -> dict[str, list[float]]:
    """Wall seconds per round of publish, fs.put, pull and fs.get."""
    from tokenfoundry.storage.registry import Registry

    total = sum(p.stat().st_size for p in files)
    base = _base_uri(backend, work)
    fs, root = fsspec.core.url_to_fs(base)
    root = os.path.abspath(root) if backend == "local" else root
    times: dict[str, list[float]] = {k: [] for k in ("publish", "put", "pull", "get")}

    def timed(key: str, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        times[key].append(time.perf_counter() - t)
        return out

    for r in range(rounds):
        tag = uuid.uuid4().hex[:8]
        dest = f"{root}/plain-{tag}"
        fs.makedirs(dest, exist_ok=True)
        timed("put", fs.put, [str(p) for p in files], [f"{dest}/{p.name}" for p in files])
        reg = Registry(f"{base}/registry-{tag}" if backend != "local" else f"{root}/registry-{tag}")
        res = timed("publish", reg.publish, "bench", src_dir)
        assert res.bytes == total and not res.reused
        down = work / f"get-{tag}"
        down.mkdir()
        timed("get", fs.get, [f"{dest}/{p.name}" for p in files],
              [str(down / p.name) for p in files])
        os.environ["TOKENFOUNDRY_CACHE"] = str(work / f"cache-{tag}")
        pulled = timed("pull", reg.pull, res.ref, work / f"pull-{tag}")
        assert pulled.bytes == total and reg.verify(res.ref).ok
        for p in (down, work / f"pull-{tag}", work / f"cache-{tag}"):
            shutil.rmtree(p, ignore_errors=True)
        fs.rm(dest, recursive=True)
        fs.rm(reg.root, recursive=True)
        print(f"  {backend} round {r + 1}/{rounds}: put {times['put'][-1]:.3f}s publish "
              f"{times['publish'][-1]:.3f}s get {times['get'][-1]:.3f}s pull "
              f"{times['pull'][-1]:.3f}s", file=sys.stderr)
    return times


def report(backend: str, times: dict[str, list[float]], total: int, nfiles: int) -> None:
    mb = total / 1e6
    print(f"\n{backend}: {mb:.0f} MB in {nfiles} file(s), median of {len(times['put'])} rounds")
    for ours, base, label in (("publish", "put", "publish vs fs.put"),
                              ("pull", "get", "pull vs fs.get")):
        o = mb / statistics.median(times[ours])
        b = mb / statistics.median(times[base])
        print(f"  {label:<18} ours {o:8.1f} MB/s  baseline {b:8.1f} MB/s  ({o / b:.2f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["local", "s3", "both"], default="local")
    ap.add_argument("--model", action="store_true", help="a 540 MB model version")
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tf-bench-registry-") as tmp:
        work = Path(tmp)
        src = work / "version"
        files = make_files(src, args.size_mb, args.files, args.model)
        total = sum(p.stat().st_size for p in files)
        if args.backend in ("local", "both"):
            report("local", run_backend("local", files, src, work, args.rounds), total,
                   len(files))
        if args.backend in ("s3", "both"):
            server, endpoint = start_moto()
            try:
                report(f"s3 (moto server {endpoint}, s3fs)",
                       run_backend("s3", files, src, work, args.rounds), total, len(files))
            finally:
                server.terminate()
                server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
