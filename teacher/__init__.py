"""Teachers: what a teacher is (`Teacher`), what to load (`TeacherSource`) and the one loader (`load_teacher`).

Five kinds, one module each: a sequence classifier (teacher/classifier.py), an ensemble of them
(teacher/ensemble.py), a fine-tuned classifier blended with its TF-IDF baseline (teacher/blend.py,
teacher/tfidf.py), a prompted causal LM (teacher/llm/) and the same prompt sent to a served LLM
(teacher/endpoint.py, label.teacher.kind: endpoint). The fine-tune that makes a classifier teacher
lives in teacher/finetune/. The label stage (pipelines/label.py, its Beam handler pipelines/handler.py),
the train stage's teacher agreement, compress's teacher record and the benchmarks all load through
`load_teacher`; the kind is decided once, in `TeacherSource` (`of_spec` from the config, `of_record` from
what the label stage recorded in the manifest).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np


class Teacher(Protocol):
    """What every teacher kind offers.

    ``label_names``: its classes in logit order; ``max_length``: tokens it reads per row; ``tokenizer``:
    the one the label stage groups rows by (an ensemble's: its first member's); ``module``: a torch module
    to time and count (a classifier itself, an ensemble's or a blend's first member, an LLM's causal LM);
    ``repr_dim``: the width of ``predict_with_repr``'s representation, None when it offers none (an LLM).
    """

    kind: str
    label_names: list[str]
    max_length: int
    tokenizer: Any
    module: Any
    repr_dim: int | None

    def predict_texts(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """texts -> logits [N, C] float32 (their softmax is the teacher's label distribution)."""

    def predict_batch(self, input_ids: list[list[int]], texts: list[str]) -> np.ndarray:
        """One label-stage batch: rows tokenised by ``tokenizer`` and their texts -> logits [B, C]."""

    def predict_with_repr(self, input_ids: list[list[int]], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Logits [B, C] and the sentence representation [B, repr_dim] (label.store_representation)."""

    def fingerprint(self) -> str:
        """16 hex chars over everything that decides its outputs (the teacher cache is keyed by it)."""

    def record(self) -> dict:
        """The manifest's ``teacher`` lineage: path, resolved, fingerprint, max_length and the kind's own keys
        (members + combine, blend, or the LLM's recipe), enough for `TeacherSource.of_record`."""

    def params(self) -> int:
        """Parameters (a TF-IDF baseline counts 0)."""

    def to(self, device) -> Teacher:
        """Moves its torch modules to ``device``; returns itself."""


@dataclass(frozen=True)
class TeacherSource:
    """What to load, typed once: the kind and everything its builder needs (trust_remote_code included).

    kind: "classifier" (``path``), "blend" (a ``path`` holding blend.json), "ensemble" (``members``: {path,
    weight} dicts, ``combine``), "causal_lm" (``recipe`` to rebuild it, or ``llm`` + ``examples`` +
    ``prior_texts`` to build it: the label stage's launcher, teacher/llm/teacher.py), "endpoint" (the same,
    for a served LLM: teacher/endpoint.py; its recipe names the API key's environment variable, never the key).
    """

    kind: str
    path: str
    max_length: int = 128
    trust_remote_code: bool = False
    members: tuple = ()
    combine: str = "prob"
    recipe: dict | None = None
    spec: Any = None  # the TeacherSpec a causal_lm / endpoint teacher is built from (llm, endpoint settings)
    examples: tuple = ()
    prior_texts: tuple = field(default=(), repr=False)

    @classmethod
    def of_spec(cls, spec, path: str | None = None) -> TeacherSource:
        """A TeacherSpec (label.teacher) with its model at ``path`` (default: spec.path, an ensemble's first
        member; the label stage passes the fine-tuned teacher's dir). A causal_lm source still needs its
        few-shot examples and prior rows: ``with_llm_inputs``."""
        path = path or (spec.members[0].path if spec.members else spec.path)
        common = {"path": path, "max_length": spec.max_length, "trust_remote_code": spec.trust_remote_code}
        if spec.kind in ("causal_lm", "endpoint"):
            return cls(spec.kind, spec=spec, **common)
        if spec.members:
            return cls("ensemble", members=tuple(m.model_dump() for m in spec.members), combine=spec.combine,
                       **common)
        return cls(_dir_kind(path), **common)

    @classmethod
    def of_record(cls, record: dict, trust_remote_code: bool = False) -> TeacherSource:
        """The teacher the label stage recorded (the manifest's ``teacher``): the LLM from its recipe, the
        ensemble of its members, or the dir at its path (blended when it holds blend.json). Nothing is read
        from the current config but ``trust_remote_code``, so later stages measure the teacher that labelled."""
        common = {"path": record["path"], "max_length": int(record.get("max_length") or 128),
                  "trust_remote_code": trust_remote_code}
        if record.get("llm_recipe"):
            return cls("causal_lm", recipe=record["llm_recipe"], **common)
        if record.get("endpoint_recipe"):
            return cls("endpoint", recipe=record["endpoint_recipe"], **common)
        if record.get("members"):
            return cls("ensemble", members=tuple(record["members"]), combine=record.get("combine", "prob"), **common)
        return cls(_dir_kind(record["path"]), **common)

    def with_llm_inputs(self, examples: list, prior_texts: list[str] | None) -> TeacherSource:
        return replace(self, examples=tuple(tuple(e) for e in examples), prior_texts=tuple(prior_texts or ()))


def _dir_kind(path: str) -> str:
    from zuoxiao.teacher.blend import read_blend

    return "blend" if read_blend(path) is not None else "classifier"


def _classifier(src: TeacherSource, label_names):
    from zuoxiao.teacher.classifier import ClassifierTeacher

    return ClassifierTeacher.load(src.path, label_names, src.max_length, src.trust_remote_code)


def _blend(src: TeacherSource, label_names):
    from zuoxiao.teacher.blend import load_blend

    return load_blend(src.path, label_names, src.max_length, src.trust_remote_code)


def _ensemble(src: TeacherSource, label_names):
    from zuoxiao.teacher.blend import dir_members
    from zuoxiao.teacher.ensemble import EnsembleClassifier, check_labels

    members = [m for spec in src.members
               for m in dir_members(spec["path"], spec.get("weight", 1.0), src.max_length, src.combine,
                                    src.trust_remote_code)]
    names = check_labels(members, label_names)
    return EnsembleClassifier(members, names, src.combine, src.max_length, path=src.path, specs=list(src.members))


def _causal_lm(src: TeacherSource, label_names):
    from zuoxiao.teacher.llm.teacher import LLMTeacher, build_llm_teacher

    if src.recipe is not None:  # a worker's or a later stage's copy: exactly the launcher's prompt and prior
        return LLMTeacher.from_recipe(src.recipe)
    if label_names is None:
        raise TypeError("load_teacher: building a causal_lm teacher needs its label_names")
    return build_llm_teacher(src.spec, label_names, src.path, list(src.examples), list(src.prior_texts))


def _endpoint(src: TeacherSource, label_names):
    from zuoxiao.teacher.endpoint import EndpointTeacher, build_endpoint_teacher

    if src.recipe is not None:  # a worker's or a later stage's copy: the launcher's prompt, prior, server id
        return EndpointTeacher.from_recipe(src.recipe)
    if label_names is None:
        raise TypeError("load_teacher: building an endpoint teacher needs its label_names")
    return build_endpoint_teacher(src.spec, label_names, src.path, list(src.examples), list(src.prior_texts))


def load_teacher(source: TeacherSource, label_names: list[str] | None = None) -> Teacher:
    """The teacher ``source`` describes. ``label_names`` (the task's): a classifier without a matching head
    gets a new seeded one of that size; ensemble members must carry exactly these names."""
    builder = {"classifier": _classifier, "blend": _blend, "ensemble": _ensemble, "causal_lm": _causal_lm,
               "endpoint": _endpoint}[source.kind]
    return builder(source, label_names)
