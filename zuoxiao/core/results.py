"""Typed results of the five stages: what each returns, what `.done.json` records, what the run summary reads.

The real stages and the test fakes return these same classes, so a key the summary reads either exists
on both or fails both. ``to_json``/``from_json`` round-trip through the JSON of `.done.json`; unknown
keys are ignored on the way back so an older record still loads, and fields added later have defaults.

Every result also has a *headline*: ``headline()`` -> the few numbers that say whether the stage did its
job (JSON, put into the run's events.jsonl), ``headline_text()`` -> the same as a console line (compress:
one line per step). The runner prints it right after each stage, so a weak teacher or a costly
compression step is visible minutes into a run instead of at its end.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _points(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f"{100 * (a - b):+.1f} points"


def _get(d: dict | None, *keys):
    """d[k1][k2]... or None when any level is missing (old records, stages that measured less)."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _first(*values):
    return next((v for v in values if v is not None), None)


@dataclass
class StageResult:
    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict | None):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})

    def headline(self) -> dict:
        return {}

    def headline_text(self) -> str:
        return ""

    def headline_lines(self, prefix: str) -> list[str]:
        """The headline as printed after a stage: 'PREFIX: text', or for several lines (compress: one per
        step) 'PREFIX:' and each line indented. [] when there is nothing to say."""
        lines = self.headline_text().splitlines()
        if len(lines) <= 1:
            return [f"{prefix}: {line}" for line in lines]
        return [f"{prefix}:"] + [f"    {line}" for line in lines]


