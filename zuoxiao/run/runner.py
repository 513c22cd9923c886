"""`zuoxiao run`: finetune -> label -> train -> compress -> ship into <output_dir>/runs/<run-id>/.

Safe to run from cron:
- one run per output dir (RunLock; the second run gets LockHeld, exit 4);
- every stage writes <stage dir>/.started.json when it begins and <stage dir>/.done.json (fingerprint of
  its inputs + the sha256 of every output + its typed result) atomically LAST, so a stage counts as
  done only when it finished;
- a rerun resumes the latest unfinished run dir, skips stages whose fingerprint matches and whose outputs
  verify, resumes training from its checkpoints, and wipes any other half-done stage before redoing it;
- a new run reuses (copies, then verifies) stages of earlier runs with the same fingerprint;
- run.json always ends in a final status (passed, gate_failed, partial, failed);
- the `latest` pointer moves only when the quality gate (ship stage) passes.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from zuoxiao.core.config import save_resolved
from zuoxiao.core.config.run import STAGES
from zuoxiao.core.datacheck import check_before_run
from zuoxiao.core.errors import EXIT_GATE_FAILED, EXIT_OK, ConfigError, GateFailed
from zuoxiao.core.fingerprint import code_version, digest, outputs_intact, outputs_record
from zuoxiao.core.kinds import require_supported
from zuoxiao.core.lock import RunLock
from zuoxiao.core.paths import StagePaths
from zuoxiao.core.results import RESULT_TYPES, ShipResult, StageResult
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.core.split import prepare_data, record_prepared
from zuoxiao.run import history as H
from zuoxiao.run.report_html import write_report_html
from zuoxiao.run.stages import (
    RESUMABLE,
    STAGE_FNS,
    PeakRss,
    StageContext,
    active_stages,
    restored_process_state,
    stage_inputs,
)
from zuoxiao.run.summary import EventLog, collect_metrics, print_summary

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """Everything the stage loop needs about this run, instead of long positional argument lists."""

    cfg: object
    out: Path
    run_id: str
    paths: StagePaths
    events: EventLog
    console: object
    fns: dict
    force: list[str] = field(default_factory=list)

    @property
    def cache_dir(self) -> Path | None:
        return self.out / "cache" if self.cfg.run.cache.enabled else None


def _now_precise() -> str:
    """UTC with microseconds: orders runs started within the same second."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fingerprint(cfg, stage: str, upstream: dict[str, str]) -> str:
    return digest({"stage": stage, "code": code_version(stage), "inputs": stage_inputs(cfg, stage),
                   "upstream": upstream})


