"""The bundle's model card (README.md): lineage, metrics, size, latency, weaknesses, calibration, usage."""

from __future__ import annotations


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
