"""What `zuoxiao run` tells people and machines: the JSONL event log, the metrics, the summary table."""

from __future__ import annotations

import json
import time
from pathlib import Path

from zuoxiao.core.paths import StagePaths


class EventLog:
    """Append-only JSONL, one event per line, flushed at once (a killed run keeps its events so far)."""

    def __init__(self, path: Path, run_id: str):
        self.path, self.run_id = Path(path), run_id
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: str, **fields) -> None:
        rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "run_id": self.run_id,
               "event": event, **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, default=str) + "\n")
            f.flush()


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _acc(x):
    """Accuracy out of a metrics entry that may be a number or a dict of metrics."""
    if isinstance(x, dict):
        x = x.get("accuracy")
    return x if isinstance(x, (int, float)) else None


def _first(d: dict, *keys):
    for k in keys:
        node = d
        for part in k.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return node
    return None


def collect_metrics(paths: StagePaths, dones: dict, out: Path) -> dict:
    """Accuracy, retention, size, latency (the shipped model's, from compress; else the trained student's),
    and the teacher cache counts from the label manifest."""
    m: dict = {}
    manifest = _read(paths.label / "manifest.json")
    counts = manifest.get("counts", {}) if manifest else {}
    hits, misses = counts.get("cache_hits"), counts.get("cache_misses")
    teacher_s = _first(manifest, "timings.teacher_s", "counts.teacher_seconds")
    m.update(rows_labelled=_first(counts, "labeled", "written"), cache_hits=hits,
             cache_misses=misses, teacher_seconds=teacher_s)
    if isinstance(hits, int) and isinstance(misses, int) and hits + misses:
        m["cache_hit_rate"] = round(hits / (hits + misses), 4)
        per_row = teacher_s / misses if teacher_s and misses else _previous_rate(out)
        m["teacher_seconds_per_row"] = round(per_row, 6) if per_row else None
        m["teacher_seconds_saved"] = round(hits * per_row, 2) if per_row else None

    student = _read(paths.student / "metrics.json")
    m["teacher_accuracy"] = _acc(_first(student, "teacher", "teacher_accuracy"))
    m["student_accuracy"] = _acc(_first(student, "student", "student_accuracy"))
    comp = (dones.get("compress") or {}).get("result") or {}
    m["shipped_accuracy"] = _acc(_first(comp, "final.accuracy", "accuracy"))
    m["teacher_accuracy"] = m["teacher_accuracy"] or _acc(_first(comp, "teacher.accuracy", "teacher_accuracy"))
    final = m["shipped_accuracy"] if m["shipped_accuracy"] is not None else m["student_accuracy"]
    retention = _first(comp, "retention", "gate.retention")
    if retention is None and final is not None and m["teacher_accuracy"]:
        retention = final / m["teacher_accuracy"]
    m["retention"] = round(retention, 4) if isinstance(retention, (int, float)) else None
    m["size_mb"] = _first(comp, "gate.size_mb", "size_mb")
    m["latency_ms_p50"] = _first(comp, "gate.latency_ms_p50", "final.latency_ms.b1.p50", "latency_ms_p50")
    return m


def _previous_rate(out: Path) -> float | None:
    """When every row came from the cache this run, estimate the time saved at the last measured rate."""
    best = None
    for p in sorted((out / "runs").glob("*/summary.json")):
        rate = _read(p).get("metrics", {}).get("teacher_seconds_per_row")
        best = rate or best
    return best


def _fmt(v, spec: str = "") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def print_summary(summary: dict, console) -> None:
    from rich.table import Table

    m = summary["metrics"]
    t = Table(title=f"zuoxiao run {summary['run_id']}: {summary['status']}", show_header=True)
    t.add_column("stage")
    t.add_column("action")
    t.add_column("seconds", justify="right")
    for stage, info in summary["stages"].items():
        t.add_row(stage, info["action"], _fmt(info["seconds"], ".1f"))
    console.print(t)

    r = Table(show_header=True, title="measured")
    r.add_column("metric")
    r.add_column("value", justify="right")
    pct = lambda v: _fmt(None if v is None else 100 * v, ".2f") + ("%" if v is not None else "")  # noqa: E731
    r.add_row("teacher accuracy", pct(m.get("teacher_accuracy")))
    r.add_row("student accuracy", pct(m.get("student_accuracy")))
    if m.get("shipped_accuracy") is not None:
        r.add_row("shipped (compressed) accuracy", pct(m.get("shipped_accuracy")))
    r.add_row("retention", pct(m.get("retention")))
    r.add_row("size (MB)", _fmt(m.get("size_mb"), ".2f"))
    r.add_row("latency p50 (ms)", _fmt(m.get("latency_ms_p50"), ".2f"))
    hits, misses = m.get("cache_hits"), m.get("cache_misses")
    r.add_row("teacher cache hits", "-" if hits is None else f"{hits} of {hits + (misses or 0)}")
    r.add_row("teacher time saved (s)", _fmt(m.get("teacher_seconds_saved"), ".1f"))
    gate = summary.get("gate") or {}
    verdict = "not run" if not gate else ("PASSED" if gate.get("passed") else "FAILED")
    r.add_row("gate", verdict + (f": {gate['message']}" if gate.get("message") and not gate.get("passed") else ""))
    console.print(r)
    if summary["status"] == "passed":
        console.print(f"bundle: {summary['bundle']}  (latest -> runs/{summary['run_id']})")
    elif summary["status"] == "gate_failed":
        console.print("gate failed: nothing was published; 'latest' still points at the previous good run")
    console.print(f"summary: {summary['run_dir']}/summary.json   events: {summary['run_dir']}/logs/events.jsonl")
