"""One entry point from a TeacherSpec to a loaded teacher, whatever its kind.

Kept apart from teacher.model (single classifiers) and teacher.ensemble (which builds on teacher.model)
so neither has to import the other's dispatcher.
"""

from __future__ import annotations

from zuoxiao.teacher.ensemble import load_ensemble
from zuoxiao.teacher.model import load_classifier


def load_teacher(spec, label_names: list[str] | None = None):
    """A TeacherSpec -> one classifier (``spec.path``) or an EnsembleClassifier (``spec.members``)."""
    if spec.members:
        return load_ensemble(spec.members, label_names, spec.combine, spec.max_length, spec.trust_remote_code)
    return load_classifier(spec.path, label_names, spec.trust_remote_code)