@dataclass
class FinetuneResult(StageResult):
    teacher_dir: str = ""
    accuracy: float | None = None  # on the fine-tune's own held-out rows (task.eval, else dev)
    baseline_accuracy: float | None = None  # TF-IDF + logistic regression on the same rows, when measured
    eval_source: str | None = None
    metrics: dict = field(default_factory=dict)  # teacher/metrics.json as written
    dev_accuracy: float | None = None  # the dev set that picked the weights (task.dev or a split)
    baseline_dev_accuracy: float | None = None
    eval_accuracy: float | None = None  # task.eval, when set
    baseline_eval_accuracy: float | None = None

    @classmethod
    def from_metrics(cls, teacher_dir, m: dict) -> FinetuneResult:
        base = m.get("baseline") or {}
        headline_base = base.get("eval") or base.get("dev") or {}  # the same split as m["accuracy"]
        return cls(teacher_dir=str(teacher_dir), accuracy=m.get("accuracy"), eval_source=m.get("eval_source"),
                   baseline_accuracy=headline_base.get("accuracy"), metrics=m,
                   dev_accuracy=_get(m, "teacher", "dev", "accuracy"),
                   baseline_dev_accuracy=_get(base, "dev", "accuracy"),
                   eval_accuracy=_get(m, "teacher", "eval", "accuracy"),
                   baseline_eval_accuracy=_get(base, "eval", "accuracy"))

    def headline(self) -> dict:
        m = self.metrics or {}
        dev = _first(self.dev_accuracy, _get(m, "teacher", "dev", "accuracy"),
                     self.accuracy if self.eval_source == "dev" else None)
        base_dev = _first(self.baseline_dev_accuracy, _get(m, "baseline", "dev", "accuracy"),
                          self.baseline_accuracy if self.eval_source == "dev" else None)
        ev = _first(self.eval_accuracy, _get(m, "teacher", "eval", "accuracy"),
                    self.accuracy if self.eval_source == "task.eval" else None)
        base_ev = _first(self.baseline_eval_accuracy, _get(m, "baseline", "eval", "accuracy"),
                         self.baseline_accuracy if self.eval_source == "task.eval" else None)
        if dev is None and ev is None:  # an old record without the split: the one number it has
            dev, base_dev = self.accuracy, self.baseline_accuracy
        return {"teacher_dev_accuracy": dev, "baseline_dev_accuracy": base_dev,
                "gain_points": None if dev is None or base_dev is None else round(100 * (dev - base_dev), 2),
                "teacher_eval_accuracy": ev, "baseline_eval_accuracy": base_ev}

    def headline_text(self) -> str:
        h = self.headline()
        text = f"teacher dev accuracy {_pct(h['teacher_dev_accuracy'])}"
        if h["baseline_dev_accuracy"] is not None:
            text += (f" vs TF-IDF baseline {_pct(h['baseline_dev_accuracy'])} "
                     f"({_points(h['teacher_dev_accuracy'], h['baseline_dev_accuracy'])})")
        if h["teacher_eval_accuracy"] is not None:
            text += f"; eval {_pct(h['teacher_eval_accuracy'])}"
            if h["baseline_eval_accuracy"] is not None:
                text += f" (baseline {_pct(h['baseline_eval_accuracy'])})"
        blend = (self.metrics or {}).get("blend") or {}
        if blend.get("saved"):  # teacher/blend.py: the label stage labels with the blend
            text += (f"; labels with the teacher + baseline blend (baseline weight {blend['baseline_weight']:g}): "
                     f"dev {_pct((blend.get('dev') or {}).get('accuracy'))}, "
                     f"{self.eval_source or 'eval'} {_pct(self.accuracy)}")
        elif blend.get("reason") and (blend.get("gain_points") or 0) > 0:  # a weight gained on dev, yet refused
            text += f"; the teacher labels alone (blend with the baseline not kept: {blend['reason']})"
        return text


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
    num_classes: int | None = None
    mean_entropy_nats: float | None = None  # mean soft-label entropy over the labelled rows
    entropy_fraction: float | None = None  # the same / ln(num_classes): 0 = one-hot, 1 = uniform
    label_distribution: dict = field(default_factory=dict)  # teacher argmax -> rows: the 10 most frequent classes
    # rows the whole distribution counts (every shard row, all classes): the denominator of the label shares;
    # None in records written before it existed (then the labelled rows are)
    label_rows: int | None = None

    @classmethod
    def from_manifest(cls, label_dir, manifest: dict) -> LabelResult:
        counts, stats = manifest.get("counts") or {}, manifest.get("stats") or {}
        dist = stats.get("label_distribution") or {}  # every class, most frequent first
        return cls(label_dir=str(label_dir), read=counts.get("read", 0), labeled=counts.get("labeled", 0),
                   rejected=counts.get("rejected", 0), rejected_by_reason=counts.get("rejected_by_reason", {}),
                   shards=len(manifest.get("shards", [])), cache_hits=counts.get("cache_hits"),
                   cache_misses=counts.get("cache_misses"),
                   teacher_seconds=(manifest.get("timings") or {}).get("teacher_s"),
                   num_classes=manifest.get("num_classes"), mean_entropy_nats=stats.get("mean_entropy_nats"),
                   entropy_fraction=stats.get("entropy_fraction"),
                   label_distribution=dict(list(dist.items())[:10]), label_rows=sum(dist.values()) or None)

    def headline(self) -> dict:
        reasons = sorted(self.rejected_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        total = self.label_rows or self.labeled  # all rows, not the sum of the 10 most frequent classes
        top = sorted(self.label_distribution.items(), key=lambda kv: -kv[1])[:5]
        return {"read": self.read, "labeled": self.labeled, "rejected": self.rejected,
                "top_rejection_reasons": dict(reasons), "mean_entropy_nats": self.mean_entropy_nats,
                "entropy_fraction": self.entropy_fraction, "num_classes": self.num_classes,
                "top_labels": {k: round(v / total, 4) for k, v in top} if total else {}}

    def headline_text(self) -> str:
        h = self.headline()
        text = f"labelled {h['labeled']:,} of {h['read']:,} rows, rejected {h['rejected']:,}"
        if h["top_rejection_reasons"]:
            text += " (" + ", ".join(f"{k} {v:,}" for k, v in h["top_rejection_reasons"].items()) + ")"
        if h["mean_entropy_nats"] is not None:
            text += f"; soft-label entropy {h['mean_entropy_nats']:.3f} nats"
            if h["entropy_fraction"] is not None and h["num_classes"]:
                text += f" ({_pct(h['entropy_fraction'])} of ln {h['num_classes']})"
        if h["top_labels"]:
            text += "; teacher labels: " + ", ".join(f"{k} {_pct(v)}" for k, v in h["top_labels"].items())
        return text


@dataclass
class TrainResult(StageResult):
    student_dir: str = ""
    teacher_accuracy: float | None = None  # task.eval
    student_accuracy: float | None = None  # task.eval
    agreement: float | None = None  # student vs teacher predictions on task.eval
    baseline_accuracy: float | None = None
    metrics: dict = field(default_factory=dict)  # student/metrics.json as written
    student_dev_accuracy: float | None = None  # at the kept (best) evaluation, on task.dev
    teacher_dev_accuracy: float | None = None
    dev_agreement: float | None = None

    @classmethod
    def from_metrics(cls, student_dir, metrics: dict) -> TrainResult:
        teacher, student = metrics.get("teacher") or {}, metrics.get("student") or {}
        best = _best_eval(metrics)
        return cls(student_dir=str(student_dir), teacher_accuracy=teacher.get("accuracy"),
                   student_accuracy=student.get("accuracy"), agreement=student.get("agreement"), metrics=metrics,
                   student_dev_accuracy=best.get("eval_accuracy"), teacher_dev_accuracy=teacher.get("dev_accuracy"),
                   dev_agreement=best.get("eval_agreement"))

    def headline(self) -> dict:
        on_dev = (self.metrics or {}).get("selection") == "task.dev"
        best = _best_eval(self.metrics or {}) if on_dev else {}
        return {"student_dev_accuracy": _first(self.student_dev_accuracy, best.get("eval_accuracy")),
                "teacher_dev_accuracy": _first(self.teacher_dev_accuracy,
                                               _get(self.metrics, "teacher", "dev_accuracy")),
                "dev_agreement": _first(self.dev_agreement, best.get("eval_agreement")),
                "student_eval_accuracy": self.student_accuracy, "teacher_eval_accuracy": self.teacher_accuracy,
                "eval_agreement": self.agreement}

    def headline_text(self) -> str:
        h = self.headline()
        parts = []
        if h["student_dev_accuracy"] is not None:
            parts.append(f"student dev accuracy {_pct(h['student_dev_accuracy'])} (teacher "
                         f"{_pct(h['teacher_dev_accuracy'])}, agreement {_pct(h['dev_agreement'])})")
        if h["student_eval_accuracy"] is not None:
            parts.append(f"eval: student {_pct(h['student_eval_accuracy'])}, teacher "
                         f"{_pct(h['teacher_eval_accuracy'])}, agreement {_pct(h['eval_agreement'])}")
        return "; ".join(parts) or "no dev or eval set: nothing measured (set task.dev / task.eval)"


def _best_eval(metrics: dict) -> dict:
    """The evaluation record of the kept weights (metrics.json train.history at train.best_step)."""
    train = metrics.get("train") or {}
    for rec in train.get("history") or []:
        if rec.get("step") == train.get("best_step"):
            return rec
    return {}


@dataclass
class CompressResult(StageResult):
    report: str = ""  # compress/report.json
    final_step: str = ""
    final_accuracy: float | None = None  # the last step's model, measured in PyTorch or ONNX Runtime
    teacher_accuracy: float | None = None
    steps: list = field(default_factory=list)  # one record per step: name, accuracy, bytes, latency_ms ...

    def headline(self) -> dict:
        rows, prev = [], None
        for s in self.steps:
            acc = s.get("accuracy")
            rows.append({"name": s.get("name"), "mb": round(s["bytes"] / 1e6, 3) if s.get("bytes") else None,
                         "accuracy": acc, "agreement": s.get("agreement"),
                         "change_points": None if prev is None or acc is None or prev.get("accuracy") is None
                         else round(100 * (acc - prev["accuracy"]), 2),  # vs the step before; < 0 = a loss
                         "seconds": s.get("seconds"), "note": s.get("note"), "warning": s.get("warning")})
            prev = s
        return {"final_step": self.final_step, "final_accuracy": self.final_accuracy,
                "teacher_accuracy": self.teacher_accuracy, "steps": rows}

    def headline_text(self) -> str:
        h = self.headline()
        lines = []
        for r in h["steps"]:
            line = f"{r['name']:<24} {r['mb'] if r['mb'] is not None else '?':>8} MB  accuracy {_pct(r['accuracy'])}"
            if r["change_points"] is not None:
                line += f" ({r['change_points']:+.1f} points)"
            if r["seconds"] is not None:
                line += f", {r['seconds']:.1f} s"
            if r["note"]:
                line += f"; {r['note']}"
            if r["warning"]:
                line += f"  <- WARNING: {r['warning'].split(': ')[0]}"
            lines.append(line)
        lines.append(f"final {h['final_step']}: accuracy {_pct(h['final_accuracy'])}, teacher "
                     f"{_pct(h['teacher_accuracy'])}")
        return "\n".join(lines)


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

    def headline(self) -> dict:
        checks = [{k: c.get(k) for k in ("name", "ok", "value", "limit")} for c in (self.gate or {}).get("checks", [])]
        return {"passed": self.passed, "checks": checks, "accuracy": self.accuracy, "retention": self.retention,
                "size_mb": self.size_mb, "latency_ms_p50": self.latency_ms_p50}

    def headline_text(self) -> str:
        h = self.headline()
        text = "gate " + ("PASSED" if h["passed"] else "FAILED")
        shown = [c for c in h["checks"] if c["name"] != "finite_outputs" or not c["ok"]]
        if shown:
            text += ": " + ", ".join(f"{c['name']} {'ok' if c['ok'] else 'FAILED'} ({_num(c['value'])} vs "
                                     f"{_num(c['limit'])})" for c in shown)
        elif h["passed"]:
            text += " (no bounds configured)"
        text += (f"; bundle accuracy {_pct(h['accuracy'])}, retention {_num(h['retention'])}, "
                 f"{_num(h['size_mb'])} MB, p50 {_num(h['latency_ms_p50'])} ms")
        return text


def _num(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isfinite(x):
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


RESULT_TYPES: dict[str, type[StageResult]] = {
    "finetune": FinetuneResult, "label": LabelResult, "train": TrainResult,
    "compress": CompressResult, "ship": ShipResult,
}
