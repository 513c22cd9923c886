"""The bundle's model card (README.md): lineage, metrics, size, latency, weaknesses, calibration, usage."""

from __future__ import annotations

import json
from pathlib import Path

MOBILE_TEMPLATE = Path(__file__).with_name("mobile_card.md")  # package data; {placeholders} filled below


def model_card(report: dict, shipped: dict, ctx) -> str:
    """README.md of the bundle: lineage, metrics, size, latency, weaknesses, calibration, usage."""
    t = report.get("teacher") or {}
    s = report["steps"][0]
    lat = shipped["latency_ms"]
    names = report["label_names"]
    worst = (shipped.get("disagreement_by_class") or [])[:3]
    weak = "\n".join(f"- teacher says **{w['class']}** ({w['teacher_rows']} rows): the bundle disagrees on "
                     f"{w['disagreement']:.1%} of them" for w in worst) or "- (no teacher predictions available)"
    gate_section = gate_card_section(shipped.get("gate") or {})
    int8 = shipped["runtime"] == "onnx-int8"
    q4 = (", with the word-embedding table at 4 bits per value (a per-row fp16 minimum and step, widened "
          "after the lookup by standard ONNX ops)") if shipped.get("embedding_bits") == 4 else ""
    t_acc = f"{t['accuracy']:.4f}" if t.get("accuracy") is not None else "unknown"
    return f"""# {report['task']} classifier (zuoxiao bundle)

A distilled, compressed text classifier for **{report['task']}** with labels {names}.
`model.onnx` is {'int8 (ONNX Runtime dynamic quantisation)' if int8 else 'fp32 (no ONNX int8 step was configured)'}{q4};
inputs are at most {report['max_length']} tokens (longer texts are truncated).

## Use it (needs only `onnxruntime`, `tokenizers`, `numpy`)
```python
from zuoxiao_bundle import Bundle   # this directory's zuoxiao_bundle.py (or: from zuoxiao.ship.runtime import Bundle)
bundle = Bundle.load("path/to/this/dir")          # verifies SHA256SUMS first
bundle.predict(["some text"])   # [{{"label": ..., "probabilities": {{label: p}}}}]
```
Command line: `zuoxiao predict path/to/this/dir "some text"`.

{_explain_section(report['max_length'])}
{_optimum_section(shipped.get('temperature', 1.0))}
## Lineage
- teacher: `{(t.get('info') or {}).get('path', 'unknown')}` — accuracy {t_acc}
- transfer set (soft labels): `{report.get('label_dir')}`; student: `{report.get('student_dir')}`
- compression steps: {', '.join(r['name'] for r in report['steps'][1:]) or 'none'}
- evaluation: gold set `{ctx.cfg.task.eval.paths}` ({shipped['n']} rows)

## Metrics (gold evaluation set)
| model | accuracy | macro-F1 | agreement with teacher | MB | b1 p50 ms |
|---|---|---|---|---|---|
{_baseline_row(report)}| teacher | {t_acc} | {t.get('macro_f1', float('nan')):.4f} | — | {t.get('bytes', 0) / 1e6:.2f} | {_fmt((t.get('latency_ms') or {}).get('b1', {}).get('p50'))} |
| student (uncompressed) | {s['accuracy']:.4f} | {s['macro_f1']:.4f} | {_fmt(s.get('agreement'), 4)} | {s['bytes'] / 1e6:.2f} | {_fmt(s['latency_ms']['b1']['p50'])} |
| **this bundle** | **{shipped['accuracy']:.4f}** | {shipped['macro_f1']:.4f} | {_fmt(shipped.get('agreement'), 4)} | {shipped['bytes'] / 1e6:.2f} | {_fmt(lat['b1']['p50'])} |

Size: {shipped['bytes'] / 1e6:.2f} MB for model + tokenizer + config ({shipped['model_bytes'] / 1e6:.2f} MB ONNX).
Latency ({_machine(report.get('measured_on'))}, {ctx.cc.latency_threads} thread(s), {ctx.cc.latency_seq_len} tokens): batch 1 p50 {_fmt(lat['b1']['p50'])} ms /
p95 {_fmt(lat['b1']['p95'])} ms; batch 32 p50 {_fmt(lat.get('b32', {}).get('p50'))} ms. Full per-step table: `report.md`, plot: `pareto.png`.

## Known weaknesses
Classes where the bundle and the teacher disagree most:
{weak}

Lowest recall against gold: {', '.join(f"{r['class']} {r['recall']:.1%} ({r['rows']} rows)" for r in shipped.get('recall_by_class', [])[:3])}.

Calibration: {_calibration(shipped)}
Vocabulary: if the vocabulary was trimmed to the transfer set, words never seen there split into characters
or become [UNK]; out-of-domain text degrades first.

## Quality gate
{gate_section}

## Files
model.onnx, tokenizer.json (+ tokenizer_config.json, vocab.txt), config.json (label names in id2label;
`zuoxiao` block: max_length, inputs), metrics.json, report.md, pareto.png, zuoxiao_bundle.py, model.ort +
required_operators.config (phones), web/ (browser page), SHA256SUMS over all of them, subfolders included
(`sha256sum -c SHA256SUMS`).
"""


