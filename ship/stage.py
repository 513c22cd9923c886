"""The ship stage: package the last compressed model as the app-team bundle, measure it, gate, publish.

    ship(ShipView.of(cfg), paths)   paths.compress (report.json + the final ONNX graph) -> paths.bundle

The bundle is assembled in a staging folder beside paths.bundle, measured through its own runtime
(zuoxiao.ship.runtime: tokenizers + onnxruntime, what app teams run), calibrated on task.dev, and moved
into place only when every bound of ship.gate holds. Otherwise nothing is published: GateFailed (exit 3)
carries the measured ShipResult, and the previous bundle stays untouched.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

from zuoxiao.core.config.views import ShipView
from zuoxiao.core.datasource import read_labelled
from zuoxiao.core.errors import GateFailed, InputError
from zuoxiao.core.paths import StagePaths
from zuoxiao.core.results import ShipResult
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.ship.gate import gate_message
from zuoxiao.ship.package import build_bundle
from zuoxiao.student.compress.stage import REPORT, read_json


class ShipContext:
    """What packaging and measuring the bundle needs: the view, the gold eval rows, the teacher's predictions."""

    def __init__(self, cfg: ShipView, paths: StagePaths, report: dict):
        if cfg.task.eval is None:
            raise InputError("ship measures the bundle on gold data: set task.eval (e.g. task.eval.path=data/test.jsonl)")
        self.cfg, self.paths, self.cc = cfg, paths, cfg.compress
        self.label_names = list(cfg.task.label_names or report["label_names"])
        data = read_labelled(cfg.task.eval, self.label_names)
        self.texts, self.gold = data.texts, np.asarray(data.labels)
        self.max_length = report["max_length"]
        tcache = read_json(paths.compress / "teacher.json")  # the compress stage's teacher pass, same eval rows
        self.teacher_pred = np.asarray(tcache["pred"]) if tcache.get("pred") else None
        self.baseline = baseline_record(paths)


def baseline_record(paths: StagePaths) -> dict | None:
    """The TF-IDF + logistic-regression baseline the finetune stage scored on task.eval (None without one).

    Same gold rows as the teacher's fine-tune, same eval rows as the bundle: the floor the bundle must beat.
    """
    base = (read_json(paths.teacher / "metrics.json").get("baseline") or {})
    scores = base.get("eval")
    if not scores or scores.get("accuracy") is None:
        return None
    return {"accuracy": scores["accuracy"], "macro_f1": scores.get("macro_f1"), "kind": base.get("kind"),
            "source": str(paths.teacher / "metrics.json")}


def ship(cfg: ShipView, paths: StagePaths) -> ShipResult:
    """Build paths.bundle from the last compressed model recorded in paths.compress/report.json."""
    report = read_json(paths.compress / REPORT)
    if not report:
        raise InputError(f"no {paths.compress / REPORT}: run `zuoxiao compress CONFIG` before `zuoxiao ship`")
    if not Path(report["final"]["onnx"]).is_file():
        raise InputError(f"the compressed model {report['final']['onnx']} is gone; rerun `zuoxiao compress CONFIG`")
    ctx = ShipContext(cfg, paths, report)
    report = {**report, "baseline": ctx.baseline}
    return publish(ctx, report)


def _result(shipped: dict, report: dict, bundle: Path | None) -> ShipResult:
    gate = shipped["gate"]
    return ShipResult(
        bundle=str(bundle) if bundle else None, passed=bool(gate["passed"]), accuracy=shipped["accuracy"],
        teacher_accuracy=(report.get("teacher") or {}).get("accuracy"),
        student_accuracy=report["steps"][0]["accuracy"],
        baseline_accuracy=(report.get("baseline") or {}).get("accuracy"),
        retention=gate.get("retention"), size_mb=gate.get("size_mb"), latency_ms_p50=gate.get("latency_ms_p50"),
        gate=gate)


def publish(ctx: ShipContext, report: dict) -> ShipResult:
    """Build the bundle in a staging dir, evaluate it with its own runtime, gate, then move it in place."""
    paths = ctx.paths
    staging = paths.root / f".bundle.staging-{int(time.time() * 1000)}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shipped = build_bundle(ctx, report, staging)
        gate = shipped["gate"]
        gate["message"] = gate_message(gate)
        paths.ship.mkdir(parents=True, exist_ok=True)  # never write into compress/: its outputs are recorded
        write_json_atomic(paths.ship / "shipped.json", {"bundle": shipped, "gate": gate})
        save_eval_predictions(ctx, paths.ship / "eval_predictions.npz")
        if not gate["passed"]:
            print(gate["message"], file=sys.stderr)
            raise GateFailed(gate["message"] + f"; nothing was published to {paths.bundle} (report: {paths.compress})",
                             result=_result(shipped, report, None))
        old = paths.root / f".bundle.old-{int(time.time() * 1000)}"
        if paths.bundle.exists():
            paths.bundle.rename(old)
        staging.rename(paths.bundle)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(gate["message"], file=sys.stderr)  # stdout stays machine-readable (the CLI prints JSON there)
    return _result(shipped, report, paths.bundle)


def save_eval_predictions(ctx: ShipContext, path: Path) -> None:
    """The bundle's probabilities on task.eval beside gold and the teacher's predictions, for the run report
    (confusion matrix, reliability diagram, confident disagreements) and for anyone auditing the bundle."""
    teacher = ctx.teacher_pred if ctx.teacher_pred is not None else np.full(len(ctx.gold), -1)
    with open(path, "wb") as f:
        np.savez_compressed(f, probs=ctx.eval_probs, gold=np.asarray(ctx.gold), teacher_pred=np.asarray(teacher),
                            texts=np.asarray(ctx.texts, dtype=object).astype(str),
                            label_names=np.asarray(ctx.label_names, dtype=str))
