"""One entry point from a TeacherSpec to a loaded teacher, whatever its kind (classifier, ensemble,
prompted causal LM), and the same teacher re-created to be measured on gold rows (EvalTeacher).

Kept apart from teacher.model (single classifiers) and teacher.ensemble (which builds on teacher.model)
so neither has to import the other's dispatcher. A teacher dir holding blend.json (a fine-tuned teacher
blended with its TF-IDF baseline, teacher/blend.py) loads as that blend wherever a dir is loaded to label
with or to re-create the labelling teacher (`load_teacher_dir`).
"""

from __future__ import annotations

import numpy as np

from zuoxiao.teacher.baseline import read_blend
from zuoxiao.teacher.blend import load_blend
from zuoxiao.teacher.ensemble import EnsembleClassifier, load_ensemble
from zuoxiao.teacher.model import fingerprint, load_classifier, load_tokenizer


def load_teacher_dir(path: str, label_names: list[str] | None = None, trust_remote_code: bool = False,
                     max_length: int = 128):
    """The teacher a directory holds: its classifier, or with blend.json the classifier blended with its
    saved TF-IDF baseline (an EnsembleClassifier whose ``blend`` says at what weight)."""
    record = read_blend(path)
    if record is not None:
        return load_blend(path, record, label_names, trust_remote_code, max_length)
    return load_classifier(path, label_names, trust_remote_code)


def load_teacher(spec, label_names: list[str] | None = None, cfg=None, path: str | None = None):
    """A TeacherSpec -> one classifier (``spec.path``), an EnsembleClassifier (``spec.members``) or, for
    kind causal_lm, an LLMTeacher (needs the whole ``cfg``: few-shot gold rows, calibration rows)."""
    if spec.kind == "causal_lm":
        if cfg is None or label_names is None:
            raise TypeError("load_teacher: a causal_lm teacher needs cfg and label_names")
        from zuoxiao.teacher.llm_teacher import build_llm_teacher

        return build_llm_teacher(cfg, label_names, path)
    if spec.members:
        return load_ensemble(spec.members, label_names, spec.combine, spec.max_length, spec.trust_remote_code)
    return load_teacher_dir(spec.path, label_names, spec.trust_remote_code, spec.max_length)


class EvalTeacher:
    """The labelling teacher, re-created to be measured on gold rows (train's metrics, compress's report).

    ``module`` is a torch module to time and count (the classifier; an LLM teacher's causal LM; an
    ensemble's first member), ``logits(texts)`` -> [N, C] float32 as the label stage computed them.
    """

    def __init__(self, model, tokenizer, max_length: int, kind: str):
        self.model, self.tokenizer, self.max_length, self.kind = model, tokenizer, max_length, kind
        self.fingerprint = fingerprint(model)
        if kind == "causal_lm":
            self.module = model.model
        elif kind == "ensemble":
            self.module, self.tokenizer = model.members[0]["model"], model.members[0]["tokenizer"]
        else:
            self.module = model

    def logits(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if self.kind != "classifier":
            return self.model.predict_texts(list(texts), self.max_length)
        from zuoxiao.core.evaluate import predict_logits

        return predict_logits(self.model, self.tokenizer, texts, self.max_length, batch_size, progress=progress)

    def params(self) -> int:
        mods = [m["model"] for m in self.model.members] if self.kind == "ensemble" else [self.module]
        # torch members only: a blend's TF-IDF baseline (teacher/blend.py) has no parameters to count
        return sum(p.numel() for m in mods if hasattr(m, "parameters") for p in m.parameters())


def load_eval_teacher(recorded: dict, label_names: list[str], trust_remote_code: bool = False) -> EvalTeacher:
    """The teacher that labelled, re-created from what the label stage recorded (the manifest's ``teacher``):
    the prompted LLM from its recipe (same prompt, examples and calibration prior), the ensemble of its
    members, or the classifier at its path (a fine-tuned one, LoRA-merged LLMs included; blended with its
    baseline when the dir holds blend.json). Nothing is read from the current config, so train and compress
    measure exactly the teacher that made the shards.
    """
    max_length = int(recorded.get("max_length") or 128)
    if recorded.get("llm_recipe"):
        from zuoxiao.teacher.llm_teacher import LLMTeacher

        teacher = LLMTeacher.from_recipe(recorded["llm_recipe"])
        return EvalTeacher(teacher, teacher.tokenizer, max_length, "causal_lm")
    if recorded.get("members"):
        ensemble = load_ensemble(recorded["members"], label_names, recorded.get("combine", "prob"), max_length,
                                 trust_remote_code)
        return EvalTeacher(ensemble, None, max_length, "ensemble")
    path = recorded["path"]
    model = load_teacher_dir(path, label_names, trust_remote_code, max_length)
    if isinstance(model, EnsembleClassifier):  # a blend: combined logits; the transformer is timed and counted
        return EvalTeacher(model, None, max_length, "ensemble")
    return EvalTeacher(model, load_tokenizer(path, trust_remote_code), max_length, "classifier")