def _explain_section(max_length: int) -> str:
    from zuoxiao.ship.runtime import EXPLAIN_MAX_WORDS

    return f"""## Why this label: word attributions
```python
bundle.explain(["some text"])              # or label="name" for another label than the predicted one
# [{{"label": ..., "probability": p, "words": [{{"word", "start", "end", "attribution"}}], "words_total": n}}]
```
`zuoxiao predict path/to/this/dir "some text" --explain` prints the same (highlighted with `--format text`);
`web/index.html` colours each word, and the JavaScript runtime's `explain(text)` returns equal numbers
(within 1e-3). Method: occlusion. Each of the tokenizer's words (re-joined from its sub-tokens) is masked in
turn, all of its sub-tokens replaced by `[MASK]`, and attribution = p(label | text) - p(label | text with
the word masked), calibrated probabilities: > 0 the word speaks for the label. Cost: one model call per text
on a batch of 1 + W rows of the text's tokens, W = its words, capped at **{EXPLAIN_MAX_WORDS} words** (and
{max_length} tokens): at most {EXPLAIN_MAX_WORDS + 1}x the work of one prediction, usually less per row since
rows are batched. Words past the cap or past max_length get no attribution (`words_total` counts them).
"""


def _optimum_section(temperature: float) -> str:
    return f"""## Known clients: Hugging Face Optimum
`optimum.onnxruntime.ORTModelForSequenceClassification.from_pretrained("path/to/this/dir",
file_name="model.onnx")` loads this directory as it is (checked with optimum-onnx 0.1 and transformers 4.57
in their own virtual environment, on zuoxiao's demo bundle: the same top labels as `zuoxiao predict`;
`bench/optimum_check.py BUNDLE` in a zuoxiao checkout repeats the check on any bundle). Its probabilities differ from this bundle's:
Optimum applies no temperature, and this bundle's calibration temperature **T = {temperature:.6g}** lives in
`config.json` under `zuoxiao.temperature`, which transformers does not read. Apply it yourself:
```python
import torch
logits = model(**tokenizer(texts, return_tensors="pt", padding=True, truncation=True)).logits
probabilities = torch.softmax(logits / {temperature:.6g}, dim=-1)   # Bundle.predict's probabilities
```
"""


def _check_lines(checks: list[dict]) -> str:
    return "\n".join(f"- {c['name']}: {c['detail']} (limit {c['limit']}) — {'ok' if c['ok'] else 'FAILED'}"
                     for c in checks)


def _bounds_note(gate: dict) -> str:
    if any(c["name"] != "finite_outputs" for c in gate.get("checks", [])):
        return ""
    return "\n(no bounds configured in ship.gate: only finite outputs were checked)"


def gate_card_section(gate: dict) -> str:
    """The card's gate verdict. An export that overrode the gate says so first, with the gate as configured
    (verdict and checks as measured) and who overrode it, when, with which flags: never a bare PASSED."""
    override = gate.get("override")
    applied = f"{'PASSED' if gate.get('passed') else 'FAILED'}\n{_check_lines(gate.get('checks', []))}{_bounds_note(gate)}"
    if not override:
        return applied
    conf = override["configured_gate"]
    flags = " ".join(f"`{f}`" for f in override["flags"])
    head = ("**Published although the quality gate as configured FAILED.**" if not conf["passed"] else
            "The quality gate as configured PASSED; the export changed it too.")
    anyway = " (publish whatever the verdict)" if override["publish_anyway"] else ""
    changed = any(f.startswith("--set") for f in override["flags"])
    applied_part = f"\n\nGate with the export's `--set` changes: {applied}" if changed else ""
    return f"""{head}

Gate as configured (the config file's `ship.gate`), measured on this bundle: {'PASSED' if conf['passed'] else 'FAILED'}
{_check_lines(conf.get('checks', []))}

Override: {flags}{anyway}, by {override['by']} at {override['at']}.{applied_part}"""


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


