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
