"""A teacher ensemble that the label stage can use like one classifier (`label.teacher.members`).

Each member is a sequence classifier with its own tokenizer (members may come from different model
families), so the ensemble takes *texts* and tokenises them per member. A member may also be any object
with ``predict_texts(texts) -> logits [N, C]`` and ``fingerprint()`` (e.g. the TF-IDF baseline of a
blended teacher, teacher/blend.py): it is run as is, with no tokenizer. The combined output is returned
as logits whose softmax is the ensemble's distribution:

    prob:    p(c) = sum_m w_m softmax(z_m)(c)                   -> logits = log p
    logprob: log p(c) = sum_m w_m log_softmax(z_m)(c) - log Z   -> logits = sum_m w_m log_softmax(z_m)

(weights normalised to sum 1). `prob` is the usual mixture; `logprob` (a product of experts) is sharper
and lets a confident member overrule an unsure one. All members must carry the same label names in the
same order, else the soft labels would mix different classes: that is a ConfigError (exit 2).
"""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import torch

from zuoxiao.core.errors import ConfigError
from zuoxiao.core.evaluate import predict_logits


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


class EnsembleClassifier:
    """Weighted ensemble of (model, tokenizer) members. ``config`` carries num_labels/id2label/label2id."""

    def __init__(self, members: list[dict], label_names: list[str], combine: str = "prob", max_length: int = 128):
        """members: dicts with keys path, model, tokenizer, weight."""
        self.members = members
        self.label_names = list(label_names)
        self.combine = combine
        self.max_length = max_length
        self.blend: dict | None = None  # set by teacher.blend.load_blend: {baseline_weight, baseline_dir}
        self.config = SimpleNamespace(num_labels=len(label_names), id2label=dict(enumerate(label_names)),
                                      label2id={n: i for i, n in enumerate(label_names)})
        self.training = False

    def to(self, device) -> EnsembleClassifier:
        for m in self.members:
            m["model"].to(device)
        return self

    def eval(self) -> EnsembleClassifier:
        for m in self.members:
            m["model"].eval()
        return self

    def predict_texts(self, texts: list[str], max_length: int | None = None, batch_size: int = 64) -> np.ndarray:
        """texts -> ensemble logits [N, C] float32; each member tokenises the texts its own way."""
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        max_length = max_length or self.max_length
        per_member = [m["model"].predict_texts(texts, max_length, batch_size) if hasattr(m["model"], "predict_texts")
                      else predict_logits(m["model"], m["tokenizer"], texts, max_length, batch_size)
                      for m in self.members]
        return combine_logits(per_member, [m["weight"] for m in self.members], self.combine)

    def fingerprint(self) -> str:
        """Covers every member's weights and config, its weight in the average, and the combine rule."""
        from zuoxiao.teacher.model import fingerprint

        h = hashlib.sha256(json.dumps({"combine": self.combine, "labels": self.label_names}).encode())
        for m in self.members:
            h.update(f"{fingerprint(m['model'])}:{m['weight']!r}\0".encode())
        return h.hexdigest()[:16]


def load_ensemble(members, label_names: list[str] | None = None, combine: str = "prob", max_length: int = 128,
                  trust_remote_code: bool = False) -> EnsembleClassifier:
    """Load every member (a MemberSpec, {path, weight} or a path) with its own head and tokenizer.

    Members must be task-trained classifiers with identical label names; when ``label_names`` (the
    task's) is given, they must match it too. Any mismatch is a ConfigError naming each member's labels.
    A member dir holding blend.json (teacher/blend.py) joins as its transformer and its baseline, its
    weight split (1 - w, w) between them: with ``prob`` that is exactly the blend inside the mixture.
    """
    from zuoxiao.teacher.baseline import blend_members, read_blend
    from zuoxiao.teacher.model import label_names_of, load_classifier, load_tokenizer

    loaded = []
    for spec in members:
        if isinstance(spec, str):
            path, weight = spec, 1.0
        elif isinstance(spec, dict):
            path, weight = spec["path"], spec.get("weight", 1.0)
        else:
            path, weight = spec.path, spec.weight
        model = load_classifier(path, None, trust_remote_code)
        blend = read_blend(path)
        if blend is not None and combine != "prob":
            raise ConfigError(f"label.teacher.members: {path} is a blended teacher (blend.json), which mixes "
                              f"probabilities; combine={combine!r} cannot hold it: use combine: prob, or delete "
                              f"{path}/blend.json to use its transformer alone")
        tokenizer = load_tokenizer(path, trust_remote_code)
        if blend:
            loaded += blend_members(path, model, tokenizer, label_names_of(model), blend, float(weight))
        else:
            loaded.append({"path": path, "weight": float(weight), "model": model, "tokenizer": tokenizer,
                           "labels": label_names_of(model)})
    first = loaded[0]["labels"]
    differ = [m for m in loaded if m["labels"] != first]
    if differ:
        listing = "; ".join(f"{m['path']}: {m['labels']}" for m in loaded)
        raise ConfigError(f"label.teacher.members disagree on label names ({listing}); every member must be "
                          "trained on the same classes in the same order: re-fine-tune or drop the odd member")
    if label_names is not None and list(label_names) != first:
        raise ConfigError(f"task.label_names={list(label_names)} differ from the ensemble members' labels {first}; "
                          "fix task.label_names (or leave it null to take the members' labels)")
    return EnsembleClassifier(loaded, first, combine, max_length)
