"""Assemble the app-team bundle in a staging directory and measure it with its own runtime.

The bundle is evaluated through ``zuoxiao.ship.runtime.Bundle`` (tokenizers + onnxruntime), not through
the PyTorch path, so the numbers in its model card are the numbers of what ships, tokenisation included.
``ctx`` is ship/stage.py's ShipContext (not imported here: stage.py imports this module).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from zuoxiao.core.metrics import agreement, classification_metrics
from zuoxiao.core.shards import sha256_file, write_json_atomic
from zuoxiao.ship.calibration import ece, fit_temperature, per_class_disagreement, softmax
from zuoxiao.ship.runtime import CHECKSUMS, Bundle

#: Files inference needs (what "bundle bytes" and the size gate count).
RUNTIME_FILES = ["model.onnx", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                 "config.json"]


def _config_json(src: Path, report: dict, final_rec: dict, input_names: list[str]) -> dict:
    config = json.loads((src / "config.json").read_text())
    config["zuoxiao"] = {
        "onnx_file": "model.onnx", "max_length": report["max_length"], "input_names": input_names,
        "pad_token_id": config.get("pad_token_id") or 0, "runtime": final_rec["runtime"],
        "task": report["task"], "label_names": report["label_names"],
        "note": "head/FFN counts in this config may differ from the ONNX graph after pruning; the graph is "
                "authoritative",
    }
    return config


def build_bundle(ctx, report: dict, staging: Path) -> dict:
    """Write the bundle into ``staging`` and return its measurements (the 'shipped' record): the files
    inference needs, measured through the bundle's own runtime, then the hand-off files that describe it."""
    bundle, calibrated_on = write_model_files(ctx, report, staging)
    shipped = measure_bundle(ctx, report, staging, bundle, calibrated_on)
    write_handoff(ctx, report, shipped, staging)
    return shipped


