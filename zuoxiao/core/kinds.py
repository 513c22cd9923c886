"""Which stage handles which task.kind (docs/task_kinds.md), and the one check that refuses the rest.

The config, the readers (zuoxiao.core.rowpolicy.task_row), `zuoxiao validate --data` and the metrics know
every kind; the stages are wired one at a time. Until a stage is, a run of another kind must stop
before any data is read or model loaded, naming the stage, instead of failing deep inside it (or,
worse, running: a pair task would train on its first text alone). Wiring a stage for a kind = add the
kind to the stage's entry here.
"""

from __future__ import annotations

from zuoxiao.core.errors import ConfigError

KINDS = ("single_label", "pair", "multi_label", "token", "regression")

#: stage -> the task kinds it handles end to end today.
SUPPORTED_BY = {
    "finetune": ("single_label",),
    "label": ("single_label",),
    "train": ("single_label",),
    "compress": ("single_label",),
    "ship": ("single_label",),
}


def require_supported(kind: str, stages: list[str]) -> None:
    """ConfigError (exit 2) naming the first of ``stages`` that does not handle ``kind`` yet."""
    for stage in stages:
        if kind not in SUPPORTED_BY[stage]:
            raise ConfigError(
                f"task.kind {kind} is not yet supported by the {stage} stage (it handles "
                f"{', '.join(SUPPORTED_BY[stage])}); `zuoxiao validate CONFIG --data` checks data of this kind, "
                "the stages are wired one at a time (docs/task_kinds.md)"
            )
