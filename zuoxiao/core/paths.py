"""Where each stage reads and writes, for stand-alone stage commands and for `zuoxiao run`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StagePaths:
    """Stage directories under one root: <output_dir>/ for stage commands, <run dir>/ for `zuoxiao run`."""

    root: Path

    @property
    def teacher(self) -> Path:  # finetune-teacher output (a save_pretrained dir)
        return self.root / "teacher"

    @property
    def label(self) -> Path:  # soft-label shards + manifest
        return self.root / "label"

    @property
    def student(self) -> Path:  # trained, merged student (save_pretrained dir)
        return self.root / "student"

    @property
    def compress(self) -> Path:  # per-step models, report, Pareto plot
        return self.root / "compress"

    @property
    def ship(self) -> Path:  # the ship stage's record: what was measured and the gate verdict
        return self.root / "ship"

    @property
    def bundle(self) -> Path:  # what app teams get (published only when the gate passes)
        return self.root / "bundle"


@dataclass(frozen=True)
class ExportPaths(StagePaths):
    """`zuoxiao export --run`: read the stage outputs of a run folder (``source``), write ship/ and bundle/
    under ``root`` (the output dir), so an export never rewrites a run's recorded outputs or its bundle
    (which `latest` may point at)."""

    source: Path | None = None

    def _src(self) -> Path:
        return self.source if self.source is not None else self.root

    @property
    def teacher(self) -> Path:
        return self._src() / "teacher"

    @property
    def label(self) -> Path:
        return self._src() / "label"

    @property
    def student(self) -> Path:
        return self._src() / "student"

    @property
    def compress(self) -> Path:
        return self._src() / "compress"


def teacher_path_for_label(cfg, paths: StagePaths) -> str:
    """The label stage's teacher: the fine-tuned one when `finetune` is configured, else label.teacher.path."""
    if cfg.finetune is not None:
        return str(paths.teacher)
    return cfg.label.teacher.path
