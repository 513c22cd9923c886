"""`zuoxiao run`: finetune -> label -> train -> compress (export + gate) into <output_dir>/runs/<run-id>/.

Safe to run from cron:
- one run per output dir (RunLock; the second run gets LockHeld, exit 4);
- every stage writes <stage dir>/.started.json when it begins and <stage dir>/.done.json (fingerprint of
  its inputs + a record of its outputs) atomically LAST, so a stage counts as done only when it finished;
- a rerun resumes the latest unfinished run dir, skips stages whose fingerprint matches and whose outputs
  are intact, resumes training from its checkpoints, and wipes any other half-done stage before redoing
  it (no partial shard or checkpoint is ever read);
- a new run reuses (hard-links) stages of earlier runs with the same fingerprint;
- the `latest` pointer moves only when the quality gate passes.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from zuoxiao.core.config import save_resolved
from zuoxiao.core.config.run import STAGES
from zuoxiao.core.errors import EXIT_GATE_FAILED, EXIT_OK, ConfigError, GateFailed
from zuoxiao.core.fingerprint import (
    code_version,
    data_fingerprint,
    digest,
    model_fingerprint,
    outputs_intact,
    outputs_record,
    teacher_fingerprint,
)
from zuoxiao.core.lock import RunLock
from zuoxiao.core.paths import StagePaths, teacher_path_for_label
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.run.report import EventLog, collect_metrics, print_summary

log = logging.getLogger(__name__)

#: Folders (under the run dir) each stage owns; markers live in the first one.
STAGE_DIRS = {"finetune": ("teacher",), "label": ("label",), "train": ("student",), "compress": ("compress", "bundle")}
#: Stages that can continue from their own checkpoints after a crash (the others are wiped and redone).
RESUMABLE = {"train"}
FINISHED = {"passed", "gate_failed"}


@dataclass
class StageContext:
    run_dir: Path
    resume: bool  # continue from this stage's checkpoints (same fingerprint, killed mid-way)
    cache_dir: Path | None  # the incremental teacher cache, shared by all runs of this output dir


def _finetune(cfg, paths: StagePaths, ctx: StageContext) -> dict:
    from zuoxiao.teacher.finetune import finetune_teacher

    return finetune_teacher(cfg, paths.teacher)


def _label(cfg, paths: StagePaths, ctx: StageContext) -> dict:
    from zuoxiao.pipelines.label import label_from_config

    return label_from_config(cfg, paths.label, teacher_path=teacher_path_for_label(cfg, paths),
                             cache_dir=ctx.cache_dir)


def _train(cfg, paths: StagePaths, ctx: StageContext) -> dict:
    if cfg.run.train_launcher:
        return _launch_train(cfg, paths, ctx)
    from zuoxiao.student.train import train

    return train(cfg, paths.label, paths.student, resume=ctx.resume)


def _launch_train(cfg, paths: StagePaths, ctx: StageContext) -> dict:
    """Train in a launcher subprocess (e.g. `accelerate launch` on GPUs) with the run's resolved config,
    so the config means the same thing in either place; the runner still fingerprints and records it."""
    import subprocess

    cmd = [*cfg.run.train_launcher, "-m", "zuoxiao.cli", "train", str(ctx.run_dir / "config.resolved.yaml"),
           "--shards", str(paths.label), "--output", str(paths.student)] + (["--resume"] if ctx.resume else [])
    log.info("launching the train stage: %s", " ".join(cmd))
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"train launcher exited with {proc.returncode}: {' '.join(cmd)}; its output is above "
                           "(rerun resumes from the last checkpoint)")
    metrics = paths.student / "metrics.json"
    if not metrics.is_file():
        raise RuntimeError(f"train launcher finished but wrote no {metrics}; check run.train_launcher {cmd[:3]}")
    return json.loads(metrics.read_text())


def _compress(cfg, paths: StagePaths, ctx: StageContext) -> dict:
    from zuoxiao.student.compress.stage import compress

    return compress(cfg, paths)


#: The stage implementations, picked by name. Tests pass fakes with the same signature via stage_fns.
STAGE_FNS = {"finetune": _finetune, "label": _label, "train": _train, "compress": _compress}


def active_stages(cfg) -> list[str]:
    if cfg.finetune is not None and "finetune" not in cfg.run.stages:
        raise ConfigError(
            f"finetune is configured but run.stages={cfg.run.stages} leaves it out; add finetune to "
            "run.stages, or set finetune: null and point label.teacher.path at a teacher"
        )
    return [s for s in STAGES if s in cfg.run.stages and (s != "finetune" or cfg.finetune is not None)]


def stage_inputs(cfg, stage: str) -> dict:
    """What a stage reads besides upstream outputs: its config section, task, seed, data file hashes."""
    task = cfg.task.model_dump(mode="json")
    inputs: dict = {"seed": cfg.seed, "task": task}
    if stage == "finetune":
        inputs.update(finetune=cfg.finetune.model_dump(mode="json"), data=data_fingerprint(cfg.finetune.data),
                      eval=data_fingerprint(cfg.task.eval), dev=data_fingerprint(cfg.task.dev),
                      backbone=model_fingerprint(cfg.finetune.teacher.path))
    elif stage == "label":
        label = cfg.label.model_dump(mode="json")
        # Where and how parallel the pipeline runs does not change the labels: moving the label stage to
        # Dataflow/Flink/Spark, or giving it more threads, must not invalidate finished work.
        label.pop("beam", None)
        label["teacher"].pop("num_threads", None)
        inputs.update(label=label, data=data_fingerprint(cfg.label.input))
        inputs["task"] = {k: v for k, v in task.items() if k != "eval"}  # label never reads the eval set
    else:
        inputs.update({stage: getattr(cfg, stage).model_dump(mode="json"), "eval": data_fingerprint(cfg.task.eval)})
    if stage != "finetune" and cfg.finetune is None:
        inputs["teacher"] = teacher_fingerprint(cfg.label.teacher)  # every ensemble member when members: is set
    return inputs


def _now_precise() -> str:
    """UTC with microseconds: orders runs started within the same second."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _wipe(paths: StagePaths, stage: str) -> None:
    for name in STAGE_DIRS[stage]:
        shutil.rmtree(paths.root / name, ignore_errors=True)


