"""The ship stage: package the last compressed model as the app-team bundle, measure it, gate, publish.

    ship(ShipView.of(cfg), paths)   paths.compress (report.json + the final ONNX graph) -> paths.bundle

The bundle is assembled in a staging folder beside paths.bundle, measured through its own runtime
(zuoxiao.ship.runtime: tokenizers + onnxruntime, what app teams run), calibrated on task.dev, and moved
into place only when every bound of ship.gate holds. Otherwise nothing is published: GateFailed (exit 3)
carries the measured ShipResult, and the previous bundle stays untouched.

A GateOverride (`zuoxiao export --no-gate`, or `--set ship.gate.*` bounds that differ from the config file)
is never silent: the gate as configured is measured too, and shipped.json, metrics.json, the model card and
the console all record its verdict, its checks and who overrode it, when, with which flags.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zuoxiao.core.config.ship import GateConfig
from zuoxiao.core.config.views import ShipView
from zuoxiao.core.errors import GateFailed, InputError
from zuoxiao.core.goldsets import read_labelled
from zuoxiao.core.paths import StagePaths
from zuoxiao.core.results import ShipResult
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.ship.gate import gate_message
from zuoxiao.ship.package import build_bundle
from zuoxiao.student.compress.stage import REPORT, read_json_or_empty


@dataclass
class GateOverride:
    """An export that changed or skipped the gate the config file sets."""

    configured: GateConfig  # ship.gate as the config file sets it (before --set)
    flags: list[str] = field(default_factory=list)  # e.g. ["--no-gate"], ["--set ship.gate.min_retention=null"]
    publish_anyway: bool = False  # --no-gate: publish even when the gate fails (never with NaN/inf outputs)
    by: str = "unknown"  # user@host
    at: str = ""  # UTC time

    def record(self, configured_verdict: dict) -> dict:
        return {"flags": self.flags, "publish_anyway": self.publish_anyway, "by": self.by, "at": self.at,
                "configured_gate": configured_verdict}


class ShipContext:
    """What packaging and measuring the bundle needs: the view, the gold eval rows, the teacher's predictions."""

    def __init__(self, cfg: ShipView, paths: StagePaths, report: dict, override: GateOverride | None = None):
        self.override = override
        if cfg.task.eval is None:
            raise InputError("ship measures the bundle on gold data: set task.eval (e.g. task.eval.path=data/test.jsonl)")
        self.cfg, self.paths, self.cc = cfg, paths, cfg.compress
        self.label_names = list(cfg.task.label_names or report["label_names"])
        data = read_labelled(cfg.task.eval, self.label_names)
        self.texts, self.gold = data.texts, np.asarray(data.labels)
        self.max_length = report["max_length"]
        tcache = read_json_or_empty(paths.compress / "teacher.json")  # the compress stage's teacher pass, same eval rows
        self.teacher_pred = np.asarray(tcache["pred"]) if tcache.get("pred") else None
        self.baseline = baseline_record(paths)


def baseline_record(paths: StagePaths) -> dict | None:
    """The TF-IDF + logistic-regression baseline the finetune stage scored on task.eval (None without one).

    Same gold rows as the teacher's fine-tune, same eval rows as the bundle: the floor the bundle must beat.
    """
    base = (read_json_or_empty(paths.teacher / "metrics.json").get("baseline") or {})
    scores = base.get("eval")
    if not scores or scores.get("accuracy") is None:
        return None
    return {"accuracy": scores["accuracy"], "macro_f1": scores.get("macro_f1"), "kind": base.get("kind"),
            "source": str(paths.teacher / "metrics.json")}


def ship(cfg: ShipView, paths: StagePaths, override: GateOverride | None = None) -> ShipResult:
    """Build paths.bundle from the last compressed model recorded in paths.compress/report.json."""
    report = read_json_or_empty(paths.compress / REPORT)
    if not report:
        raise InputError(f"no {paths.compress / REPORT}: run `zuoxiao compress CONFIG` before `zuoxiao ship`")
    if not Path(report["final"]["onnx"]).is_file():
        raise InputError(f"the compressed model {report['final']['onnx']} is gone; rerun `zuoxiao compress CONFIG`")
    ctx = ShipContext(cfg, paths, report, override)
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
        override = gate.get("override")
        publish_anyway = bool(override and override["publish_anyway"]) and _finite(gate)
        paths.ship.mkdir(parents=True, exist_ok=True)  # never write into compress/: its outputs are recorded
        write_json_atomic(paths.ship / "shipped.json", {"bundle": shipped, "gate": gate, "override": override,
                                                        "published": gate["passed"] or publish_anyway})
        save_eval_predictions(ctx, paths.ship / "eval_predictions.npz")
        if not gate["passed"] and not publish_anyway:
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
    if override:
        print(override_message(override, paths.bundle), file=sys.stderr)
    return _result(shipped, report, paths.bundle)


def _finite(gate: dict) -> bool:
    """NaN/inf outputs are refused even under --no-gate: such a model's labels mean nothing."""
    return all(c["ok"] for c in gate.get("checks", []) if c["name"] == "finite_outputs")


def override_message(override: dict, bundle: Path) -> str:
    """The console's plain-words account of a published bundle whose gate was overridden."""
    conf = override["configured_gate"]
    flags = " ".join(override["flags"])
    if conf["passed"]:
        return (f"note: the export changed the gate ({flags}); the gate as configured PASSED too. "
                f"Recorded in {bundle / 'README.md'} and ship/shipped.json.")
    failed = "; ".join(f"{c['name']} {c['detail']} (needs {_op(c['name'])} {c['limit']})"
                       for c in conf["checks"] if not c["ok"])
    return (f"WARNING: the quality gate as configured FAILED ({failed}), but {bundle} was published anyway "
            f"because of {flags} (by {override['by']} at {override['at']}). The model card (README.md), "
            "metrics.json and ship/shipped.json record the failed gate and this override.")


def _op(name: str) -> str:
    return ">=" if name.startswith("min") else "=" if name == "finite_outputs" else "<="


def save_eval_predictions(ctx: ShipContext, path: Path) -> None:
    """The bundle's probabilities on task.eval beside gold and the teacher's predictions, for the run report
    (confusion matrix, reliability diagram, confident disagreements) and for anyone auditing the bundle."""
    teacher = ctx.teacher_pred if ctx.teacher_pred is not None else np.full(len(ctx.gold), -1)
    with open(path, "wb") as f:
        np.savez_compressed(f, probs=ctx.eval_probs, gold=np.asarray(ctx.gold), teacher_pred=np.asarray(teacher),
                            texts=np.asarray(ctx.texts, dtype=object).astype(str),
                            label_names=np.asarray(ctx.label_names, dtype=str))
