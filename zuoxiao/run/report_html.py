"""report.html: one self-contained page per run that an operator or an app team actually looks at.

    write_report_html(run_dir) -> run_dir / "report.html"       (also: zuoxiao report RUN_DIR)

Everything comes from files the stages already wrote (summary.json, compress/report.json,
ship/shipped.json, ship/eval_predictions.npz), so the page can be rebuilt at any time and a failure
here never fails a run. Plots are PNGs inlined as base64: the file opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from zuoxiao.run.history import read_json_or_none
from zuoxiao.ship.calibration import ece

STYLE = """body{font:14px system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}h2{margin-top:32px;border-bottom:1px solid #ddd}
.ok{color:#080;font-weight:bold}.bad{color:#b00;font-weight:bold}img{max-width:100%}.t{text-align:left}"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def confusion_matrix(gold: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """[n, n] counts: row = gold class, column = predicted class."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (gold, pred), 1)
    return m


def reliability(probs: np.ndarray, gold: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, rows) per confidence bin of the predicted class."""
    conf, correct = probs.max(-1), probs.argmax(-1) == gold
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inb = (conf > lo) & (conf <= hi)
        if inb.any():
            out.append((float(conf[inb].mean()), float(correct[inb].mean()), int(inb.sum())))
    return out


def _plots(ev, names: list[str]) -> tuple[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs, gold = ev["probs"], ev["gold"]
    cm = confusion_matrix(gold, probs.argmax(-1), len(names))
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * len(names), 1 + 0.4 * len(names)))
    ax.imshow(cm / np.maximum(cm.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    if len(names) <= 30:
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        for i in range(len(names)):
            for j in range(len(names)):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6)
    ax.set_xlabel("bundle prediction")
    ax.set_ylabel("gold")
    ax.set_title("confusion matrix (task.eval, row-normalised colour)")
    cm_html = _png(fig)
    rel = reliability(probs, gold)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar([c for c, _, _ in rel], [a for _, a, _ in rel], width=0.08, alpha=0.7, label="accuracy per bin")
    ax.set_xlabel("confidence of the predicted class")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece(probs, gold):.3f})")
    ax.legend(fontsize=8)
    return cm_html, _png(fig)


def write_report_html(run_dir: str | Path) -> Path:
    """Build run_dir/report.html from the run's own records; returns its path."""
    run_dir = Path(run_dir)
    summary = read_json_or_none(run_dir / "summary.json") or {}
    comp = read_json_or_none(run_dir / "compress" / "report.json") or {}
    shipped = (read_json_or_none(run_dir / "ship" / "shipped.json") or {}).get("bundle") or {}
    m = summary.get("metrics") or {}
    gate = summary.get("gate") or {}
    parts = [f"<h1>zuoxiao run {html.escape(summary.get('run_id', run_dir.name))}: "
             f"<span class={'ok' if summary.get('status') == 'passed' else 'bad'}>"
             f"{html.escape(str(summary.get('status', 'unknown')))}</span></h1>"]
    parts.append("<h2>Baseline, teacher, student, bundle (task.eval)</h2>" + _table(
        ["model", "accuracy"], [["TF-IDF + logistic regression baseline", _pct(m.get("baseline_accuracy"))],
                                ["teacher", _pct(m.get("teacher_accuracy"))],
                                ["student (uncompressed)", _pct(m.get("student_accuracy"))],
                                ["<b>bundle</b> (what ships)", f"<b>{_pct(m.get('shipped_accuracy'))}</b>"]]))
    parts.append(_table(["retention", "size MB", "latency p50 ms", "gate"],
                        [[_pct(m.get("retention")), m.get("size_mb", "–"), m.get("latency_ms_p50", "–"),
                          "PASSED" if gate.get("passed") else html.escape(str(gate.get("message", "not run")))]]))
    stages = summary.get("stages") or {}
    parts.append("<h2>Stages</h2>" + _table(
        ["stage", "action", "seconds", "peak RSS MB"],
        [[s, i.get("action"), i.get("seconds"), i.get("peak_rss_mb", "–")] for s, i in stages.items()]))
    if comp.get("steps"):
        parts.append("<h2>Compression steps</h2>" + _table(
            ["step", "runtime", "accuracy", "agreement", "MB", "b1 p50 ms"],
            [[r["name"], r.get("runtime"), _pct(r.get("accuracy")), _pct(r.get("agreement")),
              f"{r.get('bytes', 0) / 1e6:.2f}", ((r.get("latency_ms") or {}).get("b1") or {}).get("p50", "–")]
             for r in ([comp["teacher"]] if comp.get("teacher", {}).get("bytes") else []) + comp["steps"]]))
        png = run_dir / "compress" / "pareto.png"
        if png.is_file():
            parts.append(f'<img alt="Pareto" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">')
    npz = run_dir / "ship" / "eval_predictions.npz"
    if npz.is_file():
        ev = dict(np.load(npz, allow_pickle=False))
        names = [str(n) for n in ev["label_names"]]
        cm_html, rel_html = _plots(ev, names)
        parts.append("<h2>Where the bundle errs</h2><h3>Confusion matrix and reliability diagram</h3>"
                     + cm_html + rel_html)
        parts.append("<h3>Per-class recall (lowest first)</h3>" + _table(
            ["class", "rows", "recall"], [[html.escape(r["class"]), r["rows"], _pct(r["recall"])]
                                          for r in shipped.get("recall_by_class", [])]))
        parts.append("<h3>Most confident disagreements with the teacher</h3>" + _disagreements(ev, names))
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>zuoxiao run {html.escape(run_dir.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


def _disagreements(ev, names: list[str], k: int = 15) -> str:
    probs, teacher, gold, texts = ev["probs"], ev["teacher_pred"], ev["gold"], ev["texts"]
    pred, conf = probs.argmax(-1), probs.max(-1)
    idx = np.flatnonzero((teacher >= 0) & (pred != teacher))
    idx = idx[np.argsort(-conf[idx])][:k]
    if not len(idx):
        return "<p>none: the bundle agrees with the teacher on every eval row</p>"
    rows = [[f'<span class="t">{html.escape(str(texts[i])[:160])}</span>', html.escape(names[pred[i]]),
             f"{conf[i]:.3f}", html.escape(names[teacher[i]]), html.escape(names[gold[i]])] for i in idx]
    return _table(["text", "bundle", "confidence", "teacher", "gold"], rows)