def _marker(paths: StagePaths, stage: str, name: str) -> Path:
    return paths.root / STAGE_DIRS[stage][0] / name


def _runs(out: Path) -> list[tuple[str, dict]]:
    """(run id, run.json) of every run under out/runs, oldest first."""
    found = []
    for p in (out / "runs").glob("*/run.json"):
        state = _read_json(p)
        if state:
            found.append((p.parent.name, state))
    return sorted(found, key=lambda x: (x[1].get("started_at", ""), x[0]))


def pick_run_id(cfg, out: Path) -> tuple[str, bool]:
    """(run id, resumed?): the configured id, else the latest run if it did not finish, else a new one."""
    if cfg.run.run_id:
        return cfg.run.run_id, (out / "runs" / cfg.run.run_id / "run.json").is_file()
    runs = _runs(out)
    if runs and runs[-1][1].get("status") not in FINISHED:
        return runs[-1][0], True
    base = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_id, n = base, 1
    while (out / "runs" / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id, False


def _find_reusable(out: Path, run_id: str, stage: str, fp: str) -> tuple[str, dict] | None:
    for other, _state in reversed(_runs(out)):
        if other == run_id:
            continue
        other_paths = StagePaths(out / "runs" / other)
        done = _read_json(_marker(other_paths, stage, ".done.json"))
        if done and done.get("fingerprint") == fp and outputs_intact(other_paths.root, done["outputs"]) is None:
            return other, done
    return None


def _link_tree(src: Path, dst: Path) -> None:
    """Copy by hard links (same bytes, no extra disk); plain copy across file systems."""
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link)


def _fingerprint(cfg, stage: str, upstream: dict[str, str]) -> str:
    return digest({"stage": stage, "code": code_version(stage), "inputs": stage_inputs(cfg, stage),
                   "upstream": upstream})


def _gate_of(done: dict | None) -> dict | None:
    if not done:
        return None
    result = done.get("result") or {}
    gate = result.get("gate") if isinstance(result, dict) else None
    return gate if isinstance(gate, dict) else None


