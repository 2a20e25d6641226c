"""Registry benchmark: publish and pull of a ~100 MB version vs a plain fsspec copy.

    python benchmarks/registry.py                 # local and S3 (moto server on 127.0.0.1)
    python benchmarks/registry.py --backend local --size-mb 200 --rounds 5

The version is a few files (40/30/20/10 % of --size-mb, or ``--files N`` equal ones; random
bytes: incompressible, like embedding tables). In the same run, alternating round by round:

- publish: ``Registry.publish`` (stage with sha256 of every byte written, claim a version,
  commit by rename / manifest-last) vs the baseline ``fs.put(files, dest)`` of the same files;
- pull: ``Registry.pull`` into a new directory with a cold cache (every sha256 and size
  verified, temp dir + rename) vs the baseline ``fs.get(src_files, local_files)``.

Both sides copy the same page-cached files with the same filesystem instance (fsspec caches it);
neither fsyncs the data (the registry fsyncs only its small claim/manifest/alias files).
Throughput = bytes / wall seconds; the median over rounds is reported with ours/baseline. The
target is >= 0.8x. The machine is shared (other jobs use the CPUs), so the rounds interleave
ours and the baseline to expose both to the same load; the load average is printed with the
figures, and for the local backend also the CPU seconds of this process per operation.

What bounds the local ratios: the baseline is a kernel copy (sendfile) on one thread; ours must
also sha256 every byte. One SHA-256 stream runs at ~1.5 GB/s per core here (OpenSSL with SHA-NI,
latency-bound), slower than the kernel copy, so a verified copy of ONE big file cannot reach
0.8x on 2 cores: its copy runs on one core and its hash on the other (``--files 1`` shows it,
~0.6x). With several files, ours hashes two files at once per core (storage/_sha256mb.c: two
SHA-256 streams interleaved, ~1.9x one stream) while the other core reads and writes
(storage/fastcopy.py), which brings the CPU cost to ~2x the baseline's and the wall time close
to it. The "reference" line shows both hash speeds (no copy). Every job sharing the cores pushes
the ratio down (the single-threaded baseline needs one core, ours both). On S3 the network
transfer dominates and hashing runs while the bytes stream, so the ratios there are set by
request round trips.
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


def make_files(root: Path, size_mb: int, count: int = 4) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    shares = [0.4, 0.3, 0.2, 0.1] if count == 4 else [1.0 / count] * count
    names = ["embeddings.safetensors", "tokenizer.json", "merges.bin", "vocab.bin"] \
        if count == 4 else [f"part-{i:03d}.bin" for i in range(count)]
    out = []
    for name, share in zip(names, shares):
        p = root / name
        with open(p, "wb") as fh:
            left = int(size_mb * share * 1_000_000)
            while left:
                n = min(left, 8 << 20)
                fh.write(os.urandom(n))
                left -= n
        out.append(p)
    return out


def one_core_hash_speeds(rounds: int = 5) -> tuple[float, float]:
    """MB/s of SHA-256 on one thread over two 32 MiB buffers: hashlib (OpenSSL) one after the
    other vs ours, both streams interleaved (storage.sha256mb.update2)."""
    import hashlib

    from tokenfoundry.storage.sha256mb import Sha256, update2

    a, b = os.urandom(32 << 20), os.urandom(32 << 20)
    t_lib, t_two = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        hashlib.sha256(a).digest()
        hashlib.sha256(b).digest()
        t_lib.append(time.perf_counter() - t)
        t = time.perf_counter()
        x, y = Sha256(), Sha256()
        update2(x, a, y, b)
        x.digest()
        y.digest()
        t_two.append(time.perf_counter() - t)
    mb = (len(a) + len(b)) / 1e6
    return mb / statistics.median(t_lib), mb / statistics.median(t_two)


def start_moto() -> tuple[subprocess.Popen, str]:
    """moto's S3 server as its own process on a free loopback port (S3 is a separate service
    for real users too, and this keeps its Python request handling off our process' GIL)."""
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


