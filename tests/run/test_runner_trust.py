"""Issue 8, the runner's part: corrupt outputs are never skipped over or reused, reuse copies (no shared
inodes), each stage restores process state and reports its own peak RSS, run.json always ends in a
final status, and stand-alone stage commands take the output lock."""

from __future__ import annotations

import json
import os

import pytest
from rich.console import Console

from tests.run.fake_stages import FAKES, calls
from zuoxiao.cli import main as cli_main
from zuoxiao.core.config import load_config
from zuoxiao.core.errors import EXIT_LOCKED
from zuoxiao.core.lock import RunLock
from zuoxiao.run.runner import run_job


def _run(cfg_path, fns=None):
    return run_job(load_config(cfg_path), stage_fns={**FAKES, **(fns or {})},
                   console=Console(file=open(os.devnull, "w")))


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: a size check alone would miss it
    path.write_bytes(bytes(data))


def test_corrupt_shard_in_place_is_recomputed_not_skipped(fake_job):
    cfg = fake_job(run__run_id="r1")
    _run(cfg)
    shard = sorted((fake_job.out / "runs" / "r1" / "label" / "shards").iterdir())[0]
    good = shard.read_bytes()
    _flip_a_byte(shard)
    s = _run(cfg)
    assert s["stages"]["label"]["action"] == "ran" and shard.read_bytes() == good


def test_corrupt_shard_is_never_reused_by_a_new_run(fake_job):
    _run(fake_job(run__run_id="r1"))
    shard = sorted((fake_job.out / "runs" / "r1" / "label" / "shards").iterdir())[0]
    _flip_a_byte(shard)
    s = _run(fake_job(run__run_id="r2"))
    assert s["stages"]["label"]["action"] == "ran"  # r1's label failed its sha256: recomputed
    assert s["stages"]["finetune"]["action"] == "reused"  # r1's intact teacher is reused


def test_reuse_copies_files_instead_of_sharing_inodes(fake_job):
    _run(fake_job(run__run_id="r1"))
    s = _run(fake_job(run__run_id="r2"))
    assert s["stages"]["label"]["action"] == "reused"
    a = sorted((fake_job.out / "runs" / "r1" / "label" / "shards").iterdir())[0]
    b = fake_job.out / "runs" / "r2" / "label" / "shards" / a.name
    assert a.read_bytes() == b.read_bytes() and a.stat().st_ino != b.stat().st_ino


def test_stage_thread_settings_do_not_leak_into_later_stages(fake_job):
    import torch

    before = torch.get_num_threads()
    seen = {}

    def label_sets_threads(cfg, paths, ctx):
        torch.set_num_threads(1 if before != 1 else 2)
        return FAKES["label"](cfg, paths, ctx)

    def train_records_threads(cfg, paths, ctx):
        seen["train"] = torch.get_num_threads()
        return FAKES["train"](cfg, paths, ctx)

    _run(fake_job(), {"label": label_sets_threads, "train": train_records_threads})
    assert seen["train"] == before and torch.get_num_threads() == before


def test_peak_rss_is_measured_per_stage(fake_job):
    def big_label(cfg, paths, ctx):
        blob = bytearray(300 * 2**20)  # 300 MB touched in this stage only
        blob[:: 4096] = b"x" * len(blob[:: 4096])
        del blob
        return FAKES["label"](cfg, paths, ctx)

    s = _run(fake_job(), {"label": big_label})
    rss = {k: v["peak_rss_mb"] for k, v in s["stages"].items()}
    assert rss["label"] > 250 + rss["train"] - 50, rss  # train does not inherit label's peak
    assert rss["train"] < rss["label"] - 200, rss


def test_run_json_ends_failed_when_the_summary_step_crashes(fake_job, monkeypatch):
    import zuoxiao.run.runner as R

    def broken(*a, **k):
        raise RuntimeError("disk full while writing the summary")

    monkeypatch.setattr(R, "collect_metrics", broken)
    cfg = fake_job(run__run_id="r1")
    with pytest.raises(RuntimeError, match="disk full"):
        _run(cfg)
    state = json.loads((fake_job.out / "runs" / "r1" / "run.json").read_text())
    assert state["status"] == "failed" and "disk full" in state["error"]


def test_stand_alone_stage_commands_take_the_output_lock(fake_job, capsys):
    cfg = fake_job()
    out = load_config(cfg).output_dir
    with RunLock(out):
        for cmd in ("finetune-teacher", "label", "train", "compress", "ship"):
            assert cli_main([cmd, str(cfg)]) == EXIT_LOCKED, cmd
    assert calls(fake_job.out) == []


def test_a_teacher_below_the_baseline_stops_the_run_before_labelling(fake_job):
    from zuoxiao.core.errors import GateFailed

    def weak_teacher(cfg, paths, ctx):
        raise GateFailed("the fine-tuned teacher reaches 60% dev accuracy, the TF-IDF baseline 70%")

    cfg = fake_job(run__run_id="r1")
    with pytest.raises(GateFailed, match="TF-IDF baseline"):
        _run(cfg, {"finetune": weak_teacher})
    assert [c["stage"] for c in calls(fake_job.out)] == []  # nothing was labelled
    state = json.loads((fake_job.out / "runs" / "r1" / "run.json").read_text())
    assert state["status"] == "failed" and "GateFailed" in state["error"]
