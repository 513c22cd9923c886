"""`zuoxiao demo` wiring: data generated into <output>/data, configs/demo.yaml pointed at it, a real run.

The real demo uses the MiniLM teacher and thousands of rows (minutes); here the same flow runs with the
tiny backbone and small splits, through the CLI entry point."""

from __future__ import annotations

import json

import pytest

import zuoxiao.run.demo as demo
from zuoxiao.cli import main
from zuoxiao.core.config import load_config

pytestmark = pytest.mark.slow


def test_demo_config_points_at_the_output(tmp_path):
    cfg = load_config(demo.demo_config_path(), demo.demo_overrides(tmp_path / "d"))
    assert cfg.output_dir == str(tmp_path / "d")
    assert cfg.finetune.data.path == str(tmp_path / "d" / "data" / "gold.jsonl")
    assert cfg.label.input.path == str(tmp_path / "d" / "data" / "unlabeled.jsonl")
    assert cfg.task.eval.path == str(tmp_path / "d" / "data" / "test.jsonl")
    assert cfg.task.dev.path == str(tmp_path / "d" / "data" / "dev.jsonl")
    assert cfg.finetune.teacher.path == "embedded:all-MiniLM-L6-v2"
    # the shipped demo's teacher must beat the TF-IDF baseline (its held-out phrasings make that possible)
    assert cfg.finetune.allow_below_baseline is False and cfg.ship.gate.min_retention >= 0.9


def test_demo_end_to_end_on_a_tiny_backbone(tmp_path, tiny_backbone, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DEMO_SIZES", {"n_gold": 96, "n_unlabeled": 160, "n_test": 48, "n_dev": 32})
    monkeypatch.setenv("COLUMNS", "1000")  # rich: no line wrapping inside paths
    out = tmp_path / "demo"
    tiny = [f"finetune.teacher.path={tiny_backbone}", "finetune.teacher.max_length=32", "finetune.optim.epochs=2",
            "finetune.freeze_embeddings=false", "label.teacher.max_length=32", "train.student.layers=[0]",
            "train.max_length=32", "train.optim.epochs=1", "compress.latency_runs=3", "ship.gate.min_retention=0.01",
            "finetune.allow_below_baseline=true"]  # a random 2-layer, 32-wide teacher cannot beat TF-IDF
    args = ["demo", "--output", str(out)] + [x for t in tiny for x in ("--set", t)]
    assert main(args) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "demo finished" in text and str(out / "latest" / "bundle") in text
    meta = json.loads((out / "data" / "meta.json").read_text())
    assert meta["sizes"] == {"gold": 96, "unlabeled": 160, "test": 48, "dev": 32}
    summary = json.loads((out / "latest" / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["metrics"]["rows_labelled"] == 160
    # again: the data is left alone and every stage is reused from the first run
    assert main(args) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "already there" in text
    second = json.loads((out / "latest" / "summary.json").read_text())
    assert {s["action"] for s in second["stages"].values()} == {"reused"}
