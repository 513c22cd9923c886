"""The label stage's teacher in the launching process: which dir names it, what every worker loads.

The launcher loads the teacher once, for its fingerprint and its record (the manifest's ``teacher``); an
LLM teacher's (in-process or served, label.teacher.kind: endpoint) few-shot examples are drawn and its
calibration prior fitted here, once, from the view's gold sources. Workers (pipelines/handler.py), train and compress rebuild it from that record.
"""

from __future__ import annotations

import logging
from pathlib import Path

from zuoxiao.core.config.views import LabelView
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.goldsets import require_prepared
from zuoxiao.core.paths import StagePaths
from zuoxiao.teacher import Teacher, TeacherSource, load_teacher

log = logging.getLogger(__name__)


def check_inputs(view: LabelView) -> None:
    lc = view.label
    if lc.input is None:
        raise ConfigError("label.input is missing: give the task rows to label, e.g. --set label.input.path=data.jsonl")
    require_prepared(lc.input, "label.input")
    for i, extra in enumerate(lc.extra_inputs):
        require_prepared(extra, f"label.extra_inputs[{i}]")


def teacher_path_of(view: LabelView, teacher_path: str | None) -> str:
    """The dir the label stage's teacher is named by: the fine-tuned one (finetune: set), else label.teacher.path,
    an ensemble's first member (its tokenizer groups rows by length; each member re-tokenises the text)."""
    members = view.label.teacher.members
    if view.label.teacher.kind == "endpoint" and view.finetuned:
        raise ConfigError("label.teacher.kind=endpoint but finetune is set (the label stage would use the fine-tuned "
                          "teacher): remove finetune, or fine-tune a local teacher instead")
    if members and view.finetuned:
        raise ConfigError("label.teacher.members and finetune are both set, and the label stage uses the fine-tuned "
                          "teacher: remove one (ensemble fine-tuned teachers by listing their directories as members)")
    if teacher_path is None and view.finetuned:
        teacher_path = str(StagePaths(Path(view.output_dir)).teacher)
        if not (Path(teacher_path) / "config.json").is_file():
            raise InputError(
                f"the config fine-tunes a teacher (finetune: is set) but {teacher_path} holds none yet: run "
                "`zuoxiao finetune-teacher CONFIG` first, or `zuoxiao run CONFIG`, or --set finetune=null "
                "to label with label.teacher.path"
            )
    teacher_path = teacher_path or view.label.teacher.path
    return members[0].path if members and teacher_path == view.label.teacher.path else teacher_path


def teacher_source(view: LabelView, teacher_path: str, label_names: list[str]) -> TeacherSource:
    """label.teacher at ``teacher_path``; an LLM teacher (causal_lm, endpoint) gets its few-shot examples and
    calibration rows here."""
    spec = view.label.teacher
    source = TeacherSource.of_spec(spec, teacher_path)
    if source.kind not in ("causal_lm", "endpoint"):
        return source
    from zuoxiao.teacher.llm.teacher import gold_examples, sample_texts

    lc = view.label
    sources = {"finetune": None,  # (never set here: an LLM teacher with finetune: is a config error)
               "task_dev": view.dev, "label_input": lc.input if lc.input and lc.input.label_column else None}
    examples = gold_examples(spec.llm, sources, label_names)
    prior = sample_texts(lc.input, spec.llm.prior_rows, view.seed) if spec.llm.calibration == "prior" else None
    return source.with_llm_inputs(examples, prior)


def launch_teacher(view: LabelView, teacher_path: str, label_names: list[str]) -> Teacher:
    """The teacher, loaded in this process only for its fingerprint and record (an LLM's examples drawn and
    prior fitted once); every worker loads its own copy from the record (workers share no memory with it)."""
    teacher = load_teacher(teacher_source(view, teacher_path, label_names), label_names)
    if teacher.kind == "blend":
        w = teacher.blend["baseline_weight"]
        log.info("label: the teacher is blended with its TF-IDF baseline at weight %g (%s/blend.json): "
                 "p = %g softmax(teacher) + %g p_baseline", w, teacher_path, 1 - w, w)
    if view.label.store_representation and not teacher.repr_dim:
        raise ConfigError(f"label.store_representation: a {teacher.kind} teacher offers no sentence representation "
                          "(no hidden size); set label.store_representation=false")
    return teacher
