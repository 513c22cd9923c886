"""Tiny deterministic stand-ins for the four stages, to test the runner's logic fast.

They follow the real stages' contracts: label writes shards then manifest.json LAST and uses a teacher
cache under ctx.cache_dir; train writes atomic checkpoints and resumes from the newest with
ctx.resume; ship raises GateFailed(result=...) when the gate refuses. Every call is appended to
<output_dir>/calls.jsonl. ZX_FAKE_CRASH="label:N" / "train:N" kills the process (SIGKILL) after shard /
step N, for crash tests run in a subprocess:  python -m tests.run.fake_stages CONFIG [--force S]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from zuoxiao.core.errors import GateFailed
from zuoxiao.core.results import CompressResult, FinetuneResult, LabelResult, ShipResult, TrainResult
from zuoxiao.core.shards import write_json_atomic


def _call(cfg, stage: str, **info) -> None:
    with open(Path(cfg.output_dir) / "calls.jsonl", "a") as f:
        f.write(json.dumps({"stage": stage, "pid": os.getpid(), **info}) + "\n")


def calls(output_dir: Path) -> list[dict]:
    p = Path(output_dir) / "calls.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def _maybe_crash(stage: str, n: int) -> None:
    spec = os.environ.get("ZX_FAKE_CRASH", "")
    if spec == f"{stage}:{n}":
        os.kill(os.getpid(), signal.SIGKILL)


def _h(*parts) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def fake_finetune(cfg, paths, ctx):
    _call(cfg, "finetune")
    paths.teacher.mkdir(parents=True, exist_ok=True)
    (paths.teacher / "config.json").write_text(json.dumps({"fake": True, "seed": cfg.seed}))
    _maybe_crash("finetune", 1)  # after writing part of its output, before .done.json
    return FinetuneResult(teacher_dir=str(paths.teacher), accuracy=0.9, eval_source="dev", dev_accuracy=0.9,
                          baseline_dev_accuracy=0.8)


def _teacher_logit(text: str) -> float:
    return int(_h("teacher", text)[:6], 16) / 0xFFFFFF


def fake_label(cfg, paths, ctx):
    rows = [json.loads(x) for x in Path(cfg.label.input.paths[0]).read_text().splitlines() if x.strip()]
    cache_file = ctx.cache_dir / "fake_cache.json" if ctx.cache_dir else None
    cache = json.loads(cache_file.read_text()) if cache_file and cache_file.exists() else {}
    hits = misses = 0
    out = []
    for r in rows:
        key = _h(r["text"])
        if key in cache:
            hits += 1
        else:
            misses += 1
            cache[key] = _teacher_logit(r["text"])
        out.append({"id": r["id"], "text": r["text"], "logit": cache[key]})
    (paths.label / "shards").mkdir(parents=True, exist_ok=True)
    per = max(1, cfg.label.rows_per_shard)
    shards = []
    for i in range(0, len(out), per):
        name = f"shards/part-{i // per:05d}.json"
        (paths.label / name).write_text(json.dumps(out[i : i + per]))
        shards.append(name)
        _maybe_crash("label", len(shards))
    if cache_file:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache_file, cache)
    manifest = {"shards": shards, "counts": {"written": len(out), "cache_hits": hits, "cache_misses": misses,
                                             "teacher_seconds": 0.01 * misses}}
    write_json_atomic(paths.label / "manifest.json", manifest)
    _call(cfg, "label", hits=hits, misses=misses)
    return LabelResult(label_dir=str(paths.label), read=len(out), labeled=len(out), shards=len(shards),
                       cache_hits=hits, cache_misses=misses, teacher_seconds=0.01 * misses, num_classes=2,
                       mean_entropy_nats=0.5, entropy_fraction=round(0.5 / 0.6931471805599453, 4),
                       label_distribution={"a": len(out) - len(out) // 2, "b": len(out) // 2})


def fake_train(cfg, paths, ctx):
    assert (paths.label / "manifest.json").exists(), "train must never start on an unfinished label dir"
    manifest = json.loads((paths.label / "manifest.json").read_text())
    ck = paths.student / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    step, state = 0, _h("init", cfg.seed)
    done_steps = sorted(int(p.name.split("-")[1]) for p in ck.glob("step-*"))
    if ctx.resume and done_steps:
        step = done_steps[-1]
        state = (ck / f"step-{step}").read_text()
    _call(cfg, "train", resume=ctx.resume, start_step=step)
    total = 5
    for s in range(step + 1, total + 1):
        state = _h(state, s, *manifest["shards"])
        tmp = ck / f".step-{s}.tmp"
        tmp.write_text(state)
        tmp.replace(ck / f"step-{s}")
        _maybe_crash("train", s)
    (paths.student / "model.bin").write_text(state)
    metrics = {"teacher": {"accuracy": 0.9}, "student": {"accuracy": 0.88}}
    (paths.student / "metrics.json").write_text(json.dumps(metrics))
    return TrainResult(student_dir=str(paths.student), teacher_accuracy=0.9, student_accuracy=0.88, metrics=metrics,
                       student_dev_accuracy=0.87, teacher_dev_accuracy=0.91, dev_agreement=0.95)


def fake_compress(cfg, paths, ctx):
    _call(cfg, "compress")
    model = (paths.student / "model.bin").read_text()
    paths.compress.mkdir(parents=True, exist_ok=True)
    (paths.compress / "model.onnx").write_text(_h("onnx", model))
    report = {"final_accuracy": 0.88, "teacher_accuracy": 0.9}
    (paths.compress / "report.json").write_text(json.dumps(report))
    _maybe_crash("compress", 1)
    steps = [{"name": "student", "kind": "student", "accuracy": 0.89, "bytes": 4_000_000},
             {"name": "01-quantize", "kind": "quantize", "accuracy": 0.88, "bytes": 1_500_000, "seconds": 0.5}]
    return CompressResult(report=str(paths.compress / "report.json"), final_step="01-quantize", steps=steps, **report)


def fake_ship(cfg, paths, ctx):
    _call(cfg, "ship")
    retention = 0.88 / 0.9
    need = cfg.ship.gate.min_retention
    passed = need is None or retention >= need
    checks = [{"name": "finite_outputs", "value": 0, "limit": 0, "ok": True},
              {"name": "min_retention", "value": round(retention, 5), "limit": need, "ok": passed}]
    gate = {"passed": passed, "checks": checks, "retention": round(retention, 5), "size_mb": 1.5,
            "latency_ms_p50": 2.0}
    result = ShipResult(bundle=str(paths.bundle) if passed else None, passed=passed, accuracy=0.88,
                        teacher_accuracy=0.9, student_accuracy=0.88, retention=gate["retention"], size_mb=1.5,
                        latency_ms_p50=2.0, gate=gate)
    if not passed:
        raise GateFailed(f"retention {retention:.3f} < min_retention {need}", result=result)
    paths.bundle.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.compress / "model.onnx", paths.bundle / "model.onnx")
    _maybe_crash("ship", 1)
    return result


FAKES = {"finetune": fake_finetune, "label": fake_label, "train": fake_train, "compress": fake_compress,
         "ship": fake_ship}


def main(argv: list[str]) -> int:
    from zuoxiao.core.config import load_config
    from zuoxiao.core.errors import ZuoxiaoError
    from zuoxiao.run.runner import run_job

    force = argv[argv.index("--force") + 1 :] if "--force" in argv else []
    try:
        return run_job(load_config(argv[0]), force=force, stage_fns=FAKES)["exit_code"]
    except ZuoxiaoError as err:
        print(f"zuoxiao: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
