"""Shared parts of the registry tests: a real S3 API (moto's server on 127.0.0.1, driven by s3fs
exactly like AWS via AWS_ENDPOINT_URL), registries on both backends, and a real tiny tokenizer
directory (BPE trained on licence text, saved as an AutoTokenizer directory).

Loaded with importlib by the test modules (``--import-mode=importlib`` has no sibling imports).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def moto_s3():
    """moto's S3 server on a free loopback port; yields its endpoint URL. The AWS_* variables
    point boto/s3fs (and subprocesses) at it, as a user would point them at MinIO."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def new_bucket(endpoint: str) -> str:
    import boto3

    name = f"tf-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing"
                 ).create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True)
def registry_cache(tmp_path, monkeypatch):
    """Every test gets its own pull cache."""
    monkeypatch.setenv("TOKENFOUNDRY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(params=["local", "s3"])
def backend(request):
    return request.param


@pytest.fixture
def make_registry_uri(backend, tmp_path, request):
    """A factory of fresh, empty registry URIs on the test's backend."""
    counter = iter(range(1000))

    def make() -> str:
        if backend == "local":
            return str(tmp_path / f"registry-{next(counter)}")
        endpoint = request.getfixturevalue("moto_s3")
        return f"s3://{new_bucket(endpoint)}/registry"

    return make


@pytest.fixture
def registry_uri(make_registry_uri):
    return make_registry_uri()


def build_tokenizer_dir(out: Path, text_file: Path, vocab_size: int = 320) -> Path:
    """A real byte-level BPE trained on ``text_file``, saved as tokenizer.json plus the
    AutoTokenizer files (via transformers' PreTrainedTokenizerFast.save_pretrained)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(text_file)], trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(
        str(out))
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, licence_dir) -> Path:
    out = tmp_path_factory.mktemp("tok") / "legal-bpe"
    return build_tokenizer_dir(out, licence_dir / "GPL-3")


@pytest.fixture(scope="session")
def tokenizer_dir_b(tmp_path_factory, licence_dir) -> Path:
    """A second, different tokenizer (other licence, other vocabulary size)."""
    out = tmp_path_factory.mktemp("tokb") / "legal-bpe-b"
    return build_tokenizer_dir(out, licence_dir / "Apache-2.0", vocab_size=300)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """{relative posix path: bytes} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def load(module_globals: dict) -> None:
    """Bring the fixtures into a test module's namespace."""
    for name in ("moto_s3", "registry_cache", "backend", "make_registry_uri", "registry_uri",
                 "tokenizer_dir", "tokenizer_dir_b"):
        module_globals[name] = globals()[name]


# ---- crafted bundles and real processes (tests/storage/test_registry_hostile.py) -------------


def manifest_for(files: dict[str, bytes], name: str = "legal-bpe", version: int = 1) -> dict:
    """A well-formed bundle manifest for ``files`` (what `registry export` writes)."""
    import hashlib

    from tokenfoundry.schemas.registry import FileEntry
    from tokenfoundry.storage.registry import content_sha256

    entries = [FileEntry(path=k, size=len(v), sha256=hashlib.sha256(v).hexdigest())
               for k, v in sorted(files.items())]
    return {"format": "tokenfoundry-registry-manifest", "format_version": 1, "name": name,
            "version": version, "created_at": "2026-01-01T00:00:00+00:00",
            "content_sha256": content_sha256(entries),
            "total_bytes": sum(len(v) for v in files.values()),
            "files": [e.model_dump() for e in entries]}


def tar_bundle(path: Path, manifest: dict, files: dict[str, bytes], top: str = "b-1") -> Path:
    """A .tar.gz bundle: ``<top>/manifest.json`` (``manifest`` as JSON) and ``files``."""
    import io
    import json
    import tarfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in [(f"{top}/manifest.json", json.dumps(manifest).encode()),
                           *((f"{top}/{k}", v) for k, v in files.items())]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def cli_publisher(uri: str, name: str, source: Path, **env: str):
    """``python -m tokenfoundry.flows.cli registry publish`` as a real process (stdout: JSON)."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "tokenfoundry.flows.cli", "registry", "--registry", uri,
         "publish", str(source), "--name", name, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def wait_until(cond, what: str, timeout: float = 120.0) -> None:
    """Poll ``cond`` (a state of the files, not a clock rendezvous) until true."""
    import time

    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