def handoff_sections(bundle: Path, shipped: dict) -> str:
    """Model-card sections for app teams outside Python: the browser page and Android / iOS."""
    config = json.loads((bundle / "config.json").read_text())
    meta = config["zuoxiao"]
    tok = json.loads((bundle / "tokenizer.json").read_text())
    vocab = tok.get("model", {}).get("vocab", {})
    normalizer = {k: v for k, v in (tok.get("normalizer") or {}).items() if k != "type"}
    import onnxruntime

    values = {"max_length": meta["max_length"], "temperature": meta.get("temperature", 1.0),
              "labels": json.dumps(meta["label_names"]), "num_labels": len(meta["label_names"]),
              "ort_version": onnxruntime.__version__, "cls_id": vocab.get("[CLS]", "?"),
              "sep_id": vocab.get("[SEP]", "?"), "normalizer": json.dumps(normalizer)}
    mobile = MOBILE_TEMPLATE.read_text()
    for key, value in values.items():  # not str.format: the Kotlin / Swift code is full of braces
        mobile = mobile.replace("{" + key + "}", str(value))
    if not (bundle / "vocab.txt").is_file():  # a trimmed vocabulary with gaps in its ids writes no vocab.txt
        mobile = mobile.replace("token ids from `vocab.txt` (line number, from 0)",
                                "token ids from `tokenizer.json` `model.vocab` (token -> id; not contiguous)")
        mobile = mobile.replace("`vocab.txt`", "`tokenizer.json` (its `model.vocab` token -> id map)")
    return "\n" + _browser_section(shipped.get("web") or {}) + "\n" + mobile


def _browser_section(web: dict) -> str:
    from zuoxiao.ship.web_assets import VENDOR_HINT

    if web.get("vendored"):
        libs = ", ".join(f"{k} {v}" for k, v in web["versions"].items())
        files = f"`web/vendor/` holds the JavaScript libraries and the WebAssembly binary it needs ({libs})."
    else:
        files = (f"**`web/vendor/` is missing in this build** (no node_modules where it was built): {VENDOR_HINT}; "
                 "until then the page shows a loading error.")
    return f"""## In a browser (offline demo page)
`web/index.html` classifies typed text entirely in the page: ONNX Runtime Web (WebAssembly, one thread) runs
`model.onnx`, `@huggingface/tokenizers` reads `tokenizer.json`, and the bars show softmax(logits / T) with
this bundle's temperature. {files} Serve this folder over HTTP (a `file://` URL cannot fetch the model):

```bash
zuoxiao serve-page path/to/this/dir            # http://127.0.0.1:8000/web/index.html (--port to change)
python -m http.server 8000 --bind 127.0.0.1 --directory path/to/this/dir   # same, without zuoxiao
```
`?model=model.ort` runs the ORT-format model instead; `window.zuoxiao.predict(text)` works from the console.
The page makes no request outside its own host. Its numbers match this folder's Python runtime run on one
text at a time (`batch_size=1`) to ~1e-7 on most texts; WebAssembly int8 kernels can differ by up to ~1e-2 on
a rare text (tested in zuoxiao's tests/ship/test_web.py).
"""


def _baseline_row(report: dict) -> str:
    """A table row for the TF-IDF + logistic-regression baseline, when the finetune stage measured one."""
    b = report.get("baseline")
    if not b:
        return ""
    f1 = "—" if b.get("macro_f1") is None else f"{b['macro_f1']:.4f}"
    return f"| baseline (TF-IDF + logistic regression, same gold rows as the teacher) | {b['accuracy']:.4f} | {f1} | — | — | — |\n"


def _machine(info: dict | None) -> str:
    """'CPU: AMD EPYC, x86_64, avx2, no int8 dot-product instructions': latency means little without its CPU."""
    if not info:
        return "CPU"
    simd = ", ".join(info.get("simd") or []) or "no SIMD flags read"
    dot = "int8 dot-product instructions" if info.get("int8_dot_product") else "no int8 dot-product instructions (VNNI)"
    return f"CPU: {info.get('cpu', 'unknown')}, {info.get('arch', '?')}, {simd}, {dot}"
