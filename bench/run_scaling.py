"""Benchmark of `zuoxiao run` (not a test): SST-2 at 1k and 10k rows, then again with 10% new rows.

Per stage: wall time and peak RSS. Each stage runs in its own `zuoxiao run` process (run.stages grows by
one stage per call on the same run id, so earlier stages are skipped) and os.wait4 returns that process's
own peak RSS. Targets (issue 5): peak RSS at 10k <= 1.1x at 1k (streaming, not loading all), and the
incremental rerun's label stage <= 15% of the first run's wall time.

    flock /tmp/zx-cpu.lock python bench/run_scaling.py --rows 1000 10000 > bench.json

Data comes read-only from ../shared/data/sst2; inputs are written under --workdir (outside the repo).
A teacher is fine-tuned once (1,000 gold rows, 1 epoch) unless --teacher gives one; train and compress
are kept small (--train-steps) because the label stage and memory are what this measures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SST2 = Path(os.environ.get("ZX_SHARED_DATA", REPO.parent / "shared" / "data")) / "sst2"
STAGES = ["label", "train", "compress"]


def sst2_rows(split: str) -> list[dict]:
    with open(SST2 / f"{split}.tsv", newline="") as f:
        return [{"id": f"{split}-{i}", "text": r["sentence"], "label": r["label"]}
                for i, r in enumerate(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def zuoxiao(args: list[str], log: Path) -> dict:
    """Run `python -m zuoxiao.cli ARGS`; wall seconds, exit code and this child's own peak RSS."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zuoxiao.cli", *args], stdout=out, stderr=out, env=env,
                                cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(time.perf_counter() - t0, 2), "exit_code": proc.returncode,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def job_config(work: Path, teacher: str, train_steps: int, eval_rows: int) -> dict:
    return {
        "output_dir": str(work / "out"),
        "task": {"name": "sst2", "label_names": ["0", "1"],
                 "eval": {"path": str(SST2 / "test.tsv"), "format": "tsv", "text_column": "sentence",
                          "label_column": "label", "limit": eval_rows}},
        "label": {"input": {"path": str(work / "input.jsonl"), "id_column": "id"},
                  "teacher": {"path": teacher, "max_length": 64}, "batch_size": 64, "rows_per_shard": 5000},
        "train": {"student": {"kind": "from_teacher", "layers": [0, 5]}, "max_length": 64,
                  "optim": {"max_steps": train_steps, "batch_size": 32}},
        "compress": {"latency_runs": 5}, "ship": {"gate": {"min_retention": 0.5}},
    }


