"""A fine-tuned teacher blended with its TF-IDF baseline, loaded as one teacher.

finetune-teacher (teacher/finetune/blend_choice.py) keeps a blend only where it beats the transformer
alone on dev, and then writes it into the teacher dir:

    <teacher>/blend.json       {"baseline_weight": w, "combine": "prob", "baseline_dir": "baseline", ...}
    <teacher>/baseline/        TfidfBaseline.save (JSON + safetensors, no pickle)

Such a dir loads (`load_blend`) as an EnsembleClassifier of kind "blend" (teacher/ensemble.py) of the
transformer at weight 1 - w and a TfidfTeacher at w:

    p = (1 - w) softmax(z_teacher) + w p_baseline

so the mixture maths live in one place (ensemble.combine_logits) and the fingerprint covers the
baseline's files and the weight. As a member of an ensemble (label.teacher.members) the dir joins as the
same two members (`dir_members`), its weight split (1 - w, w) between them: with ``combine: prob`` that is
exactly the blend inside the mixture. The transformer's own files are untouched: `from_teacher` students
and anything calling load_classifier on the dir still get the transformer alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.teacher.classifier import ClassifierTeacher
from zuoxiao.teacher.ensemble import EnsembleClassifier, Member, combine_logits
from zuoxiao.teacher.tfidf import TfidfTeacher, baseline_logits

#: A blended teacher dir: <teacher>/blend.json and the baseline in <teacher>/baseline/.
BLEND_FILE, BASELINE_DIR = "blend.json", "baseline"


def blend_logits(teacher_logits: np.ndarray, baseline_proba: np.ndarray, weight: float) -> np.ndarray:
    """log((1 - w) softmax(z) + w p_baseline) [N, C]; w = 0 is the transformer's own log-softmax."""
    z = np.asarray(teacher_logits, dtype=np.float32)
    if weight <= 0:
        return combine_logits([z], [1.0], "prob")
    return combine_logits([z, baseline_logits(baseline_proba)], [1.0 - weight, weight], "prob")


def read_blend(teacher_dir: str | Path) -> dict | None:
    """<teacher>/blend.json as a dict, None when the dir holds no blend (or ``teacher_dir`` is an embedded
    model name); a damaged file is an InputError."""
    if str(teacher_dir).startswith("embedded"):
        return None
    p = Path(teacher_dir).expanduser() / BLEND_FILE
    if not p.is_file():
        return None
    try:
        rec = json.loads(p.read_text())
        w = float(rec["baseline_weight"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{p} is damaged ({type(err).__name__}: {err}); re-run `zuoxiao finetune-teacher`, or "
                         "delete it to label with the transformer alone") from None
    if not 0 < w < 1 or rec.get("combine", "prob") != "prob":
        raise InputError(f"{p}: baseline_weight={w} must lie in (0, 1) and combine must be 'prob'; re-run "
                         "`zuoxiao finetune-teacher`, or delete it to label with the transformer alone")
    return {**rec, "baseline_weight": w}


def _blend_members(path: str, transformer: ClassifierTeacher, record: dict, weight: float = 1.0) -> list[Member]:
    """A blended teacher dir as two members: its transformer at ``weight`` x (1 - w) and its saved baseline
    at ``weight`` x w, w = ``record``'s baseline_weight."""
    base_dir = Path(path).expanduser() / record.get("baseline_dir", BASELINE_DIR)
    baseline = TfidfTeacher.load(base_dir)
    names = transformer.label_names
    if baseline.baseline.num_classes != len(names):
        raise InputError(f"the baseline in {base_dir} has {baseline.baseline.num_classes} classes, the teacher at "
                         f"{path} {len(names)} ({names}); re-run `zuoxiao finetune-teacher` to write both again")
    w = record["baseline_weight"]
    return [Member(path, weight * (1 - w), transformer, names), Member(str(base_dir), weight * w, baseline, names)]


def dir_members(path: str, weight: float, max_length: int, combine: str, trust_remote_code: bool = False
                ) -> list[Member]:
    """One ensemble member dir (label.teacher.members) -> its member(s): the task-trained classifier with its
    own head (label names checked by ensemble.check_labels), or the two parts of a blended dir."""
    transformer = ClassifierTeacher.load(path, None, max_length, trust_remote_code)
    blend = read_blend(path)
    if blend is None:
        return [Member(path, float(weight), transformer, transformer.label_names)]
    if combine != "prob":
        raise ConfigError(f"label.teacher.members: {path} is a blended teacher (blend.json), which mixes "
                          f"probabilities; combine={combine!r} cannot hold it: use combine: prob, or delete "
                          f"{path}/blend.json to use its transformer alone")
    return _blend_members(path, transformer, blend, float(weight))


def load_blend(path: str, label_names: list[str] | None = None, max_length: int = 128,
               trust_remote_code: bool = False) -> EnsembleClassifier:
    """The transformer at ``path`` and its saved baseline, mixed at the weight blend.json records."""
    record = read_blend(path)
    transformer = ClassifierTeacher.load(path, label_names, max_length, trust_remote_code)
    members = _blend_members(str(path), transformer, record)
    ensemble = EnsembleClassifier(members, transformer.label_names, "prob", max_length, kind="blend", path=path)
    ensemble.blend = {"baseline_weight": record["baseline_weight"], "baseline_dir": members[1].path}
    return ensemble