def _point_latest(out: Path, run_id: str) -> None:
    """Swap <out>/latest (symlink) and <out>/latest.json atomically: readers see the old or the new run."""
    target = Path("runs") / run_id
    tmp = out / f".latest.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(target, tmp, target_is_directory=True)
        os.replace(tmp, out / "latest")
    except OSError as err:  # file systems without symlinks: latest.json is the portable pointer
        log.warning("could not update the latest symlink (%s); latest.json is updated", err)
    write_json_atomic(out / "latest.json", {"run_id": run_id, "run_dir": str(target),
                                            "bundle": str(target / "bundle"),
                                            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def _newer_than_latest(out: Path, state: dict) -> bool:
    """A rerun of an older run (a backfill, a scheduler retry of last week) must not move `latest` back."""
    current = (_read_json(out / "latest.json") or {}).get("run_id")
    if not current or current == state["run_id"]:
        return True
    other = _read_json(out / "runs" / current / "run.json") or {}
    return other.get("started_at", "") <= state["started_at"]


def _prune_runs(out: Path, keep: int, current: str) -> list[str]:
    latest = (_read_json(out / "latest.json") or {}).get("run_id")
    finished = [r for r, s in _runs(out) if s.get("status") in FINISHED and r not in (current, latest)]
    doomed = finished[: max(0, len(finished) - (keep - 1))]
    # Reused stages are hard-linked, so deleting their origin loses no bytes; but a reused label manifest
    # still names the teacher dir of the run that labelled (train loads it): keep that run.
    referenced = {(_read_json(out / "runs" / r / "label" / ".done.json") or {}).get("reused_from")
                  for r, _ in _runs(out) if r not in doomed}
    doomed = [r for r in doomed if r not in referenced]
    for r in doomed:
        shutil.rmtree(out / "runs" / r, ignore_errors=True)
    return doomed


def run_job(cfg, force=(), stage_fns: dict | None = None, console=None) -> dict:
    """Run (or resume) the job; returns the summary dict with "exit_code" (0 ok, 3 gate failed)."""
    from rich.console import Console

    console = console or Console()
    fns = {**STAGE_FNS, **(stage_fns or {})}
    chain = active_stages(cfg)
    force = list(force or [])
    unknown = [f for f in force if f not in STAGES and f != "all"]
    if unknown:
        raise ConfigError(f"--force {unknown}: unknown stage; choose from {list(STAGES)} or 'all'")
    if "all" in force:
        force = list(chain)
    out = Path(cfg.output_dir)
    with RunLock(out):
        run_id, resumed = pick_run_id(cfg, out)
        paths = StagePaths(out / "runs" / run_id)
        run_dir = paths.root
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        state = (_read_json(run_dir / "run.json") if resumed else None) or {
            "run_id": run_id, "started_at": _now_precise(), "attempts": 0}
        state.update(status="running", attempts=state.get("attempts", 0) + 1, pid=os.getpid())
        write_json_atomic(run_dir / "run.json", state)
        save_resolved(cfg, run_dir)
        events = EventLog(run_dir / "logs" / "events.jsonl", run_id)
        handler = logging.FileHandler(run_dir / "logs" / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        console.rule(f"zuoxiao run {run_id}" + (" (resumed)" if resumed else ""))
        console.print(f"run dir: {run_dir}   stages: {' -> '.join(chain)}")
        events.emit("run_start", resumed=resumed, attempt=state["attempts"], stages=chain, force=force,
                    pid=os.getpid())
        try:
            stages = _run_stages(cfg, chain, force, fns, out, paths, run_id, events, console)
        except BaseException as err:  # KeyboardInterrupt too: the run stays resumable
            state.update(status="failed", error=f"{type(err).__name__}: {err}")
            write_json_atomic(run_dir / "run.json", state)
            events.emit("run_end", status="failed", error=state["error"])
            logging.getLogger().removeHandler(handler)
            handler.close()
            raise
        gate = _gate_of(stages.get("compress", {}).get("done"))
        moved = False
        if "compress" not in chain or gate is None:
            status, exit_code = "partial", EXIT_OK  # no gate ran: nothing to publish, resumable later
        elif gate.get("passed"):
            status, exit_code = "passed", EXIT_OK
            moved = _newer_than_latest(out, state)
            if moved:
                _point_latest(out, run_id)
        else:
            status, exit_code = "gate_failed", EXIT_GATE_FAILED
        summary = {
            "run_id": run_id, "run_dir": str(run_dir), "status": status, "exit_code": exit_code,
            "resumed": resumed, "gate": gate, "latest_moved": status == "passed" and moved,
            "bundle": str(paths.bundle) if status == "passed" else None,
            "stages": {s: {k: v for k, v in info.items() if k != "done"} for s, info in stages.items()},
            "metrics": collect_metrics(paths, {s: i.get("done") for s, i in stages.items()}, out),
        }
        if status in FINISHED and cfg.run.keep_runs:
            summary["pruned_runs"] = _prune_runs(out, cfg.run.keep_runs, run_id)
        write_json_atomic(run_dir / "summary.json", summary)
        state.update(status=status, finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        state.pop("error", None)
        write_json_atomic(run_dir / "run.json", state)
        events.emit("run_end", status=status, exit_code=exit_code)
        logging.getLogger().removeHandler(handler)
        handler.close()
        print_summary(summary, console)
        return summary


def _run_stages(cfg, chain, force, fns, out, paths, run_id, events, console) -> dict:
    cache_dir = out / "cache" if cfg.run.cache.enabled else None
    forced = False
    upstream: dict[str, str] = {}
    stages: dict[str, dict] = {}
    for i, stage in enumerate(chain, 1):
        forced = forced or stage in force  # forcing a stage redoes everything below it too
        fp = _fingerprint(cfg, stage, dict(upstream))
        done_path = _marker(paths, stage, ".done.json")
        done = _read_json(done_path)
        label = f"[{i}/{len(chain)}] {stage}"
        problem = None if not done or done.get("fingerprint") != fp else outputs_intact(paths.root, done["outputs"])
        if not forced and done and done.get("fingerprint") == fp and problem is None:
            action, seconds = "skipped", 0.0
            console.print(f"{label}: up to date, skipped")
        else:
            reuse = None
            if not forced and cfg.run.reuse:
                reuse = _find_reusable(out, run_id, stage, fp)
            if reuse is not None:
                other, done = reuse
                t0 = time.perf_counter()
                _wipe(paths, stage)
                for name in STAGE_DIRS[stage]:
                    if (out / "runs" / other / name).exists():
                        _link_tree(out / "runs" / other / name, paths.root / name)
                done = {**done, "reused_from": other}
                write_json_atomic(done_path, done)
                action, seconds = "reused", time.perf_counter() - t0
                console.print(f"{label}: same inputs as run {other}, reused its outputs")
            else:
                why = ("forced" if forced else "not done yet" if not done else
                       "inputs changed" if done.get("fingerprint") != fp else f"outputs damaged ({problem})")
                done, action, seconds = _execute(cfg, stage, fp, fns[stage], paths, cache_dir, events, console,
                                                 label, why, forced)
        events.emit("stage_" + action, stage=stage, seconds=round(seconds, 3), fingerprint=fp,
                    output_digest=done["output_digest"], reused_from=done.get("reused_from"))
        upstream[stage] = done["output_digest"]
        stages[stage] = {"action": action, "seconds": round(seconds, 3), "fingerprint": fp,
                         "stage_seconds": done.get("seconds"), "peak_rss_mb": done.get("peak_rss_mb"),
                         "done": done}
    return stages


def _execute(cfg, stage, fp, fn, paths, cache_dir, events, console, label, why, forced):
    started = _read_json(_marker(paths, stage, ".started.json"))
    checkpoints = paths.root / STAGE_DIRS[stage][0] / "checkpoints"
    resume = (stage in RESUMABLE and not forced and started is not None and started.get("fingerprint") == fp
              and checkpoints.is_dir() and any(checkpoints.iterdir()))
    if not resume:
        _wipe(paths, stage)  # never let a stage see leftovers of a killed or outdated attempt
    (paths.root / STAGE_DIRS[stage][0]).mkdir(parents=True, exist_ok=True)
    write_json_atomic(_marker(paths, stage, ".started.json"),
                      {"fingerprint": fp, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "pid": os.getpid(), "resume": resume})
    console.rule(f"{label} ({'resuming from checkpoint' if resume else why})")
    events.emit("stage_start", stage=stage, fingerprint=fp, resume=resume, reason=why)
    t0 = time.perf_counter()
    ctx = StageContext(run_dir=paths.root, resume=resume, cache_dir=cache_dir)
    try:
        result = fn(cfg, paths, ctx)
    except GateFailed as err:  # a verdict, not a crash: recorded like any result, so reruns report it too
        report = getattr(err, "report", None) or {}
        result = {"gate": {**(report.get("gate") or {}), "passed": False, "message": str(err)},
                  "final": report.get("bundle"), "teacher": report.get("teacher")}
    except BaseException as err:
        events.emit("stage_failed", stage=stage, seconds=round(time.perf_counter() - t0, 3),
                    error=f"{type(err).__name__}: {err}")
        console.print(f"{label}: FAILED after {time.perf_counter() - t0:.1f} s: {type(err).__name__}: {err}")
        raise
    seconds = time.perf_counter() - t0
    for name in STAGE_DIRS[stage]:  # the resolved config beside every artifact
        if (paths.root / name).is_dir() and not (paths.root / name / "config.resolved.yaml").exists():
            save_resolved(cfg, paths.root / name)
    record = outputs_record(paths.root, [paths.root / n for n in STAGE_DIRS[stage]])
    done = {"stage": stage, "fingerprint": fp, "code_version": code_version(stage),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "resumed": resume, "result": _jsonable(result), "outputs": record, "output_digest": digest(record)}
    write_json_atomic(_marker(paths, stage, ".done.json"), done)  # LAST: the stage now counts as done
    for name in STAGE_DIRS[stage]:  # resume checkpoints are useless once the stage is done (~100 MB each)
        shutil.rmtree(paths.root / name / "checkpoints", ignore_errors=True)
    console.print(f"{label}: done in {seconds:.1f} s")
    return done, "ran", seconds


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str)) if obj is not None else {}
