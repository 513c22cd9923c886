"""The compress stage: run the configured steps in order and measure after each.

    compress(CompressView.of(cfg), paths)   paths.student + paths.label -> paths.compress (per-step models, report.json,
                           report.md, pareto.png, teacher.json); the ship stage (zuoxiao.ship.stage)
                           then packages the last step's model as the bundle, behind the gate

Every step is measured the same way: accuracy and macro-F1 against gold (cfg.task.eval), agreement with
the teacher's predictions on the same rows, parameters, bytes on disk, latency p50/p95 at batch 1 and 32.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from zuoxiao.core.config import save_resolved
from zuoxiao.core.config.views import CompressView
from zuoxiao.core.errors import InputError
from zuoxiao.core.goldsets import read_labelled
from zuoxiao.core.metrics import agreement, classification_metrics
from zuoxiao.core.paths import StagePaths
from zuoxiao.core.results import CompressResult
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.student.compress import steps as S
from zuoxiao.student.compress.latency import cpu_info
from zuoxiao.student.compress.pareto import write_pareto_report

log = logging.getLogger(__name__)
REPORT = "report.json"


class Context:
    """What every step and measurement needs: eval rows, teacher predictions, settings."""

    def __init__(self, cfg: CompressView, paths: StagePaths):
        self.cfg, self.paths, self.cc = cfg, paths, cfg.compress
        self.max_length = cfg.compress.max_length or cfg.train.max_length
        if cfg.task.eval is None:
            raise InputError("compress measures every step on gold data: set task.eval "
                             "(e.g. task.eval.path=data/test.jsonl)")
        if not (paths.student / "config.json").is_file():
            raise InputError(f"no trained student at {paths.student}; run `zuoxiao train CONFIG` first")
        self.student_metrics = read_json_or_empty(paths.student / "metrics.json")
        self.teacher_pred: np.ndarray | None = None  # [N] on task.eval, set by the teacher pass

    def load_eval(self, label_names: list[str]) -> None:
        self.label_names = list(self.cfg.task.label_names or label_names)
        data = read_labelled(self.cfg.task.eval, self.label_names)
        self.texts, self.gold = data.texts, np.asarray(data.labels)

    def measure(self, name: str, kind: str, logits: np.ndarray, *, params: int, nbytes: int,
                latency: dict, runtime: str, info: dict | None = None) -> dict:
        pred = logits.argmax(-1)
        m = classification_metrics(pred, self.gold, len(self.label_names))
        rec = {"name": name, "kind": kind, "runtime": runtime, "accuracy": round(m["accuracy"], 5),
               "macro_f1": round(m["macro_f1"], 5), "n": m["n"], "params": int(params), "bytes": int(nbytes),
               "latency_ms": latency}
        if self.teacher_pred is not None:
            rec["agreement"] = round(agreement(pred, self.teacher_pred), 5)
        if info:
            rec["info"] = info
        log.info("%-28s acc %.4f  agree %s  %.2f MB  b1 p50 %.2f ms", name, rec["accuracy"],
                 rec.get("agreement"), nbytes / 1e6, latency.get("b1", {}).get("p50", float("nan")))
        return rec


def read_json_or_empty(path: Path) -> dict:
    """The JSON at ``path``, {} when the file does not exist; a file that is not valid JSON is an
    InputError naming it (a stage output someone must rewrite, not a record to skip)."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err}); rerun the stage that wrote it") from None


def _teacher_path(ctx: Context) -> str | None:
    recorded = (ctx.student_metrics.get("teacher") or {}).get("path")
    for cand in (recorded, str(ctx.paths.teacher)):
        if cand and (Path(cand) / "config.json").is_file():
            return cand
    return recorded  # a hub id / embedded name, or None


def teacher_record(ctx: Context) -> dict | None:
    """Teacher accuracy, predictions, size and latency on the eval rows; cached in compress/teacher.json."""
    from zuoxiao.core.shards import read_manifest
    from zuoxiao.student.compress.latency import measure
    from zuoxiao.student.compress.modelio import weights_bytes
    from zuoxiao.teacher import TeacherSource, load_teacher
    from zuoxiao.teacher.classifier import resolve_model_path

    path = _teacher_path(ctx)
    recorded = ctx.student_metrics.get("teacher") or {}
    if path is None:
        log.warning("no teacher path in %s/metrics.json: agreement and retention use recorded numbers only",
                    ctx.paths.student)
        return {"name": "teacher", "kind": "teacher", "accuracy": recorded.get("accuracy"), "recorded_only": True}
    # label names as the label stage passes them: an un-finetuned backbone gets the same seeded head
    labelled_by = {**read_manifest(ctx.paths.label, verify_checksums=False).teacher, "path": path}
    teacher = load_teacher(TeacherSource.of_record(labelled_by, ctx.cfg.teacher.trust_remote_code), ctx.label_names)
    model, tok = teacher.module, teacher.tokenizer
    max_len = teacher.max_length
    key = {"fingerprint": teacher.fingerprint(), "eval_rows": len(ctx.texts), "max_length": max_len,
           "eval_hash": hash_texts(ctx.texts), "latency_seq_len": ctx.cc.latency_seq_len, "with_tokenizer": True}
    cache = ctx.paths.compress / "teacher.json"
    cached = read_json_or_empty(cache)
    if cached.get("key") == key:
        ctx.teacher_pred = np.asarray(cached["pred"])
        return cached["record"]
    logits = teacher.predict_texts(ctx.texts, ctx.cc.eval_batch_size, progress=True)
    from zuoxiao.student.compress.export import input_names

    lat = measure("torch", model, model.config.vocab_size, input_names(tok, model), seq_len=ctx.cc.latency_seq_len,
                  runs=ctx.cc.latency_runs, threads=ctx.cc.latency_threads, tokenizer=tok, texts=ctx.texts[:64])
    ctx.teacher_pred = None  # the teacher's agreement with itself is not a measurement
    rec = ctx.measure("teacher", "teacher", logits, params=teacher.params(),
                      nbytes=weights_bytes(resolve_model_path(path)), latency=lat, runtime="torch fp32",
                      info={"path": str(path)})
    ctx.teacher_pred = logits.argmax(-1)
    write_json_atomic(cache, {"key": key, "record": rec, "pred": ctx.teacher_pred.tolist()})
    return rec


