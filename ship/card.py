"""The Pareto report (Markdown table + PNG) over teacher, student and every step, and the model card."""

from __future__ import annotations

from pathlib import Path


def _rows(report: dict) -> list[dict]:
    teacher = report.get("teacher")
    rows = [teacher] if teacher and teacher.get("bytes") else []
    return rows + list(report["steps"])


def _p50(r: dict, b: str = "b1") -> float | None:
    return ((r.get("latency_ms") or {}).get(b) or {}).get("p50")


def pareto_front(rows: list[dict], cost: str) -> set[str]:
    """Names of rows no other row beats on both accuracy (higher) and cost (lower)."""
    def c(r):
        return r["bytes"] if cost == "bytes" else _p50(r)

    front = set()
    for r in rows:
        if c(r) is None:
            continue
        dominated = any(o is not r and c(o) is not None and o["accuracy"] >= r["accuracy"] and c(o) <= c(r)
                        and (o["accuracy"] > r["accuracy"] or c(o) < c(r)) for o in rows)
        if not dominated:
            front.add(r["name"])
    return front


def markdown_table(report: dict) -> str:
    rows = _rows(report)
    student_acc = report["steps"][0]["accuracy"]
    fs, fl = pareto_front(rows, "bytes"), pareto_front(rows, "latency")
    head = ("| model | runtime | accuracy | Δ vs student (pts) | macro-F1 | agreement | params | MB | "
            "b1 p50 ms | b1 p95 ms | b32 p50 ms | Pareto (size / latency) |\n" + "|---" * 12 + "|\n")
    lines = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        agree = "—" if r.get("agreement") is None else f"{r['agreement']:.4f}"
        lines.append(
            f"| {r['name']} | {r.get('runtime', '')} | {r['accuracy']:.4f} | "
            f"{100 * (r['accuracy'] - student_acc):+.2f} | {r.get('macro_f1', float('nan')):.4f} | {agree} | "
            f"{r.get('params', 0):,} | {r['bytes'] / 1e6:.2f} | {lat.get('b1', {}).get('p50', float('nan')):.2f} | "
            f"{lat.get('b1', {}).get('p95', float('nan')):.2f} | {lat.get('b32', {}).get('p50', float('nan')):.1f} | "
            f"{'✓' if r['name'] in fs else '·'} / {'✓' if r['name'] in fl else '·'} |")
    return head + "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(report)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label in ((axes[0], "bytes", "size on disk (MB, log)"), (axes[1], "latency", "latency b1 p50 (ms, log)")):
        front = pareto_front(rows, key)
        pts = [(r["bytes"] / 1e6 if key == "bytes" else _p50(r), r["accuracy"], r["name"]) for r in rows]
        pts = [p for p in pts if p[0]]
        for x, y, name in pts:
            ax.scatter(x, y, c="tab:red" if name in front else "tab:blue", zorder=3)
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        fx = sorted((x, y) for x, y, n in pts if n in front)
        if fx:
            ax.step([p[0] for p in fx], [p[1] for p in fx], where="post", color="tab:red", alpha=0.5, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (gold)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{report['task']}: accuracy vs size and latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report: dict, directory: Path) -> None:
    directory = Path(directory)
    notes = _notes(report)
    (directory / "report.md").write_text(
        f"# Compression report: {report['task']}\n\n" + markdown_table(report) +
        "\nLatency: synthetic rows of fixed length, pinned threads (see compress.latency_*). "
        "Bytes: weights file (safetensors) or ONNX file.\n\n" + "".join(f"- {n}\n" for n in notes) +
        "\n![Pareto](pareto.png)\n")
    plot(report, directory / "pareto.png")


def _notes(report: dict) -> list[str]:
    notes = []
    for r in report["steps"]:
        info = r.get("info") or {}
        if r["kind"] == "magnitude":
            notes.append(f"{r['name']}: {info.get('sparsity', 0):.0%} of Linear weights are zero, but they are stored "
                         "densely: the file is as large and inference as slow as before. It saves bytes only with "
                         f"sparse storage (CSR estimate {info.get('sparse_bytes', 0) / 1e6:.2f} MB vs "
                         f"{info.get('dense_bytes', 0) / 1e6:.2f} MB dense) and no CPU time with dense kernels.")
        if r["kind"] == "vocab_trim":
            notes.append(f"{r['name']}: vocabulary {info.get('vocab_before')} -> {info.get('vocab_after')} tokens; "
                         f"eval [UNK] rate {info.get('eval_unk_rate_before')} -> {info.get('eval_unk_rate_after')}.")
        if "onnx_max_abs_diff_vs_torch" in info:
            notes.append(f"{r['name']}: ONNX fp32 export max |Δlogit| vs PyTorch = {info['onnx_max_abs_diff_vs_torch']:.2e}.")
    return notes


