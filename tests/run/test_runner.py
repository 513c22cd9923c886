"""The runner's logic on fake stages: skip, reuse, force, input changes, gate, latest, lock, kill -9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tests.run.conftest import REPO, write_rows
from tests.run.fake_stages import FAKES, calls
from zuoxiao.cli import main as cli_main
from zuoxiao.core.config import load_config
from zuoxiao.core.errors import EXIT_GATE_FAILED, EXIT_LOCKED, ConfigError, LockHeld
from zuoxiao.core.lock import RunLock
from zuoxiao.run.runner import run_job


def _run(cfg_path, force=(), overrides=None):
    cfg = load_config(cfg_path, overrides or [])
    return run_job(cfg, force=list(force), stage_fns=FAKES, console=Console(file=open(os.devnull, "w")))


def _actions(summary):
    return {s: i["action"] for s, i in summary["stages"].items()}


def _ran(out, since=0):
    return [c["stage"] for c in calls(out)[since:]]


def test_first_run_then_rerun_skips_everything(fake_job):
    cfg = fake_job(run__run_id="nightly")
    s1 = _run(cfg)
    assert s1["exit_code"] == 0 and s1["status"] == "passed"
    assert _ran(fake_job.out) == ["finetune", "label", "train", "compress", "ship"]
    run_dir = fake_job.out / "runs" / "nightly"
    for d in ("teacher", "label", "student", "compress"):
        done = json.loads((run_dir / d / ".done.json").read_text())
        assert done["fingerprint"] and done["outputs"]
    assert (run_dir / "summary.json").is_file() and (run_dir / "config.resolved.yaml").is_file()
    assert not (run_dir / "student" / "checkpoints").exists()  # scratch, dropped once train is done
    events = [json.loads(x)["event"] for x in (run_dir / "logs" / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_start" and events[-1] == "run_end" and events.count("stage_ran") == 5

    s2 = _run(cfg)
    assert _actions(s2) == dict.fromkeys(["finetune", "label", "train", "compress", "ship"], "skipped")
    assert len(calls(fake_job.out)) == 5  # nothing ran again
    assert s2["metrics"]["retention"] == pytest.approx(0.88 / 0.9, abs=1e-4)


def test_new_run_reuses_identical_stages_and_moves_latest(fake_job):
    cfg = fake_job()
    s1 = _run(cfg)
    s2 = _run(cfg)  # the first run finished: a new run id, every stage hard-linked from the first
    assert s2["run_id"] != s1["run_id"]
    assert set(_actions(s2).values()) == {"reused"}
    assert len(calls(fake_job.out)) == 5
    latest = fake_job.out / "latest"
    assert latest.is_symlink() and latest.resolve() == Path(s2["run_dir"]).resolve()
    assert json.loads((fake_job.out / "latest.json").read_text())["run_id"] == s2["run_id"]
    a = Path(s1["run_dir"]) / "bundle" / "model.onnx"
    b = Path(s2["run_dir"]) / "bundle" / "model.onnx"
    assert a.read_bytes() == b.read_bytes()


def test_force_redoes_the_stage_and_everything_below(fake_job):
    cfg = fake_job(run__run_id="r")
    _run(cfg)
    s = _run(cfg, force=["train"])
    assert _actions(s) == {"finetune": "skipped", "label": "skipped", "train": "ran", "compress": "ran", "ship": "ran"}
    assert _ran(fake_job.out, 5) == ["train", "compress", "ship"]
    with pytest.raises(ConfigError, match="unknown stage"):
        _run(cfg, force=["lable"])


def test_new_rows_rerun_label_with_cache_and_keep_the_teacher(fake_job):
    cfg = fake_job()
    _run(cfg)
    write_rows(fake_job.data, 1, start=10)  # nightly data grew by one row
    s = _run(cfg)
    assert _actions(s) == {"finetune": "reused", "label": "ran", "train": "ran", "compress": "ran", "ship": "ran"}
    label_call = [c for c in calls(fake_job.out) if c["stage"] == "label"][-1]
    assert (label_call["hits"], label_call["misses"]) == (10, 1)  # only the new row reached the teacher
    assert s["metrics"]["cache_hits"] == 10 and s["metrics"]["cache_misses"] == 1
    assert s["metrics"]["teacher_seconds_saved"] == pytest.approx(0.1)


def test_gate_failure_exit_3_and_latest_stays(fake_job):
    good = _run(fake_job(run__run_id="good"))
    bad = _run(fake_job(run__run_id="bad", ship__gate__min_retention=0.99))
    assert bad["exit_code"] == EXIT_GATE_FAILED and bad["status"] == "gate_failed"
    assert "min_retention 0.99" in bad["gate"]["message"]
    assert json.loads((fake_job.out / "latest.json").read_text())["run_id"] == good["run_id"]
    again = _run(fake_job(run__run_id="bad", ship__gate__min_retention=0.99))  # verdict recorded
    assert again["exit_code"] == EXIT_GATE_FAILED and _actions(again)["ship"] == "skipped"


def test_lock_refuses_a_second_run(fake_job, capsys):
    cfg = fake_job()
    with RunLock(fake_job.out, purpose="other run"):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            _run(cfg)
        assert cli_main(["run", str(cfg)]) == EXIT_LOCKED
    assert "another run holds the lock" in capsys.readouterr().err
    assert _run(cfg)["exit_code"] == 0  # released: runs normally


def test_run_config_validation():
    from zuoxiao.core.config import parse_config

    base = {"label": {"input": {"path": "x.jsonl"}}}
    with pytest.raises(ConfigError, match=r"reads the output of \['label'\]"):
        parse_config({**base, "run": {"stages": ["train"]}})
    with pytest.raises(ConfigError, match="not a safe folder name"):
        parse_config({**base, "run": {"run_id": "../x"}})
    assert parse_config({**base, "run": {"stages": ["train", "label"]}}).run.stages == ["label", "train"]


def _subprocess_run(cfg_path, crash: str | None = None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("ZX_FAKE_CRASH", None)
    if crash:
        env["ZX_FAKE_CRASH"] = crash
    return subprocess.run([sys.executable, "-m", "tests.run.fake_stages", str(cfg_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _result_bytes(run_dir: Path) -> dict:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for d in ("teacher", "label", "student", "compress", "bundle")
            for p in sorted((run_dir / d).rglob("*")) if p.is_file() and not p.name.startswith(".") and p.name != "config.resolved.yaml"}


@pytest.mark.parametrize("crash", ["finetune:1", "label:2", "train:3", "compress:1", "ship:1"])
def test_kill_9_mid_stage_resumes_to_identical_outputs(fake_job, tmp_path, crash):
    clean = _subprocess_run(fake_job("clean.yaml", output_dir=str(tmp_path / "clean")))
    assert clean.returncode == 0, clean.stderr
    cfg = fake_job()
    killed = _subprocess_run(cfg, crash=crash)
    assert killed.returncode == -9
    runs = list((fake_job.out / "runs").iterdir())
    assert len(runs) == 1 and json.loads((runs[0] / "run.json").read_text())["status"] == "running"
    resumed = _subprocess_run(cfg)  # the lock died with the killed process
    assert resumed.returncode == 0, resumed.stderr
    assert list((fake_job.out / "runs").iterdir()) == runs  # same run dir, resumed
    stage = crash.split(":")[0]
    after = [c for c in calls(fake_job.out) if c["pid"] != calls(fake_job.out)[0]["pid"]]
    assert [c["stage"] for c in after][0] == stage  # stages finished before the kill were skipped
    if stage == "train":
        assert after[0]["resume"] and after[0]["start_step"] == 3  # continued from the last checkpoint
    clean_dir = next((tmp_path / "clean" / "runs").iterdir())
    assert _result_bytes(runs[0]) == _result_bytes(clean_dir)


def test_train_launcher_runs_train_in_a_subprocess_with_the_resolved_config(fake_job, tmp_path):
    from zuoxiao.run.runner import STAGE_FNS

    launcher = tmp_path / "launcher.py"  # stands in for `accelerate launch`: records argv, writes the outputs
    launcher.write_text(
        "import json, sys, pathlib\n"
        "args = sys.argv[1:]\n"
        "out = pathlib.Path(args[args.index('--output') + 1]); out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'argv.json').write_text(json.dumps(args))\n"
        "(out / 'metrics.json').write_text(json.dumps({'teacher': {'accuracy': 0.9}, 'student': {'accuracy': 0.89}}))\n"
        "(out / 'model.bin').write_text('m')\n"
    )
    cfg = load_config(fake_job(run__train_launcher=[sys.executable, str(launcher)]))
    fns = {**FAKES, "train": STAGE_FNS["train"]}
    s = run_job(cfg, stage_fns=fns, console=Console(file=open(os.devnull, "w")))
    assert s["exit_code"] == 0 and s["metrics"]["student_accuracy"] == 0.89
    argv = json.loads((Path(s["run_dir"]) / "student" / "argv.json").read_text())
    assert argv[:3] == ["-m", "zuoxiao.cli", "train"] and argv[3].endswith("config.resolved.yaml")
    assert load_config(argv[3]).run.train_launcher == [sys.executable, str(launcher)]
    assert argv[argv.index("--shards") + 1] == str(Path(s["run_dir"]) / "label")


def test_rerunning_an_older_run_does_not_move_latest_back(fake_job):
    old = _run(fake_job(run__run_id="monday"))
    new = _run(fake_job(run__run_id="tuesday"))
    again = _run(fake_job(run__run_id="monday"))  # e.g. a scheduler retry of Monday's run
    assert again["status"] == "passed" and not again["latest_moved"]
    assert json.loads((fake_job.out / "latest.json").read_text())["run_id"] == new["run_id"] != old["run_id"]


def test_execution_settings_do_not_invalidate_labels(fake_job):
    cfg = fake_job(run__run_id="r")
    _run(cfg)
    s = _run(cfg, overrides=["label.beam.runner=FlinkRunner", "label.teacher.num_threads=8"])
    assert set(_actions(s).values()) == {"skipped"}
    s = _run(cfg, overrides=["label.batch_size=7"])  # a real input of the stage: relabel and below
    assert _actions(s) == {"finetune": "skipped", "label": "ran", "train": "ran", "compress": "ran", "ship": "ran"}


def test_keep_runs_prunes_the_oldest_finished_runs(fake_job):
    cfg = fake_job(run__keep_runs=2)
    ids = []
    for i in range(3):
        write_rows(fake_job.data, 1, start=100 + i)  # new data every night
        ids.append(_run(cfg)["run_id"])
    left = sorted(p.name for p in (fake_job.out / "runs").iterdir())
    assert left == sorted(ids[1:])
    assert (fake_job.out / "latest" / "bundle" / "model.onnx").is_file()  # the teacher was hard-linked
    assert (fake_job.out / "latest" / "teacher" / "config.json").is_file()


def test_each_stage_is_invalidated_by_exactly_the_sections_its_view_reads(fake_job):
    cfg = fake_job(run__run_id="r")
    _run(cfg)
    s = _run(cfg, overrides=["ship.gate.max_size_mb=100"])  # only ship reads ship.gate
    assert _actions(s) == {"finetune": "skipped", "label": "skipped", "train": "skipped", "compress": "skipped",
                           "ship": "ran"}
    s = _run(cfg, overrides=["ship.gate.max_size_mb=100", "compress.latency_runs=7"])  # compress and ship read it
    assert _actions(s) == {"finetune": "skipped", "label": "skipped", "train": "skipped", "compress": "ran",
                           "ship": "ran"}
