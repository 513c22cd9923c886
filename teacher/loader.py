"""One entry point from a TeacherSpec to a loaded teacher, whatever its kind (classifier, ensemble,
prompted causal LM), and the same teacher re-created to be measured on gold rows (EvalTeacher).

Kept apart from teacher.model (single classifiers) and teacher.ensemble (which builds on teacher.model)
so neither has to import the other's dispatcher.
"""

from __future__ import annotations

import numpy as np

from zuoxiao.teacher.ensemble import load_ensemble
from zuoxiao.teacher.model import fingerprint, load_classifier, load_tokenizer


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
    return load_classifier(spec.path, label_names, spec.trust_remote_code)


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
        return sum(p.numel() for m in mods for p in m.parameters())


def load_eval_teacher(recorded: dict, label_names: list[str], trust_remote_code: bool = False) -> EvalTeacher:
    """The teacher that labelled, re-created from what the label stage recorded (the manifest's ``teacher``):
    the prompted LLM from its recipe (same prompt, examples and calibration prior), the ensemble of its
    members, or the classifier at its path (a fine-tuned one, LoRA-merged LLMs included). Nothing is read
    from the current config, so train and compress measure exactly the teacher that made the shards.
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
    return EvalTeacher(load_classifier(path, label_names, trust_remote_code), load_tokenizer(path, trust_remote_code),
                       max_length, "classifier")