def model_card(report: dict, shipped: dict, ctx) -> str:
    """README.md of the bundle: lineage, metrics, size, latency, weaknesses, calibration, usage."""
    t = report.get("teacher") or {}
    s = report["steps"][0]
    lat = shipped["latency_ms"]
    names = report["label_names"]
    worst = (shipped.get("disagreement_by_class") or [])[:3]
    weak = "\n".join(f"- teacher says **{w['class']}** ({w['teacher_rows']} rows): the bundle disagrees on "
                     f"{w['disagreement']:.1%} of them" for w in worst) or "- (no teacher predictions available)"
    gate = shipped.get("gate") or {}
    gate_lines = "\n".join(f"- {c['name']}: {c['detail']} (limit {c['limit']}) — {'ok' if c['ok'] else 'FAILED'}"
                           for c in gate.get("checks", [])) or "- no bounds configured"
    int8 = shipped["runtime"] == "onnx-int8"
    t_acc = f"{t['accuracy']:.4f}" if t.get("accuracy") is not None else "unknown"
    return f"""# {report['task']} classifier (zuoxiao bundle)

A distilled, compressed text classifier for **{report['task']}** with labels {names}.
`model.onnx` is {'int8 (ONNX Runtime dynamic quantisation)' if int8 else 'fp32 (no ONNX int8 step was configured)'};
inputs are at most {report['max_length']} tokens (longer texts are truncated).

## Use it (needs only `onnxruntime`, `tokenizers`, `numpy`)
```python
from zuoxiao_bundle import Bundle   # this directory's zuoxiao_bundle.py (or: from zuoxiao.ship.runtime import Bundle)
bundle = Bundle.load("path/to/this/dir")          # verifies SHA256SUMS first
bundle.predict(["some text"])   # [{{"label": ..., "probabilities": {{label: p}}}}]
```
Command line: `zuoxiao predict path/to/this/dir "some text"`.

Optimum: `ORTModelForSequenceClassification.from_pretrained(dir, file_name="model.onnx")` should load this
directory (HF config.json, tokenizer files, an ONNX graph with inputs input_ids/attention_mask/token_type_ids
and output logits), but this was **not tested**: Optimum's ONNX side requires transformers < 4.58 and is
not installed where this bundle was built.

## Lineage
- teacher: `{(t.get('info') or {}).get('path', 'unknown')}` — accuracy {t_acc}
- transfer set (soft labels): `{report.get('label_dir')}`; student: `{report.get('student_dir')}`
- compression steps: {', '.join(r['name'] for r in report['steps'][1:]) or 'none'}
- evaluation: gold set `{ctx.cfg.task.eval.paths}` ({shipped['n']} rows)

## Metrics (gold evaluation set)
| model | accuracy | macro-F1 | agreement with teacher | MB | b1 p50 ms |
|---|---|---|---|---|---|
| teacher | {t_acc} | {t.get('macro_f1', float('nan')):.4f} | — | {t.get('bytes', 0) / 1e6:.2f} | {_fmt((t.get('latency_ms') or {}).get('b1', {}).get('p50'))} |
| student (uncompressed) | {s['accuracy']:.4f} | {s['macro_f1']:.4f} | {_fmt(s.get('agreement'), 4)} | {s['bytes'] / 1e6:.2f} | {_fmt(s['latency_ms']['b1']['p50'])} |
| **this bundle** | **{shipped['accuracy']:.4f}** | {shipped['macro_f1']:.4f} | {_fmt(shipped.get('agreement'), 4)} | {shipped['bytes'] / 1e6:.2f} | {_fmt(lat['b1']['p50'])} |

Size: {shipped['bytes'] / 1e6:.2f} MB for model + tokenizer + config ({shipped['model_bytes'] / 1e6:.2f} MB ONNX).
Latency (CPU, {ctx.cc.latency_threads} thread(s), {ctx.cc.latency_seq_len} tokens): batch 1 p50 {_fmt(lat['b1']['p50'])} ms /
p95 {_fmt(lat['b1']['p95'])} ms; batch 32 p50 {_fmt(lat.get('b32', {}).get('p50'))} ms. Full per-step table: `report.md`, plot: `pareto.png`.

## Known weaknesses
Classes where the bundle and the teacher disagree most:
{weak}

Lowest recall against gold: {', '.join(f"{r['class']} {r['recall']:.1%} ({r['rows']} rows)" for r in shipped.get('recall_by_class', [])[:3])}.

Calibration: {_calibration(shipped)}
Vocabulary: if the vocabulary was trimmed to the transfer set, words never seen there split into characters
or become [UNK]; out-of-domain text degrades first.

## Quality gate
{'PASSED' if gate.get('passed') else 'FAILED'}
{gate_lines}

## Files
model.onnx, tokenizer.json (+ tokenizer_config.json, vocab.txt), config.json (label names in id2label;
`zuoxiao` block: max_length, inputs), metrics.json, report.md, pareto.png, zuoxiao_bundle.py, SHA256SUMS
(`sha256sum -c SHA256SUMS`).
"""


def _fmt(x, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _calibration(shipped: dict) -> str:
    ece, raw = shipped["ece"], shipped.get("ece_uncalibrated", shipped["ece"])
    if shipped.get("calibrated_on"):
        return (f"probabilities are softmax(logits / T) with T = {shipped['temperature']:.3f}, fitted on "
                f"{shipped['calibrated_on']} (temperature scaling: the predicted label never changes); "
                f"expected calibration error (15 bins) on the gold set {ece:.4f} (uncalibrated {raw:.4f}).")
    return (f"expected calibration error (15 bins) = {ece:.4f} on the gold set; probabilities are the softmax "
            "of distilled logits, not recalibrated (set task.dev to calibrate them).")
