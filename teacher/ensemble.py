"""A teacher ensemble that the label stage can use like one classifier (`label.teacher.members`).

Each member is a teacher of its own: a ClassifierTeacher (teacher/classifier.py) with its own tokenizer
(members may come from different model families), or the TfidfTeacher of a blended teacher dir
(teacher/tfidf.py, teacher/blend.py). So the ensemble takes *texts* and every member tokenises them its
own way. The combined output is returned as logits whose softmax is the ensemble's distribution:

    prob:    p(c) = sum_m w_m softmax(z_m)(c)                   -> logits = log p
    logprob: log p(c) = sum_m w_m log_softmax(z_m)(c) - log Z   -> logits = sum_m w_m log_softmax(z_m)

(weights normalised to sum 1). `prob` is the usual mixture; `logprob` (a product of experts) is sharper
and lets a confident member overrule an unsure one. All members must carry the same label names in the
same order, else the soft labels would mix different classes: that is a ConfigError (exit 2).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zuoxiao.core.errors import ConfigError
from zuoxiao.teacher.classifier import resolve_model_path


def combine_logits(logits: list[np.ndarray], weights: list[float], combine: str) -> np.ndarray:
    """Member logits (each [N, C]) -> ensemble logits [N, C] float32 (see the module docstring)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    logps = [torch.log_softmax(torch.as_tensor(z, dtype=torch.float64), -1) for z in logits]
    if combine == "prob":
        stacked = torch.stack([lp + float(np.log(wi)) for lp, wi in zip(logps, w, strict=True)])  # [M, N, C]
        out = torch.logsumexp(stacked, 0)
    elif combine == "logprob":
        out = sum(float(wi) * lp for lp, wi in zip(logps, w, strict=True))
        out = out - torch.logsumexp(out, -1, keepdim=True)
    else:
        raise ConfigError(f"teacher.combine={combine!r} is not one of prob, logprob")
    return out.float().numpy()


@dataclass
class Member:
    """One member: its dir (or the baseline's), its weight, the teacher that runs it, its label names."""

    path: str
    weight: float
    teacher: Any  # ClassifierTeacher or TfidfTeacher: predict_texts, fingerprint, params, to
    labels: list[str]


class EnsembleClassifier:
    """Weighted ensemble of member teachers (zuoxiao.teacher.Teacher). ``kind`` is "ensemble" for
    label.teacher.members, "blend" for a fine-tuned teacher dir blended with its TF-IDF baseline
    (teacher/blend.py: then ``blend`` holds {baseline_weight, baseline_dir})."""

    def __init__(self, members: list[Member], label_names: list[str], combine: str = "prob", max_length: int = 128,
                 kind: str = "ensemble", path: str | None = None, specs: list[dict] | None = None):
        """``path``: the dir that names the teacher (the first member's); ``specs``: the configured
        {path, weight} members, recorded in the manifest (a blended member dir counts once there)."""
        self.members, self.label_names = members, list(label_names)
        self.combine, self.max_length, self.kind = combine, max_length, kind
        self.path = path or members[0].path
        self.specs = specs
        self.blend: dict | None = None
        first = members[0].teacher  # always a transformer: a blended dir lists its transformer first
        self.module, self.tokenizer, self.repr_dim = first.module, first.tokenizer, first.repr_dim

    def to(self, device) -> EnsembleClassifier:
        for m in self.members:
            m.teacher.to(device)
        return self

    def predict_texts(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """texts -> ensemble logits [N, C] float32; each member tokenises the texts its own way."""
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        per_member = [m.teacher.predict_texts(list(texts), batch_size) for m in self.members]
        return combine_logits(per_member, [m.weight for m in self.members], self.combine)

    def predict_batch(self, input_ids: list[list[int]], texts: list[str]) -> np.ndarray:
        return self.predict_texts(texts)  # the ids are the first member's; every member tokenises its own way

    def predict_with_repr(self, input_ids: list[list[int]], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The combined logits [B, C] and the FIRST member's representation [B, D] (members may differ in
        width, so a mean is not defined); that member runs a second time on its own tokenisation."""
        rep = self.members[0].teacher.represent_texts(texts)
        return self.predict_texts(texts), rep

    def fingerprint(self) -> str:
        """Covers every member's weights and config, its weight in the average, and the combine rule."""
        h = hashlib.sha256(json.dumps({"combine": self.combine, "labels": self.label_names}).encode())
        for m in self.members:
            h.update(f"{m.teacher.fingerprint()}:{m.weight!r}\0".encode())
        return h.hexdigest()[:16]

    def params(self) -> int:
        return sum(m.teacher.params() for m in self.members)  # a TF-IDF baseline counts 0

    def record(self) -> dict:
        out = {"path": self.path, "resolved": resolve_model_path(self.path), "fingerprint": self.fingerprint(),
               "max_length": self.max_length}
        if self.kind == "blend":
            return {**out, "blend": self.blend}
        return {**out, "members": self.specs, "combine": self.combine}


def check_labels(members: list[Member], label_names: list[str] | None) -> list[str]:
    """The members' common label names; a ConfigError naming each member's labels when they differ, or when
    they differ from the task's ``label_names``."""
    first = members[0].labels
    if any(m.labels != first for m in members):
        listing = "; ".join(f"{m.path}: {m.labels}" for m in members)
        raise ConfigError(f"label.teacher.members disagree on label names ({listing}); every member must be "
                          "trained on the same classes in the same order: re-fine-tune or drop the odd member")
    if label_names is not None and list(label_names) != first:
        raise ConfigError(f"task.label_names={list(label_names)} differ from the ensemble members' labels {first}; "
                          "fix task.label_names (or leave it null to take the members' labels)")
    return first
