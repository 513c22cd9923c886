"""What each stage may read of the config: one small frozen view per stage.

Every stage function (finetune, label, train, compress, ship) takes its view, not the whole Config, so
its signature says what it depends on and an attempt to read another section fails at once
(AttributeError) instead of silently coupling stages. The runner fingerprints exactly the view a stage
receives (``fingerprint_json``), so a setting a stage reads can never be left out of its fingerprint, and
a setting it does not read never invalidates it. Left out of it: what changes speed but never results
(teacher threads, the Beam runner and its options) and what a stage only records or where it writes
(``UNHASHED`` fields).

    view = TrainView.of(cfg)      # task, train, label.teacher, seed
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from zuoxiao.core.config.base import DataSource, TaskConfig, TeacherSpec
from zuoxiao.core.config.compress import CompressConfig
from zuoxiao.core.config.label import LabelConfig
from zuoxiao.core.config.ship import ShipConfig
from zuoxiao.core.config.train import FinetuneConfig, TrainConfig


def _dump(v):
    return v.model_dump(mode="json") if hasattr(v, "model_dump") else v


@dataclass(frozen=True)
class _View:
    #: fields the fingerprint leaves out (recorded or used to find paths, never changing results)
    UNHASHED = ()

    def fingerprint_json(self) -> dict:
        out = {f.name: _dump(getattr(self, f.name)) for f in fields(self) if f.name not in self.UNHASHED}
        for teacher in (out.get("teacher"), (out.get("label") or {}).get("teacher"),
                        (out.get("finetune") or {}).get("teacher")):
            if isinstance(teacher, dict):  # threads (a served teacher's requests in flight) change speed, never results
                teacher.pop("num_threads", None)
                if isinstance(teacher.get("endpoint"), dict):
                    teacher["endpoint"].pop("concurrency", None)
        return out


@dataclass(frozen=True)
class FinetuneView(_View):
    """The teacher fine-tune: its recipe, the gold sets (train, dev selects, eval reports), the seed."""

    task: TaskConfig
    finetune: FinetuneConfig
    seed: int

    @classmethod
    def of(cls, cfg) -> FinetuneView:
        return cls(task=cfg.task, finetune=cfg.finetune, seed=cfg.seed)


@dataclass(frozen=True)
class LabelView(_View):
    """The label stage: its section, the task's label names, an LLM teacher's gold sources, the seed."""

    label: LabelConfig
    label_names: list[str] | None  # task.label_names
    dev: DataSource | None  # task.dev: gold rows an LLM teacher may take its few-shot examples from
    seed: int  # draws an LLM teacher's calibration rows
    finetuned: bool  # finetune: is set, so the stage labels with the fine-tuned teacher (<output_dir>/teacher)
    output_dir: str  # where the fine-tuned teacher is found by default (StagePaths)
    cache_max_rows: int  # run.cache.max_rows: the teacher cache is trimmed to it after the run
    resolved: dict = field(repr=False)  # the whole resolved config, recorded beside the shards (never read)
    UNHASHED = ("output_dir", "cache_max_rows", "resolved")

    @classmethod
    def of(cls, cfg) -> LabelView:
        return cls(label=cfg.label, label_names=cfg.task.label_names, dev=cfg.task.dev, seed=cfg.seed,
                   finetuned=cfg.finetune is not None, output_dir=cfg.output_dir,
                   cache_max_rows=cfg.run.cache.max_rows, resolved=cfg.model_dump(mode="json"))

    def fingerprint_json(self) -> dict:
        out = super().fingerprint_json()
        out["label"].pop("beam", None)  # where and how parallel it runs never changes the labels
        return out


@dataclass(frozen=True)
class TrainView(_View):
    """The train stage: the student recipe, the gold sets, and how to run the teacher on task.eval."""

    task: TaskConfig
    train: TrainConfig
    teacher: TeacherSpec  # label.teacher: max_length and trust_remote_code for the teacher's eval pass
    seed: int

    @classmethod
    def of(cls, cfg) -> TrainView:
        return cls(task=cfg.task, train=cfg.train, teacher=cfg.label.teacher, seed=cfg.seed)


@dataclass(frozen=True)
class CompressView(_View):
    """The compress stage: its steps and measurement settings; train's recipe for recovery distillation."""

    task: TaskConfig
    compress: CompressConfig
    train: TrainConfig  # max_length default, loss and batch settings of the recover step
    teacher: TeacherSpec  # to measure the teacher on task.eval
    seed: int

    @classmethod
    def of(cls, cfg) -> CompressView:
        return cls(task=cfg.task, compress=cfg.compress, train=cfg.train, teacher=cfg.label.teacher, seed=cfg.seed)

    @property
    def train_view(self) -> TrainView:
        """What the recover step's distillation pass reads (the same loop as the train stage)."""
        return TrainView(task=self.task, train=self.train, teacher=self.teacher, seed=self.seed)


@dataclass(frozen=True)
class ShipView(_View):
    """The ship stage: the gate, the gold sets (dev calibrates, eval measures), measurement settings."""

    task: TaskConfig
    ship: ShipConfig
    compress: CompressConfig  # eval_batch_size and latency settings the bundle is measured with
    seed: int

    @classmethod
    def of(cls, cfg) -> ShipView:
        return cls(task=cfg.task, ship=cfg.ship, compress=cfg.compress, seed=cfg.seed)