def hash_texts(texts: list[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode() + b"\0")
    return h.hexdigest()[:16]


def compress(cfg: CompressView, paths: StagePaths) -> CompressResult:
    """Run cfg.compress.steps on paths.student; write paths.compress (the ship stage publishes the bundle)."""
    from zuoxiao.student.compress.modelio import load_model

    t0 = time.time()
    ctx = Context(cfg, paths)
    paths.compress.mkdir(parents=True, exist_ok=True)
    for old in paths.compress.glob("[0-9][0-9]-*"):  # step dirs of an earlier run (the teacher cache stays)
        shutil.rmtree(old, ignore_errors=True)
    save_resolved(cfg, paths.compress)
    model, tokenizer = load_model(paths.student)
    from zuoxiao.teacher.classifier import label_names_of

    ctx.load_eval(label_names_of(model))
    if len(ctx.label_names) != model.config.num_labels:
        raise InputError(f"task.label_names has {len(ctx.label_names)} names but the student "
                         f"{model.config.num_labels} outputs; fix task.label_names")
    teacher = teacher_record(ctx)
    state = S.State(model=model, tokenizer=tokenizer, onnx=None, runtime="torch", dir=paths.student)
    records = [S.measure_state(ctx, state, "student", "student")]
    steps = list(cfg.compress.steps)
    for i, step in enumerate(tqdm(steps, desc="compress steps"), start=1):
        name = f"{i:02d}-{step.kind}"
        t = time.time()
        state, info = S.apply(ctx, state, step, paths.compress / name)
        info["seconds"] = round(time.time() - t, 1)
        rec = S.measure_state(ctx, state, name, step.kind, info)
        if step.kind == "vocab_trim":
            vocab_note(step, rec, records[-1])
        write_json_atomic(paths.compress / name / "step.json", rec)
        save_resolved(cfg, paths.compress / name)
        records.append(rec)
    if state.onnx is None:  # no onnx quantize step: ship the float graph (said so in the card)
        state, info = S.export_state(ctx, state, paths.compress / f"{len(steps) + 1:02d}-export")
        records.append(S.measure_state(ctx, state, state.dir.name, "export", info))
    report = {"task": cfg.task.name, "label_names": ctx.label_names, "teacher": teacher, "steps": records,
              "final": {"dir": str(state.dir), "onnx": str(state.onnx), "name": records[-1]["name"]},
              "max_length": ctx.max_length, "seconds": round(time.time() - t0, 1), "measured_on": cpu_info(),
              "label_dir": str(paths.label), "student_dir": str(paths.student)}
    write_json_atomic(paths.compress / REPORT, report)
    write_pareto_report(report, paths.compress)
    return CompressResult(report=str(paths.compress / REPORT), final_step=records[-1]["name"],
                          final_accuracy=records[-1]["accuracy"], teacher_accuracy=(teacher or {}).get("accuracy"),
                          steps=[{**{k: r.get(k) for k in ("name", "kind", "accuracy", "agreement", "bytes",
                                                           "latency_ms", "note", "warning")},
                                  "seconds": (r.get("info") or {}).get("seconds")} for r in records])


def vocab_note(step, rec: dict, prev: dict) -> None:
    """What the vocabulary trim kept and cost, as one line for the stage headline (rec["note"]); a cost
    above vocab_trim.warn_points on task.eval or task.dev is logged as a warning and kept in rec["warning"]."""
    info = rec.get("info") or {}
    if info.get("skipped"):  # auto measured that even min_count 1 costs too much
        rec["note"] = f"vocab kept whole ({info['vocab_after']:,} tokens): {(info.get('auto') or {}).get('why')}"
        return
    note = (f"vocab {info['vocab_before']:,} -> {info['vocab_after']:,} tokens (min_count {info['min_count']}"
            f"{' auto' if info.get('min_count_setting') == 'auto' else ''}), "
            f"{info['transfer_token_coverage']:.1%} of transfer tokens kept")
    costs = {}
    if prev.get("accuracy") is not None:
        costs["task.eval"] = (prev["accuracy"], rec["accuracy"])
    if info.get("dev_accuracy_before") is not None:
        costs["task.dev"] = (info["dev_accuracy_before"], info["dev_accuracy_after"])
        note += (f", dev [UNK] {info['dev_unk_rate_after']:.1%}, dev texts re-split {info['dev_texts_changed']:.1%}"
                 f", dev {info['dev_accuracy_before']:.1%} -> {info['dev_accuracy_after']:.1%}")
    rec["note"] = note
    worst = max(costs, key=lambda k: costs[k][0] - costs[k][1], default=None)
    if worst is not None and 100 * (costs[worst][0] - costs[worst][1]) > step.warn_points:
        a, b = costs[worst]
        rec["warning"] = (f"vocab_trim cost {100 * (a - b):.1f} points on {worst} ({a:.1%} -> {b:.1%}): "
                          f"{note}. Lower vocab_trim.min_count (1 keeps every token of the transfer set) or "
                          "use min_count: auto with a task.dev")
        log.warning("%s", rec["warning"])