def run_backend(backend: str, files: list[Path], src_dir: Path, work: Path, rounds: int
                ) -> dict[str, list[float]]:
    import hashlib

    from tokenfoundry.storage.registry import Registry, _parallel, sha256_files

    def hashlib_sha256(p: Path) -> str:
        h = hashlib.sha256()
        with open(p, "rb", buffering=0) as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()

    total = sum(p.stat().st_size for p in files)
    if backend == "local":
        base = str(work / "store")
    else:
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        base = f"s3://{bucket}"
    fs, root = fsspec.core.url_to_fs(base)
    if backend == "local":
        root = os.path.abspath(root)
    times: dict[str, list[float]] = {k: [] for k in
                                     ("publish", "put", "pull", "get", "sha256", "sha256x2")}
    cpu: dict[str, list[float]] = {k: [] for k in times}

    def timed(key: str, fn, *args):
        c, t = time.process_time(), time.perf_counter()
        out = fn(*args)
        times[key].append(time.perf_counter() - t)
        cpu[key].append(time.process_time() - c)
        return out

    for r in range(rounds):
        tag = uuid.uuid4().hex[:8]
        # references: one sha256 pass over the same (page-cached) files, no copy at all:
        # hashlib (OpenSSL) file by file on 2 threads, and ours (two files per core at once)
        timed("sha256", _parallel, hashlib_sha256, files)
        timed("sha256x2", sha256_files, files)
        # baseline: plain fsspec copy up
        dest = f"{root}/plain-{tag}"
        fs.makedirs(dest, exist_ok=True)
        timed("put", fs.put, [str(p) for p in files], [f"{dest}/{p.name}" for p in files])
        # ours: publish a new version (fresh registry, so nothing is reused)
        reg = Registry(f"{base}/registry-{tag}" if backend != "local" else
                       f"{root}/registry-{tag}")
        res = timed("publish", reg.publish, "bench", src_dir)
        assert res.bytes == total and not res.reused
        # baseline: plain fsspec copy down
        down = work / f"get-{tag}"
        down.mkdir()
        timed("get", fs.get, [f"{dest}/{p.name}" for p in files],
              [str(down / p.name) for p in files])
        # ours: verified pull with a cold cache
        os.environ["TOKENFOUNDRY_CACHE"] = str(work / f"cache-{tag}")
        pulled = timed("pull", reg.pull, res.ref, work / f"pull-{tag}")
        assert pulled.bytes == total
        # clean up before the next round (keeps the page cache / disk comparable)
        for p in (down, work / f"pull-{tag}", work / f"cache-{tag}"):
            shutil.rmtree(p, ignore_errors=True)
        fs.rm(dest, recursive=True)
        fs.rm(reg.root, recursive=True)
        print(f"  {backend} round {r + 1}/{rounds}: put {times['put'][-1]:.3f}s "
              f"publish {times['publish'][-1]:.3f}s get {times['get'][-1]:.3f}s "
              f"pull {times['pull'][-1]:.3f}s sha256-only {times['sha256'][-1]:.3f}s",
              file=sys.stderr)
    return times, cpu


def report(backend: str, measured: tuple[dict[str, list[float]], dict[str, list[float]]],
           total: int, load_before: tuple[float, ...], nfiles: int) -> list[bool]:
    times, cpu = measured
    mb = total / 1e6
    ok = []
    load = "/".join(f"{x:.2f}" for x in load_before)
    print(f"\n{backend}: {mb:.0f} MB in {nfiles} file(s), median of {len(times['put'])} rounds "
          f"(load average before {load}, after "
          f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())})")
    for ours, base, label in (("publish", "put", "publish vs fs.put"),
                              ("pull", "get", "pull vs fs.get")):
        o = mb / statistics.median(times[ours])
        b = mb / statistics.median(times[base])
        ratio = o / b
        ok.append(ratio >= 0.8)
        print(f"  {label:<18} ours {o:8.1f} MB/s  baseline {b:8.1f} MB/s  "
              f"ratio {ratio:.2f}x {'(>= 0.8x ok)' if ratio >= 0.8 else '(BELOW 0.8x)'}"
              f"  CPU s ours {statistics.median(cpu[ours]):.3f} "
              f"baseline {statistics.median(cpu[base]):.3f}")
    h = mb / statistics.median(times["sha256"])
    h2 = mb / statistics.median(times["sha256x2"])
    print(f"  reference: sha256 of the same bytes alone, no copy, 2 threads: hashlib {h:8.1f} MB/s,"
          f" ours two-lane {h2:8.1f} MB/s")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["local", "s3", "both"], default="both")
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--files", type=int, default=4,
                    help="4: shares 40/30/20/10 %% (default); any other N: N equal files")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--s3-rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tf-bench-registry-") as tmp:
        work = Path(tmp)
        src = work / "version"
        files = make_files(src, args.size_mb, args.files)
        total = sum(p.stat().st_size for p in files)
        results = []
        from tokenfoundry.storage.sha256mb import NATIVE

        lib, two = one_core_hash_speeds()
        print(f"one core, SHA-256 of 2 x 32 MiB in memory: hashlib {lib:7.1f} MB/s, ours two-lane "
              f"{two:7.1f} MB/s ({two / lib:.2f}x; native extension {'on' if NATIVE else 'OFF'})")
        if args.backend in ("local", "both"):
            load = os.getloadavg()
            results += report("local", run_backend("local", files, src, work, args.rounds),
                              total, load, len(files))
        if args.backend in ("s3", "both"):
            server, endpoint = start_moto()
            try:
                load = os.getloadavg()
                results += report(f"s3 (moto server {endpoint}, s3fs; CPU s = this process)",
                                  run_backend("s3", files, src, work, args.s3_rounds), total,
                                  load, len(files))
            finally:
                server.terminate()
                server.wait(10)
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