def run_job(cfg, force=(), stage_fns: dict | None = None, console=None) -> dict:
    """Run (or resume) the job; returns the summary dict with "exit_code" (0 ok, 3 gate failed)."""
    from rich.console import Console

    force = list(force or [])
    unknown = [f for f in force if f not in STAGES and f != "all"]
    if unknown:
        raise ConfigError(f"--force {unknown}: unknown stage; choose from {list(STAGES)} or 'all'")
    require_supported(cfg.task.kind, active_stages(cfg))  # before any data is read: a clear exit 2
    out = Path(cfg.output_dir)
    with RunLock(out):  # a second run on this output dir waits for nothing: exit 4 before it reads any data
        cfg, data = prepare_data(cfg)  # task.split / sample: -> plain files every stage reads (and fingerprints)
        chain = active_stages(cfg)
        run_id, resumed = H.pick_run_id(cfg.run.run_id, out)
        paths = StagePaths(out / "runs" / run_id)
        (paths.root / "logs").mkdir(parents=True, exist_ok=True)
        rc = RunContext(cfg=cfg, out=out, run_id=run_id, paths=paths, console=console or Console(),
                        events=EventLog(paths.root / "logs" / "events.jsonl", run_id),
                        fns={**STAGE_FNS, **(stage_fns or {})}, force=list(chain) if "all" in force else force)
        state = (H.read_json_or_none(paths.root / "run.json") if resumed else None) or {
            "run_id": run_id, "started_at": _now_precise(), "attempts": 0}
        state.update(status="running", attempts=state.get("attempts", 0) + 1, pid=os.getpid())
        write_json_atomic(paths.root / "run.json", state)
        save_resolved(cfg, paths.root)
        handler = logging.FileHandler(paths.root / "logs" / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        rc.console.rule(f"zuoxiao run {run_id}" + (" (resumed)" if resumed else ""))
        rc.console.print(f"run dir: {paths.root}   stages: {' -> '.join(chain)}")
        rc.events.emit("run_start", resumed=resumed, attempt=state["attempts"], stages=chain, force=rc.force,
                       pid=os.getpid())
        record_prepared(data, paths.root / "data", rc.console.print, rc.events.emit)
        try:
            check_before_run(cfg, rc.console, rc.events.emit)  # data problems stop the run before any compute
            stages = _run_stages(rc, chain)
            summary = _finish(rc, chain, stages, state, resumed)
        except BaseException as err:  # KeyboardInterrupt too: the run stays resumable
            state.update(status="failed", error=f"{type(err).__name__}: {err}")
            write_json_atomic(paths.root / "run.json", state)
            rc.events.emit("run_end", status="failed", error=state["error"])
            raise
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
        print_summary(summary, rc.console)
        return summary


def _finish(rc: RunContext, chain: list[str], stages: dict, state: dict, resumed: bool) -> dict:
    done = stages.get("ship", {}).get("done")
    shipped = ShipResult.from_json(done["result"]) if done else None
    moved = False
    if "ship" not in chain or shipped is None:
        status, exit_code = "partial", EXIT_OK  # no gate ran: nothing to publish, resumable later
    elif shipped.passed:
        status, exit_code = "passed", EXIT_OK
        moved = H.newer_than_latest(rc.out, state)
        if moved:
            H.point_latest(rc.out, rc.run_id)
    else:
        status, exit_code = "gate_failed", EXIT_GATE_FAILED
    summary = {
        "run_id": rc.run_id, "run_dir": str(rc.paths.root), "status": status, "exit_code": exit_code,
        "resumed": resumed, "gate": shipped.gate if shipped else None, "latest_moved": status == "passed" and moved,
        "bundle": str(rc.paths.bundle) if status == "passed" else None,
        "stages": {s: {k: v for k, v in info.items() if k != "done"} for s, info in stages.items()},
        "metrics": collect_metrics({s: i["done"] for s, i in stages.items()}, rc.out),
    }
    if status in H.FINISHED and rc.cfg.run.keep_runs:
        summary["pruned_runs"] = H.prune_runs(rc.out, rc.cfg.run.keep_runs, rc.run_id)
    try:  # the page people look at; built from the records above, so it can never change the verdict
        write_json_atomic(rc.paths.root / "summary.json", summary)
        summary["report"] = str(write_report_html(rc.paths.root))
    except Exception as err:  # noqa: BLE001 - a plotting problem must not fail a finished run
        log.warning("report.html not written (%s: %s); rebuild it with `zuoxiao report %s`",
                    type(err).__name__, err, rc.paths.root)
        summary["report"] = None
    write_json_atomic(rc.paths.root / "summary.json", summary)
    state.update(status=status, finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    state.pop("error", None)
    write_json_atomic(rc.paths.root / "run.json", state)
    rc.events.emit("run_end", status=status, exit_code=exit_code)
    return summary


def _run_stages(rc: RunContext, chain: list[str]) -> dict:
    forced = False
    upstream: dict[str, str] = {}
    stages: dict[str, dict] = {}
    for i, stage in enumerate(chain, 1):
        forced = forced or stage in rc.force  # forcing a stage redoes everything below it too
        fp = _fingerprint(rc.cfg, stage, dict(upstream))
        done = H.read_json_or_none(H.marker(rc.paths, stage, ".done.json"))
        label = f"[{i}/{len(chain)}] {stage}"
        same = bool(done) and done.get("fingerprint") == fp
        problem = outputs_intact(rc.paths.root, done["outputs"]) if same else None
        reuse = None
        if not forced and same and problem is None:
            action, seconds = "skipped", 0.0
            rc.console.print(f"{label}: up to date, skipped")
        elif not forced and rc.cfg.run.reuse and (reuse := _reuse(rc, stage, fp)) is not None:
            done, seconds = reuse
            action = "reused"
            rc.console.print(f"{label}: same inputs as run {done['reused_from']}, reused its verified outputs")
        else:
            why = ("forced" if forced else "not done yet" if not done else
                   "inputs changed" if not same else f"outputs damaged ({problem})")
            done, seconds = _execute(rc, stage, fp, label, why, forced)
            action = "ran"
        headline = _show_headline(rc, stage, label, done)  # right after "done in" / "skipped" / "reused"
        rc.events.emit("stage_" + action, stage=stage, seconds=round(seconds, 3), fingerprint=fp,
                       output_digest=done["output_digest"], reused_from=done.get("reused_from"), headline=headline)
        upstream[stage] = done["output_digest"]
        stages[stage] = {"action": action, "seconds": round(seconds, 3), "fingerprint": fp,
                         "stage_seconds": done.get("seconds"), "peak_rss_mb": done.get("peak_rss_mb"), "done": done}
    return stages


def _show_headline(rc: RunContext, stage: str, label: str, done: dict) -> dict | None:
    """Print the stage's headline numbers (from its recorded result, so skipped and reused stages show
    theirs too) and return them for events.jsonl. Never fails the run: it only reports."""
    try:
        result = RESULT_TYPES[stage].from_json(done.get("result"))
        headline, lines = result.headline(), result.headline_lines(label)
    except Exception as err:  # noqa: BLE001 - a record we cannot summarise must not stop a finished stage
        log.warning("%s: no headline (%s: %s)", stage, type(err).__name__, err)
        return None
    for line in lines:
        rc.console.print(line, markup=False, highlight=False)
    return headline


def _reuse(rc: RunContext, stage: str, fp: str) -> tuple[dict, float] | None:
    t0 = time.perf_counter()
    found = H.reuse_stage(rc.out, rc.paths, rc.run_id, stage, fp)
    if found is None:
        return None
    other, done = found
    done = {**done, "reused_from": other}
    write_json_atomic(H.marker(rc.paths, stage, ".done.json"), done)
    return done, time.perf_counter() - t0


def _execute(rc: RunContext, stage: str, fp: str, label: str, why: str, forced: bool) -> tuple[dict, float]:
    paths = rc.paths
    started = H.read_json_or_none(H.marker(paths, stage, ".started.json"))
    checkpoints = paths.root / H.STAGE_DIRS[stage][0] / "checkpoints"
    resume = (stage in RESUMABLE and not forced and started is not None and started.get("fingerprint") == fp
              and checkpoints.is_dir() and any(checkpoints.iterdir()))
    if not resume:
        H.wipe(paths, stage)  # never let a stage see leftovers of a killed or outdated attempt
    (paths.root / H.STAGE_DIRS[stage][0]).mkdir(parents=True, exist_ok=True)
    write_json_atomic(H.marker(paths, stage, ".started.json"),
                      {"fingerprint": fp, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "pid": os.getpid(), "resume": resume})
    rc.console.rule(f"{label} ({'resuming from checkpoint' if resume else why})")
    rc.events.emit("stage_start", stage=stage, fingerprint=fp, resume=resume, reason=why)
    t0 = time.perf_counter()
    ctx = StageContext(run_dir=paths.root, resume=resume, cache_dir=rc.cache_dir)
    try:
        with restored_process_state(), PeakRss() as rss:
            result = rc.fns[stage](rc.cfg, paths, ctx)
    except GateFailed as err:
        if stage != "ship":  # e.g. the fine-tuned teacher misses the TF-IDF baseline: stop the run, exit 3
            rc.events.emit("stage_failed", stage=stage, seconds=round(time.perf_counter() - t0, 3),
                           error=f"GateFailed: {err}")
            rc.console.print(f"{label}: STOPPED by its gate after {time.perf_counter() - t0:.1f} s: {err}")
            raise
        # The ship gate's refusal is a verdict, not a crash: recorded like any result, so reruns report it.
        result = err.result if isinstance(err.result, StageResult) else ShipResult(gate={"message": str(err)})
        result.passed = False
        result.gate = {**(result.gate or {}), "passed": False, "message": str(err)}
    except BaseException as err:
        rc.events.emit("stage_failed", stage=stage, seconds=round(time.perf_counter() - t0, 3),
                       error=f"{type(err).__name__}: {err}")
        rc.console.print(f"{label}: FAILED after {time.perf_counter() - t0:.1f} s: {type(err).__name__}: {err}")
        raise
    if not isinstance(result, RESULT_TYPES[stage]):
        raise TypeError(f"stage {stage} returned {type(result).__name__}, not {RESULT_TYPES[stage].__name__}")
    seconds = time.perf_counter() - t0
    for name in H.STAGE_DIRS[stage]:  # the resolved config beside every artifact
        if (paths.root / name).is_dir() and not (paths.root / name / "config.resolved.yaml").exists():
            save_resolved(rc.cfg, paths.root / name)
    record = outputs_record(paths.root, [paths.root / n for n in H.STAGE_DIRS[stage]])
    done = {"stage": stage, "fingerprint": fp, "code_version": code_version(stage),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 3),
            "peak_rss_mb": rss.mb, "resumed": resume, "result": result.to_json(), "outputs": record,
            "output_digest": digest(record)}
    write_json_atomic(H.marker(paths, stage, ".done.json"), done)  # LAST: the stage now counts as done
    for name in H.STAGE_DIRS[stage]:  # resume checkpoints are useless once the stage is done (~100 MB each)
        shutil.rmtree(paths.root / name / "checkpoints", ignore_errors=True)
    rc.console.print(f"{label}: done in {seconds:.1f} s")
    return done, seconds
