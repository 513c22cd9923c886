"""What `zuoxiao run` tells people and machines: the JSONL event log, the metrics, the summary table."""

from __future__ import annotations

import json
import time
from pathlib import Path

from zuoxiao.core.results import RESULT_TYPES
from zuoxiao.run.history import latest_run_id, read_json_or_none


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


def collect_metrics(dones: dict[str, dict], out: Path) -> dict:
    """Baseline, teacher, student and shipped accuracy, retention, size, latency and the teacher cache
    counts, read from the typed results the stages recorded in their .done.json."""
    def result(stage):
        done = dones.get(stage)
        return RESULT_TYPES[stage].from_json(done["result"]) if done else None

    fin, lab, tr, ship = result("finetune"), result("label"), result("train"), result("ship")
    m: dict = {"rows_labelled": lab.labeled if lab else None, "rows_rejected": lab.rejected if lab else None,
               "cache_hits": lab.cache_hits if lab else None, "cache_misses": lab.cache_misses if lab else None,
               "teacher_seconds": lab.teacher_seconds if lab else None}
    hits, misses = m["cache_hits"], m["cache_misses"]
    if isinstance(hits, int) and isinstance(misses, int) and hits + misses:
        m["cache_hit_rate"] = round(hits / (hits + misses), 4)
        per_row = m["teacher_seconds"] / misses if m["teacher_seconds"] and misses else _previous_rate(out)
        m["teacher_seconds_per_row"] = round(per_row, 6) if per_row else None
        m["teacher_seconds_saved"] = round(hits * per_row, 2) if per_row else None
    m["baseline_accuracy"] = next((r.baseline_accuracy for r in (ship, tr, fin) if r and r.baseline_accuracy is not None),
                                  None)
    m["teacher_accuracy"] = next((r.teacher_accuracy for r in (ship, tr) if r and r.teacher_accuracy is not None), None)
    m["student_accuracy"] = tr.student_accuracy if tr else None
    m["shipped_accuracy"] = ship.accuracy if ship else None
    final = m["shipped_accuracy"] if m["shipped_accuracy"] is not None else m["student_accuracy"]
    retention = ship.retention if ship else None
    if retention is None and final is not None and m["teacher_accuracy"]:
        retention = final / m["teacher_accuracy"]
    m["retention"] = round(retention, 4) if isinstance(retention, (int, float)) else None
    m["size_mb"] = ship.size_mb if ship else None
    m["latency_ms_p50"] = ship.latency_ms_p50 if ship else None
    return m


def _previous_rate(out: Path) -> float | None:
    """When every row came from the cache this run, estimate the time saved at the last measured rate."""
    best = None
    for p in sorted((out / "runs").glob("*/summary.json")):
        rate = (read_json_or_none(p) or {}).get("metrics", {}).get("teacher_seconds_per_row")
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
    r.add_column("value", justify="right", overflow="fold")  # wrap long cells, never cut them with "…"
    pct = lambda v: _fmt(None if v is None else 100 * v, ".2f") + ("%" if v is not None else "")  # noqa: E731
    if m.get("baseline_accuracy") is not None:
        r.add_row("baseline (TF-IDF + LR) accuracy", pct(m.get("baseline_accuracy")))
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
    r.add_row("gate", gate_cell(summary.get("gate")))
    console.print(r)
    # Paths a user must copy go outside the tables, unwrapped (soft_wrap): never cut or folded with "…".
    run_dir = Path(summary["run_dir"])
    if summary["status"] == "passed":
        console.print(f"bundle: {summary['bundle']}  (latest -> runs/{summary['run_id']})", soft_wrap=True)
    elif summary["status"] == "gate_failed":
        console.print(gate_failed_note(run_dir, summary["run_id"]), soft_wrap=True)
    console.print(f"summary: {run_dir / 'summary.json'}", soft_wrap=True)
    console.print(f"events: {run_dir / 'logs' / 'events.jsonl'}", soft_wrap=True)


def _num(v) -> str:
    if v is None:
        return "unknown"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def gate_cell(gate: dict | None) -> str:
    """The summary's gate verdict: PASSED, or each failing check as measured vs required, e.g.
    'FAILED: min_retention 0.9123 (needs >= 0.95)'."""
    if not gate:
        return "not run"
    if gate.get("passed"):
        return "PASSED"
    failed = [c for c in gate.get("checks", []) if not c.get("ok")]
    if failed:
        ops = {"finite_outputs": "="}
        return "FAILED: " + "; ".join(
            f"{c['name']} {_num(c.get('value'))} (needs {ops.get(c['name'], '>=' if c['name'].startswith('min') else '<=')}"
            f" {_num(c.get('limit'))})" for c in failed)
    first = (gate.get("message") or "").removeprefix("gate: FAILED").strip().splitlines()
    return "FAILED" + (f": {first[0]}" if first else "")


def gate_failed_note(run_dir: Path, run_id: str) -> str:
    """What is true after a refused run, and what to do: `latest` is untouched, or there is none yet."""
    out = run_dir.parent.parent
    latest = latest_run_id(out)
    where = (f"'latest' still points at the last run that passed, {latest} ({out / 'latest'})" if latest else
             f"no run has passed its gate yet, so there is no {out / 'latest'}")
    return (f"gate failed: nothing was published; {where}.\n"
            f"This run's measurements: {run_dir / 'summary.json'}, {run_dir / 'ship' / 'shipped.json'}, "
            f"{run_dir / 'compress' / 'report.md'}.\n"
            "What to do: improve the model (more or better data, a stronger student, gentler compression) or, "
            "if the configured bounds are wrong, fix ship.gate and rerun `zuoxiao run CONFIG` (finished stages "
            f"are reused); to package this run's model anyway: `zuoxiao export CONFIG --run {run_id} --no-gate` "
            "(the bundle's card records the failed gate and the override).")