def run_case(work: Path, run_id: str, log: Path, extra: list[str]) -> dict:
    """One full run, one process per stage; stage seconds from the run's own summary."""
    per_stage = {}
    for i, stage in enumerate(STAGES):
        stages = "[" + ",".join(STAGES[: i + 1]) + "]"
        res = zuoxiao(["run", str(work / "job.yaml"), "--set", f"run.run_id={run_id}",
                       "--set", f"run.stages={stages}"] + [x for kv in extra for x in ("--set", kv)], log)
        if res["exit_code"] not in (0, 3):
            raise SystemExit(f"zuoxiao run failed (exit {res['exit_code']}); see {log}")
        summary = json.loads((work / "out" / "runs" / run_id / "summary.json").read_text())
        info = summary["stages"][stage]
        per_stage[stage] = {"seconds": info["seconds"], "action": info["action"], "process_wall_s": res["wall_s"],
                            "peak_rss_mb": res["peak_rss_mb"]}
    m = summary["metrics"]
    manifest = json.loads((work / "out" / "runs" / run_id / "label" / "manifest.json").read_text())
    per_stage["label"]["label_timings"] = manifest.get("timings")  # setup / pipeline / teacher seconds
    return {"stages": per_stage, "status": summary["status"], "cache_hits": m.get("cache_hits"),
            "cache_misses": m.get("cache_misses"), "cache_hit_rate": m.get("cache_hit_rate"),
            "teacher_seconds_saved": m.get("teacher_seconds_saved"), "student_accuracy": m.get("student_accuracy"),
            "teacher_accuracy": m.get("teacher_accuracy")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--new-fraction", type=float, default=0.10)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/zx-bench-run-scaling"))
    ap.add_argument("--teacher", help="fine-tuned teacher dir (default: fine-tune one once)")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--eval-rows", type=int, default=300)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    args = ap.parse_args()

    train_rows = sst2_rows("train")
    need = int(max(args.rows) * (1 + args.new_fraction)) + 1000
    if len(train_rows) < need:
        raise SystemExit(f"SST-2 train has {len(train_rows)} rows; need {need} for --rows {args.rows}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = args.workdir / "zuoxiao.log"
    result: dict = {"rows": args.rows, "new_fraction": args.new_fraction, "train_steps": args.train_steps}

    teacher = args.teacher
    if teacher is None:  # gold rows for the teacher come from the END of train: never in the transfer sets
        tdir = args.workdir / "teacher-job"
        write_jsonl(tdir / "gold.jsonl", train_rows[-1000:])
        cfg = {"output_dir": str(tdir / "out"), "task": {"name": "sst2", "label_names": ["0", "1"]},
               "finetune": {"data": {"path": str(tdir / "gold.jsonl")}, "teacher": {"max_length": 64},
                            "optim": {"epochs": 1, "batch_size": 32, "lr": 5e-5}, "eval_fraction": 0.1},
               "label": {"input": {"path": str(tdir / "gold.jsonl")}}}
        (tdir / "job.yaml").write_text(yaml.safe_dump(cfg))
        teacher = str(tdir / "out" / "teacher")
        if not (Path(teacher) / "config.json").is_file():
            res = zuoxiao(["finetune-teacher", str(tdir / "job.yaml")], log)
            result["teacher_finetune"] = res
            if res["exit_code"]:
                raise SystemExit(f"teacher fine-tuning failed; see {log}")

    for n in args.rows:
        work = args.workdir / f"rows-{n}"
        if work.exists():
            import shutil

            shutil.rmtree(work)  # fresh cache and runs: the first run must be a cold one
        work.mkdir(parents=True)
        (work / "job.yaml").write_text(yaml.safe_dump(job_config(work, teacher, args.train_steps, args.eval_rows)))
        write_jsonl(work / "input.jsonl", train_rows[:n])
        first = run_case(work, "first", log, args.set)
        n_new = int(n * args.new_fraction)
        write_jsonl(work / "input.jsonl", train_rows[: n + n_new])  # the nightly data grew by 10%
        incr = run_case(work, "incremental", log, args.set)
        ratio = incr["stages"]["label"]["seconds"] / first["stages"]["label"]["seconds"]
        result[str(n)] = {"first": first, "incremental": incr, "new_rows": n_new,
                          "incremental_label_fraction": round(ratio, 3)}
        print(json.dumps({"done": n, **result[str(n)]}), file=sys.stderr)

    lo, hi = str(min(args.rows)), str(max(args.rows))
    peak = {k: max(s["peak_rss_mb"] for s in result[k]["first"]["stages"].values()) for k in (lo, hi)}
    per_stage_ratio = {s: round(result[hi]["first"]["stages"][s]["peak_rss_mb"]
                                / result[lo]["first"]["stages"][s]["peak_rss_mb"], 3) for s in STAGES}
    result["targets"] = {
        "peak_rss_mb": peak, "peak_rss_ratio": round(peak[hi] / peak[lo], 3), "per_stage_rss_ratio": per_stage_ratio,
        "peak_rss_ratio_ok": peak[hi] / peak[lo] <= 1.1,
        "incremental_label_fraction": {k: result[k]["incremental_label_fraction"] for k in map(str, args.rows)},
        "incremental_label_ok": all(result[str(k)]["incremental_label_fraction"] <= 0.15 for k in args.rows),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
