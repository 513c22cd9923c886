"""Turn what a user typed into the folder a command needs, or say plainly why there is none.

    resolve_bundle("outputs/x")              -> outputs/x/latest/bundle (the output dir's latest bundle)
    resolve_bundle("outputs/x/runs/<id>")    -> outputs/x/runs/<id>/bundle
    resolve_bundle("outputs/x/latest")       -> outputs/x/latest/bundle (or latest.json's bundle)
    compress_source(out, None | "latest" | RUN_ID | PATH) -> the folder whose compress/ `export` packages

Every refusal names the path, what is true about it (it does not exist; no run has passed its gate yet,
with the runs and their status) and what to do next.
"""

from __future__ import annotations

from pathlib import Path

from zuoxiao.core.errors import InputError
from zuoxiao.run.history import read_json_or_none, runs

REPORT = "report.json"  # the compress stage's record (zuoxiao.student.compress.stage.REPORT)
_MAX_LISTED = 5


def run_list(out: Path) -> str:
    """'id1 (gate_failed), id2 (running)' for the newest runs under out/runs (cheap: one run.json each)."""
    found = runs(out)
    if not found:
        return "none"
    shown = [f"{rid} ({state.get('status', 'unknown')})" for rid, state in found[-_MAX_LISTED:]]
    more = f" and {len(found) - _MAX_LISTED} older" if len(found) > _MAX_LISTED else ""
    return ", ".join(reversed(shown)) + more


def is_output_dir(p: Path) -> bool:
    return (p / "runs").is_dir() or (p / "latest.json").is_file()


def no_latest(out: Path) -> str:
    """Why <out>/latest is missing, in words: no run has passed its quality gate yet."""
    failed = [rid for rid, s in runs(out) if s.get("status") == "gate_failed"]
    hint = (f"; a refused run keeps its measurements in {out / 'runs' / failed[-1] / 'ship' / 'shipped.json'}, "
            f"and `zuoxiao export CONFIG --run {failed[-1]} --no-gate` packages it anyway (recorded as an override)"
            if failed else "; `zuoxiao run CONFIG` makes one")
    return (f"no run in {out} has passed its quality gate yet, so there is no {out / 'latest'} "
            f"(runs: {run_list(out)}){hint}")


def latest_run_dir(out: Path) -> Path | None:
    """The run folder `latest` points at: the symlink, else latest.json (file systems without symlinks)."""
    link = out / "latest"
    if link.is_dir():
        return link
    rec = read_json_or_none(out / "latest.json") or {}
    if rec.get("run_dir") and (out / rec["run_dir"]).is_dir():
        return out / rec["run_dir"]
    return None


def resolve_bundle(arg: str | Path) -> tuple[Path, str | None]:
    """(bundle dir, note saying what it resolved to or None when ``arg`` is a bundle itself)."""
    p = Path(arg)
    if (p / "config.json").is_file():
        return p, None
    if p.is_dir():
        latest = latest_run_dir(p) if is_output_dir(p) else None
        # an output dir means its latest bundle (a stand-alone export's <out>/bundle only when no run passed)
        for cand in ([latest / "bundle"] if latest else []) + [p / "bundle"]:
            if (cand / "config.json").is_file():
                return cand, f"using the bundle {cand}"
        if is_output_dir(p):
            raise InputError(f"{p} has no bundle: {no_latest(p)}")
        state = read_json_or_none(p / "run.json")
        if state is not None:
            raise InputError(f"{p} is a run folder without a bundle (status {state.get('status', 'unknown')}): "
                             "only a run whose gate passed has one; see its summary.json and ship/shipped.json")
        raise InputError(f"{p} is not a bundle (no config.json): give the bundle folder written by "
                         "`zuoxiao run` (outputs/<task>/latest/bundle) or `zuoxiao export` (<output_dir>/bundle), "
                         "a run folder or the output dir")
    # It does not exist. Is a missing `latest` (no good run yet) the reason?
    for parent in [p, *p.parents]:
        if parent.name == "latest" and is_output_dir(parent.parent):
            out = parent.parent
            alt = latest_run_dir(out)  # latest.json without the symlink
            if alt is not None:
                rest = p.relative_to(parent)
                return resolve_bundle(alt / rest) if (alt / rest).exists() else resolve_bundle(alt)
            if parent.is_symlink():
                raise InputError(f"{p} does not exist: {parent} points at {parent.readlink()}, which is gone "
                                 f"(pruned or deleted); runs: {run_list(out)}")
            raise InputError(f"{p} does not exist: {no_latest(out)}")
    raise InputError(f"{p} does not exist; give a bundle folder, a run folder (outputs/<task>/runs/<id>) or an "
                     "output dir (outputs/<task>: its latest bundle)")


def compress_source(out: Path, run: str | None) -> tuple[Path, str | None]:
    """The folder whose compress/ output `zuoxiao export` packages, and a note saying which it used.

    None: <out>/compress when `zuoxiao compress` wrote one, else the newest run with a compress output.
    "latest", a run id under <out>/runs, or a path to a run folder choose one explicitly.
    """
    if run is None:
        if (out / "compress" / REPORT).is_file():
            return out, None
        for rid, _state in reversed(runs(out)):
            if (out / "runs" / rid / "compress" / REPORT).is_file():
                src = out / "runs" / rid
                return src, (f"no {out / 'compress' / REPORT}; using the compress output of run {rid} ({src}), "
                             "the newest run that has one (choose with --run RUN_ID|latest|PATH)")
        raise InputError(f"nothing to export: looked in {out / 'compress' / REPORT} (written by `zuoxiao compress "
                         f"CONFIG`) and in {out / 'runs'}/*/compress/{REPORT} (written by `zuoxiao run CONFIG`; "
                         f"runs: {run_list(out)}); run one of them first")
    if run == "latest":
        src = latest_run_dir(out)
        if src is None:
            raise InputError(f"--run latest: {no_latest(out)}")
    elif run and (out / "runs" / run).is_dir() and "/" not in run:
        src = out / "runs" / run
    elif Path(run).is_dir():
        src = Path(run)
    else:
        raise InputError(f"--run {run}: neither a run id under {out / 'runs'} (runs: {run_list(out)}) nor a folder; "
                         "give RUN_ID, latest or the path of a run folder")
    if not (src / "compress" / REPORT).is_file():
        raise InputError(f"--run {run}: {src / 'compress' / REPORT} does not exist (that run did not finish its "
                         "compress stage); choose another run or rerun `zuoxiao run CONFIG`")
    return src, f"using the compress output of {src}"
