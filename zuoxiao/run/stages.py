"""The five stages as `zuoxiao run` calls them, what each one's fingerprint covers, and process hygiene.

Each adapter takes (cfg, paths, ctx) and returns the stage's typed result (zuoxiao.core.results); tests
pass fakes with the same signature and the same result types via ``run_job(stage_fns=...)``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zuoxiao.core.config.run import STAGES
from zuoxiao.core.config.views import CompressView, FinetuneView, LabelView, ShipView, TrainView
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.fingerprint import data_fingerprint, model_fingerprint, teacher_fingerprint
from zuoxiao.core.paths import StagePaths, teacher_path_for_label
from zuoxiao.core.results import FinetuneResult, LabelResult, TrainResult

log = logging.getLogger(__name__)

#: Stages that can continue from their own checkpoints after a crash (the others are wiped and redone).
RESUMABLE = {"train"}


@dataclass
class StageContext:
    run_dir: Path
    resume: bool  # continue from this stage's checkpoints (same fingerprint, killed mid-way)
    cache_dir: Path | None  # the incremental teacher cache, shared by all runs of this output dir


def _finetune(cfg, paths: StagePaths, ctx: StageContext) -> FinetuneResult:
    from zuoxiao.teacher.finetune.stage import finetune

    return FinetuneResult.from_metrics(paths.teacher, finetune(FinetuneView.of(cfg), paths.teacher))


def _label(cfg, paths: StagePaths, ctx: StageContext) -> LabelResult:
    from zuoxiao.pipelines.label import label

    manifest = label(LabelView.of(cfg), paths.label, teacher_path=teacher_path_for_label(cfg, paths),
                     cache_dir=ctx.cache_dir)
    return LabelResult.from_manifest(paths.label, manifest)


def train_result(paths: StagePaths, metrics: dict) -> TrainResult:
    return TrainResult.from_metrics(paths.student, metrics)


def _train(cfg, paths: StagePaths, ctx: StageContext) -> TrainResult:
    if cfg.run.train_launcher:
        return train_result(paths, _launch_train(cfg, paths, ctx))
    from zuoxiao.student.train import train

    return train_result(paths, train(TrainView.of(cfg), paths.label, paths.student, resume=ctx.resume))


def _launch_train(cfg, paths: StagePaths, ctx: StageContext) -> dict:
    """Train in a launcher subprocess (e.g. `accelerate launch` on GPUs) with the run's resolved config,
    so the config means the same thing in either place; the runner still fingerprints and records it."""
    cmd = [*cfg.run.train_launcher, "-m", "zuoxiao.cli", "train", str(ctx.run_dir / "config.resolved.yaml"),
           "--shards", str(paths.label), "--output", str(paths.student)] + (["--resume"] if ctx.resume else [])
    log.info("launching the train stage: %s", " ".join(cmd))
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, env={**os.environ, "ZUOXIAO_LOCK_HELD": "1"})  # run holds it
    if proc.returncode != 0:
        raise RuntimeError(f"train launcher exited with {proc.returncode}: {' '.join(cmd)}; its output is above "
                           "(rerun resumes from the last checkpoint)")
    metrics = paths.student / "metrics.json"
    if not metrics.is_file():
        raise RuntimeError(f"train launcher finished but wrote no {metrics}; check run.train_launcher {cmd[:3]}")
    return json.loads(metrics.read_text())


def _compress(cfg, paths: StagePaths, ctx: StageContext):
    from zuoxiao.student.compress.stage import compress

    return compress(CompressView.of(cfg), paths)


def _ship(cfg, paths: StagePaths, ctx: StageContext):
    from zuoxiao.ship.stage import ship

    return ship(ShipView.of(cfg), paths)


#: The stage implementations, picked by name.
STAGE_FNS = {"finetune": _finetune, "label": _label, "train": _train, "compress": _compress, "ship": _ship}


def active_stages(cfg) -> list[str]:
    if cfg.finetune is not None and "finetune" not in cfg.run.stages:
        raise ConfigError(
            f"finetune is configured but run.stages={cfg.run.stages} leaves it out; add finetune to "
            "run.stages, or set finetune: null and point label.teacher.path at a teacher"
        )
    return [s for s in STAGES if s in cfg.run.stages and (s != "finetune" or cfg.finetune is not None)]


#: The view each stage function receives: the runner fingerprints exactly that.
VIEWS = {"finetune": FinetuneView, "label": LabelView, "train": TrainView, "compress": CompressView, "ship": ShipView}


def stage_inputs(cfg, stage: str) -> dict:
    """What a stage reads besides upstream outputs: exactly the view the stage function receives (so nothing
    it reads can be left out), plus the hashes of the data files and models the view only names."""
    inputs: dict = {"view": VIEWS[stage].of(cfg).fingerprint_json()}
    if stage == "finetune":
        inputs.update(data=data_fingerprint(cfg.finetune.data), backbone=model_fingerprint(cfg.finetune.teacher.path))
    if stage == "label":
        inputs["data"] = data_fingerprint(cfg.label.input)
        if cfg.label.extra_inputs:
            inputs["extra_data"] = [data_fingerprint(s) for s in cfg.label.extra_inputs]
    if stage != "label":
        inputs.update(eval=data_fingerprint(cfg.task.eval), dev=data_fingerprint(cfg.task.dev))
    elif cfg.label.teacher.kind == "causal_lm":  # its few-shot examples may come from task.dev
        inputs["dev"] = data_fingerprint(cfg.task.dev)
    if stage != "finetune" and cfg.finetune is None:
        inputs["teacher"] = teacher_fingerprint(cfg.label.teacher)  # every ensemble member when members: is set
    return inputs


@contextmanager
def restored_process_state():
    """Undo what a stage changes in the process: torch threads, root logger handlers and level.

    Without it, `label.teacher.num_threads` set for the label stage leaks into train and compress, so a run
    resumed after a crash (which skips label) would train with other threads than an uninterrupted one.
    """
    import sys

    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(threads or torch.get_num_threads())
        root.handlers[:] = handlers
        root.setLevel(level)


class PeakRss:
    """Peak resident memory of this process during one stage, in MB.

    Linux: writing "5" to /proc/self/clear_refs resets the high-water mark (VmHWM) that /proc/self/status
    reports, so each stage gets its own peak rather than the maximum of all stages so far (RUSAGE_SELF).
    Child processes (Beam workers, a train launcher) are not included. Elsewhere: ru_maxrss (cumulative).
    """

    def __enter__(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.exact = True
        except OSError:
            self.exact = False
        return self

    def __exit__(self, *exc):
        self.mb = None
        if self.exact:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.mb = round(int(line.split()[1]) / 1024, 1)
        if self.mb is None:
            import resource

            self.mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        return False
