"""Run folders under <output_dir>/runs/: ids, the `latest` pointer, pruning, and verified reuse.

A stage of an earlier run is reused only when its input fingerprint matches and every file it recorded
still has the recorded sha256; the files are copied (never hard-linked: a link would share one inode,
so a later corruption would spread to every run) and the copies are checked again before use.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from zuoxiao.core.fingerprint import outputs_intact
from zuoxiao.core.paths import StagePaths
from zuoxiao.core.shards import write_json_atomic

log = logging.getLogger(__name__)

#: Folders (under the run dir) each stage owns; markers live in the first one.
STAGE_DIRS = {"finetune": ("teacher",), "label": ("label",), "train": ("student",), "compress": ("compress",),
              "ship": ("ship", "bundle")}
FINISHED = {"passed", "gate_failed"}


def read_json_or_none(path: Path) -> dict | None:
    """The JSON at ``path``, or None when it is missing, unreadable or not valid JSON (a run folder's
    records are best effort: a killed run can leave any of them half-written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def marker(paths: StagePaths, stage: str, name: str) -> Path:
    return paths.root / STAGE_DIRS[stage][0] / name


def wipe(paths: StagePaths, stage: str) -> None:
    for name in STAGE_DIRS[stage]:
        shutil.rmtree(paths.root / name, ignore_errors=True)


def runs(out: Path) -> list[tuple[str, dict]]:
    """(run id, run.json) of every run under out/runs, oldest first."""
    found = []
    for p in (out / "runs").glob("*/run.json"):
        state = read_json_or_none(p)
        if state:
            found.append((p.parent.name, state))
    return sorted(found, key=lambda x: (x[1].get("started_at", ""), x[0]))


def pick_run_id(run_id: str | None, out: Path) -> tuple[str, bool]:
    """(run id, resumed?): the configured id, else the latest run if it did not finish, else a new one."""
    if run_id:
        return run_id, (out / "runs" / run_id / "run.json").is_file()
    found = runs(out)
    if found and found[-1][1].get("status") not in FINISHED:
        return found[-1][0], True
    base = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_id, n = base, 1
    while (out / "runs" / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id, False


def reuse_stage(out: Path, paths: StagePaths, run_id: str, stage: str, fp: str) -> tuple[str, dict] | None:
    """Copy the outputs of the newest earlier run that finished ``stage`` with fingerprint ``fp``.

    Candidates whose recorded files fail their sha256 are skipped (logged); the copy is verified too.
    Returns (run id reused, its .done.json) or None.
    """
    for other, _state in reversed(runs(out)):
        if other == run_id:
            continue
        other_paths = StagePaths(out / "runs" / other)
        done = read_json_or_none(marker(other_paths, stage, ".done.json"))
        if not done or done.get("fingerprint") != fp:
            continue
        problem = outputs_intact(other_paths.root, done["outputs"])
        if problem is not None:
            log.warning("not reusing %s of run %s: %s", stage, other, problem)
            continue
        wipe(paths, stage)
        for name in STAGE_DIRS[stage]:
            if (other_paths.root / name).exists():
                shutil.copytree(other_paths.root / name, paths.root / name)
        problem = outputs_intact(paths.root, done["outputs"])
        if problem is None:
            return other, done
        log.warning("copy of %s from run %s does not verify (%s); recomputing", stage, other, problem)
        wipe(paths, stage)
    return None


def point_latest(out: Path, run_id: str) -> None:
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


def latest_run_id(out: Path) -> str | None:
    """The run id `latest` points at (latest.json, written with the symlink), or None before any run passed."""
    return (read_json_or_none(out / "latest.json") or {}).get("run_id")


def newer_than_latest(out: Path, state: dict) -> bool:
    """A rerun of an older run (a backfill, a scheduler retry of last week) must not move `latest` back."""
    current = latest_run_id(out)
    if not current or current == state["run_id"]:
        return True
    other = read_json_or_none(out / "runs" / current / "run.json") or {}
    return other.get("started_at", "") <= state["started_at"]


def prune_runs(out: Path, keep: int, current: str) -> list[str]:
    latest = latest_run_id(out)
    finished = [r for r, s in runs(out) if s.get("status") in FINISHED and r not in (current, latest)]
    doomed = finished[: max(0, len(finished) - (keep - 1))]
    # A reused label manifest still names the teacher dir of the run that labelled (train loads it): keep that run.
    referenced = {(read_json_or_none(out / "runs" / r / "label" / ".done.json") or {}).get("reused_from")
                  for r, _ in runs(out) if r not in doomed}
    doomed = [r for r in doomed if r not in referenced]
    for r in doomed:
        shutil.rmtree(out / "runs" / r, ignore_errors=True)
    return doomed
