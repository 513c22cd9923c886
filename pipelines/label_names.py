"""Which classes the label stage uses: the task's names, a task-trained teacher's, or the data's."""

from __future__ import annotations

import logging
from pathlib import Path

from zuoxiao.core.config.views import LabelView
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.rows import normalize_label

log = logging.getLogger(__name__)


def _generic(names: list[str]) -> bool:
    """LABEL_0, LABEL_1 ... are what transformers invents for an untrained head."""
    return all(n == f"LABEL_{i}" for i, n in enumerate(names))


def resolve_label_names(view: LabelView, teacher_path: str, files: list[tuple[str, str]]) -> tuple[list[str], str]:
    """task.label_names, else a task-trained teacher's id2label, else the sorted distinct gold labels.

    Returns (names, where they came from). The automatic map scans the label column of the input
    (local files) before the pipeline starts: the teacher's head size must be known to build it.
    """
    from transformers import AutoConfig

    from zuoxiao.teacher.classifier import resolve_model_path

    tcfg = AutoConfig.from_pretrained(resolve_model_path(teacher_path),
                                      trust_remote_code=view.label.teacher.trust_remote_code)
    teacher_names = [str(tcfg.id2label[i]) for i in range(tcfg.num_labels)] if tcfg.id2label else []
    trained = bool(teacher_names) and not _generic(teacher_names)
    if view.label_names:
        names = list(view.label_names)
        if trained and len(teacher_names) != len(names):
            raise ConfigError(
                f"task.label_names has {len(names)} classes {names} but the teacher {teacher_path!r} was "
                f"trained on {len(teacher_names)} {teacher_names}; fix task.label_names or use another teacher"
            )
        if trained and teacher_names != names:
            log.warning("teacher labels %s differ from task.label_names %s; using task.label_names in that "
                        "order (check the class order matches)", teacher_names, names)
        return names, "task.label_names"
    if trained:
        return teacher_names, "teacher"
    src = view.label.input
    if src.label_column is None:
        raise ConfigError("task.label_names is null, the teacher has no task labels and label.input has no "
                          "label_column: set task.label_names: [name0, name1, ...]")
    from zuoxiao.core.datasource import iter_rows

    seen: set[str] = set()
    for path, fmt in files:
        if "://" in path:
            raise ConfigError(f"automatic label names need local input, not {path!r}; set task.label_names")
        # The pipeline's own parser and label normalisation: the map holds exactly the labels the
        # Validate step will look up. Malformed rows are skipped here (the pipeline dead-letters them).
        for r in iter_rows(Path(path), fmt):
            if not r["error"]:
                label = normalize_label(r["row"].get(src.label_column))
                if label is not None:
                    seen.add(label)
    if len(seen) < 2:
        raise InputError(
            f"automatic label map: found {len(seen)} distinct label(s) {sorted(seen)} in column "
            f"{src.label_column!r} of {src.paths}; need 2 or more, or set task.label_names"
        )
    return sorted(seen), "auto"
