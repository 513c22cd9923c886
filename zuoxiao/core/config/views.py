"""What each stage may read of the config: one small frozen view per stage.

A stage function takes its view, not the whole Config, so its signature says what it depends on and
an attempt to read another section fails at once (AttributeError) instead of silently coupling stages.
The runner fingerprints exactly the view a stage receives (``fingerprint_json``), so a setting a stage
reads can never be left out of its fingerprint, and a setting it does not read never invalidates it.

    view = TrainView.of(cfg)      # task, train, label.teacher, seed
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from zuoxiao.core.config.base import TaskConfig, TeacherSpec
from zuoxiao.core.config.compress import CompressConfig
from zuoxiao.core.config.ship import ShipConfig
from zuoxiao.core.config.train import TrainConfig


@dataclass(frozen=True)
class _View:
    def fingerprint_json(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.model_dump(mode="json") if hasattr(v, "model_dump") else v
        if isinstance(out.get("teacher"), dict):  # threads change speed, never results
            out["teacher"].pop("num_threads", None)
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