def write_model_files(ctx, report: dict, staging: Path) -> tuple[Bundle, str | None]:
    """The files inference needs (model.onnx, tokenizer, config.json, the stand-alone runtime), calibrated on
    task.dev; returns the loaded Bundle and what it was calibrated on (None: not calibrated)."""
    src = Path(report["final"]["dir"])
    staging.mkdir(parents=True)
    shutil.copyfile(report["final"]["onnx"], staging / "model.onnx")
    for name in RUNTIME_FILES[1:-1]:
        if (src / name).is_file():
            shutil.copyfile(src / name, staging / name)
    _fix_tokenizer_limits(staging / "tokenizer.json", report["max_length"])
    import onnxruntime as ort

    sess = ort.InferenceSession(str(staging / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    del sess
    config = _config_json(src, report, report["steps"][-1], names)
    (staging / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copyfile(Path(__file__).with_name("runtime.py"), staging / "zuoxiao_bundle.py")  # stand-alone runtime

    bundle = Bundle.load(staging, verify=False, threads=ctx.cc.latency_threads)
    # Calibrate on task.dev (never on task.eval, which measures): distilled logits are often too soft.
    if ctx.cfg.task.dev is None:
        return bundle, None
    from zuoxiao.core.goldsets import read_labelled

    dev = read_labelled(ctx.cfg.task.dev, ctx.label_names)
    temperature = fit_temperature(bundle.logits(dev.texts, batch_size=ctx.cc.eval_batch_size), np.asarray(dev.labels))
    config["zuoxiao"]["temperature"] = round(temperature, 6)
    (staging / "config.json").write_text(json.dumps(config, indent=2))
    bundle.temperature = config["zuoxiao"]["temperature"]
    return bundle, f"task.dev ({len(dev.texts)} rows)"


def measure_bundle(ctx, report: dict, staging: Path, bundle: Bundle, calibrated_on: str | None) -> dict:
    """The bundle on task.eval through its own runtime, its size and the gate's verdict: the 'shipped'
    record. Keeps the eval probabilities on ``ctx.eval_probs`` for ship/eval_predictions.npz."""
    final_rec = report["steps"][-1]
    logits = bundle.logits(ctx.texts, batch_size=ctx.cc.eval_batch_size)
    probs = softmax(logits.astype(np.float64) / bundle.temperature)
    pred = probs.argmax(-1)
    ctx.eval_probs = probs.astype(np.float32)  # [N, C]: the run report's confusion matrix and reliability plot
    non_finite = int((~np.isfinite(logits)).any(-1).sum())  # rows whose logits hold NaN/inf: the gate refuses
    m = classification_metrics(pred, ctx.gold, len(ctx.label_names))
    teacher_pred = ctx.teacher_pred
    shipped = {
        "accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5), "n": m["n"],
        "agreement": None if teacher_pred is None else round(agreement(pred, teacher_pred), 5),
        "ece": round(ece(probs, ctx.gold), 5),
        "ece_uncalibrated": round(ece(softmax(logits.astype(np.float64)), ctx.gold), 5),
        "temperature": bundle.temperature, "calibrated_on": calibrated_on,
        "disagreement_by_class": None if teacher_pred is None else per_class_disagreement(
            pred, teacher_pred, ctx.label_names),
        "recall_by_class": sorted(({"class": n, "rows": int((ctx.gold == c).sum()),
                                    "recall": round(float((pred[ctx.gold == c] == c).mean()), 4)}
                                   for c, n in enumerate(ctx.label_names) if (ctx.gold == c).any()),
                                  key=lambda r: r["recall"]),
        "bytes": sum((staging / f).stat().st_size for f in RUNTIME_FILES if (staging / f).is_file()),
        "model_bytes": (staging / "model.onnx").stat().st_size,
        "latency_ms": final_rec["latency_ms"], "latency_measured_on": report.get("measured_on"),
        "runtime": final_rec["runtime"],
        "embedding_bits": (final_rec.get("info") or {}).get("embedding_bits"),
        "from_step": final_rec["name"],
        "step_accuracy": final_rec["accuracy"],
        "non_finite_rows": non_finite,
    }
    from zuoxiao.ship.gate import check_gate

    shipped["gate"] = check_gate(ctx.cfg.ship.gate, report, shipped)
    if ctx.override is not None:  # the gate the config file sets, measured on the same bundle, beside the override
        shipped["gate"]["override"] = ctx.override.record(check_gate(ctx.override.configured, report, shipped))
    return shipped


def write_handoff(ctx, report: dict, shipped: dict, staging: Path) -> None:
    """What describes the bundle and carries it beyond Python: metrics.json, the compress report, model.ort
    for phones, web/ for browsers, the model card, the resolved config and SHA256SUMS over all of it.
    Adds "mobile", "web" and "total_bytes" to ``shipped``."""
    write_json_atomic(staging / "metrics.json", {
        "task": report["task"], "label_names": report["label_names"], "bundle": shipped,
        "gate": shipped["gate"], "gate_override": shipped["gate"].get("override"),
        "baseline": report.get("baseline"), "teacher": report.get("teacher"), "student": report["steps"][0],
        "steps": [{k: r.get(k) for k in ("name", "accuracy", "macro_f1", "agreement", "params", "bytes",
                                          "latency_ms", "runtime")} for r in report["steps"]],
    })
    for extra in ("report.md", "pareto.png"):
        p = ctx.paths.compress / extra
        if p.is_file():
            shutil.copyfile(p, staging / extra)
    # Hand-off beyond Python (before SHA256SUMS, so both are covered): model.ort for phones, web/ for browsers
    from zuoxiao.ship.card import handoff_sections, model_card
    from zuoxiao.ship.mobile import convert_to_ort
    from zuoxiao.ship.web_assets import VENDOR_HINT, add_web_page

    mobile = convert_to_ort(staging)
    web = add_web_page(staging)
    if not web["vendored"]:
        print(f"note: the bundle's web page has no vendored JS/wasm files; {VENDOR_HINT}", file=sys.stderr)
    shipped["mobile"] = {k: mobile[k] for k in ("ort_bytes", "target_platform")}
    shipped["web"] = {"vendored": web["vendored"], "versions": web["versions"],
                      "bytes": sum(web["files"].values())}
    (staging / "README.md").write_text(model_card(report, shipped, ctx) + handoff_sections(staging, shipped))
    from zuoxiao.core.config import save_resolved

    save_resolved(ctx.cfg, staging)  # the config that produced this bundle, covered by SHA256SUMS
    write_checksums(staging)
    shipped["total_bytes"] = sum(p.stat().st_size for p in staging.iterdir() if p.is_file())


def _fix_tokenizer_limits(path: Path, max_length: int) -> None:
    """Make tokenizer.json's own truncation say max_length, drop its padding and write it compact.

    save_pretrained persists the settings of the tokenizer's last call (e.g. the export's sample call:
    truncation 16, padding Fixed 16); consumers that honour tokenizer.json (Rust, swift-transformers) would
    then cut or pad texts differently from config.json's zuoxiao.max_length, which the runtimes use.
    """
    if not path.is_file():
        return
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
    tok.save(str(path), pretty=False)  # compact JSON: the same tokenizer in ~35% fewer bytes (an app downloads it)


def write_checksums(directory: Path) -> None:
    """SHA256SUMS over every file, subfolders included (``web/vendor/x.wasm``: POSIX paths, sha256sum -c
    format)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.relative_to(directory).as_posix() != CHECKSUMS)
    lines = [f"{sha256_file(p)}  {p.relative_to(directory).as_posix()}" for p in files]
    (directory / CHECKSUMS).write_text("\n".join(lines) + "\n")
