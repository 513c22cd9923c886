"""Each stage's headline numbers reach the console and events.jsonl as the run goes, for stages that ran,
were skipped (up to date) or were reused from an earlier run."""

from __future__ import annotations

import io
import json

from rich.console import Console

from tests.run.fake_stages import FAKES
from zuoxiao.core.config import load_config
from zuoxiao.run.runner import run_job

STAGES = ["finetune", "label", "train", "compress", "ship"]


def _run(cfg_path) -> tuple[dict, str]:
    buf = io.StringIO()
    summary = run_job(load_config(cfg_path), stage_fns=FAKES, console=Console(file=buf, width=200))
    return summary, buf.getvalue()


def _stage_events(run_dir) -> list[dict]:
    lines = (run_dir / "logs" / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] in ("stage_ran", "stage_skipped", "stage_reused")]


def test_console_and_events_carry_each_stages_headline(fake_job):
    cfg = fake_job(run__run_id="r1")
    summary, out = _run(cfg)
    lines = out.splitlines()
    # printed right after the stage's "done in" line, in stage order
    for i, stage in enumerate(STAGES, 1):
        done = next(k for k, ln in enumerate(lines) if ln.startswith(f"[{i}/5] {stage}: done in"))
        assert lines[done + 1].startswith(f"[{i}/5] {stage}:"), lines[done : done + 2]
    assert "[1/5] finetune: teacher dev accuracy 90.0% vs TF-IDF baseline 80.0% (+10.0 points)" in out
    assert "[2/5] label: labelled 10 of 10 rows, rejected 0; soft-label entropy 0.500 nats (72.1% of ln 2); " \
           "teacher labels: a 50.0%, b 50.0%" in out
    assert "[3/5] train: student dev accuracy 87.0% (teacher 91.0%, agreement 95.0%); " \
           "eval: student 88.0%, teacher 90.0%" in out
    assert "01-quantize" in out and "accuracy 88.0% (-1.0 points)" in out  # one line per step
    assert "[5/5] ship: gate PASSED: min_retention ok (0.978 vs 0.9)" in out

    events = {e["stage"]: e for e in _stage_events(fake_job.out / "runs" / "r1")}
    assert list(events) == STAGES and all(e["event"] == "stage_ran" for e in events.values())
    assert events["finetune"]["headline"]["teacher_dev_accuracy"] == 0.9
    assert events["finetune"]["headline"]["gain_points"] == 10.0
    assert events["label"]["headline"]["labeled"] == 10 and events["label"]["headline"]["mean_entropy_nats"] == 0.5
    assert events["train"]["headline"]["student_dev_accuracy"] == 0.87
    assert [s["name"] for s in events["compress"]["headline"]["steps"]] == ["student", "01-quantize"]
    assert events["ship"]["headline"]["passed"] is True
    assert [c["name"] for c in events["ship"]["headline"]["checks"]] == ["finite_outputs", "min_retention"]


def test_skipped_and_reused_stages_show_their_recorded_headline(fake_job):
    cfg = fake_job(run__run_id="r1")
    _run(cfg)
    _, out = _run(cfg)  # same run id: everything up to date
    assert "[1/5] finetune: up to date, skipped\n[1/5] finetune: teacher dev accuracy 90.0%" in out
    skipped = _stage_events(fake_job.out / "runs" / "r1")[5:]
    assert [e["event"] for e in skipped] == ["stage_skipped"] * 5
    assert skipped[2]["headline"]["student_dev_accuracy"] == 0.87

    cfg2 = fake_job(name="job2.yaml")  # a new run id: every stage reused from r1
    summary, out = _run(cfg2)
    assert "reused its verified outputs\n[2/5] label: labelled 10 of 10 rows" in out
    reused = _stage_events(fake_job.out / "runs" / summary["run_id"])
    assert [e["event"] for e in reused] == ["stage_reused"] * 5
    assert reused[4]["headline"]["passed"] is True
