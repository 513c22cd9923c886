"""Typed results of the five stages: what each returns, what `.done.json` records, what the run summary reads.

The real stages and the test fakes return these same classes, so a key the summary reads either exists
on both or fails both. ``to_json``/``from_json`` round-trip through the JSON of `.done.json`; unknown
keys are ignored on the way back so an older record still loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class StageResult:
    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict | None):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


@dataclass
class FinetuneResult(StageResult):
    teacher_dir: str = ""
    accuracy: float | None = None  # on the fine-tune's own held-out rows (task.dev or a split)
    baseline_accuracy: float | None = None  # TF-IDF + logistic regression on the same rows, when measured
    eval_source: str | None = None
    metrics: dict = field(default_factory=dict)  # teacher/metrics.json as written


@dataclass
class LabelResult(StageResult):
    label_dir: str = ""
    read: int = 0
    labeled: int = 0
    rejected: int = 0
    rejected_by_reason: dict = field(default_factory=dict)
    shards: int = 0
    cache_hits: int | None = None
    cache_misses: int | None = None
    teacher_seconds: float | None = None


@dataclass
class TrainResult(StageResult):
    student_dir: str = ""
    teacher_accuracy: float | None = None  # task.eval
    student_accuracy: float | None = None  # task.eval
    agreement: float | None = None  # student vs teacher predictions on task.eval
    baseline_accuracy: float | None = None
    metrics: dict = field(default_factory=dict)  # student/metrics.json as written


@dataclass
class CompressResult(StageResult):
    report: str = ""  # compress/report.json
    final_step: str = ""
    final_accuracy: float | None = None  # the last step's model, measured in PyTorch or ONNX Runtime
    teacher_accuracy: float | None = None
    steps: list = field(default_factory=list)  # one record per step: name, accuracy, bytes, latency_ms ...


@dataclass
class ShipResult(StageResult):
    bundle: str | None = None  # None when the gate refused to publish
    passed: bool = False
    accuracy: float | None = None  # the bundle through its own runtime, task.eval
    teacher_accuracy: float | None = None
    student_accuracy: float | None = None
    baseline_accuracy: float | None = None
    retention: float | None = None
    size_mb: float | None = None
    latency_ms_p50: float | None = None
    gate: dict = field(default_factory=dict)  # {"passed", "checks": [...], "message"}


RESULT_TYPES: dict[str, type[StageResult]] = {
    "finetune": FinetuneResult, "label": LabelResult, "train": TrainResult,
    "compress": CompressResult, "ship": ShipResult,
}
