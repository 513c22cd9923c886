"""A tiny but real `zuoxiao run`: finetune -> label (Beam) -> train -> compress (ONNX + gate), twice.

The second run gets 10% new transfer-set rows: the fine-tuned teacher is reused, and only the new rows
reach the teacher (the rest come from the incremental cache), as the label manifest counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from zuoxiao.core.config import load_config
from zuoxiao.run.demo_data import write_demo_data
from zuoxiao.run.runner import run_job

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, backbone: Path) -> Path:
    data = tmp_path / "data"
    raw = {
        "output_dir": str(tmp_path / "out"),
        "seed": 0,
        "task": {"name": "support", "eval": {"path": str(data / "test.jsonl")}},
        "finetune": {"data": {"path": str(data / "gold.jsonl")},
                     "teacher": {"path": str(backbone), "max_length": 32, "num_threads": 1},
                     "freeze_embeddings": False,
                     # TF-IDF solves the template-generated demo intents: a tiny backbone cannot beat it
                     "allow_below_baseline": True,
                     "early_stopping_patience": None,  # a 16-row dev split: too noisy to stop on
                     "optim": {"lr": 3e-3, "head_lr": 1e-2, "epochs": 20, "batch_size": 16, "warmup_ratio": 0.0}},
        "label": {"input": {"path": str(data / "unlabeled.jsonl"), "id_column": "id"},
                  "teacher": {"max_length": 32, "num_threads": 1}, "batch_size": 32, "rows_per_shard": 100},
        "train": {"student": {"kind": "from_teacher", "layers": [0]}, "max_length": 32,
                  "freeze_embeddings": False,
                  "optim": {"lr": 1e-2, "epochs": 3, "batch_size": 16, "warmup_ratio": 0.0}},
        "compress": {"steps": [{"kind": "vocab_trim"}, {"kind": "quantize"}], "latency_runs": 3},
        "ship": {"gate": {"min_retention": 0.05}},
    }
    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def _append_unlabeled(data: Path, n: int) -> None:
    from zuoxiao.run.demo_data import generate

    extra = generate(seed=99, n_gold=0, n_unlabeled=n, n_test=0)["unlabeled"]
    with open(data / "unlabeled.jsonl", "a") as f:
        for r in extra:
            f.write(json.dumps({**r, "id": "new-" + r["id"]}) + "\n")


def test_tiny_full_run_twice_with_cache(tmp_path, tiny_backbone):
    write_demo_data(tmp_path / "data", seed=0, n_gold=160, n_unlabeled=300, n_test=80)
    cfg_path = _config(tmp_path, tiny_backbone)
    quiet = Console(file=open(os.devnull, "w"))

    first = run_job(load_config(cfg_path), console=quiet)
    assert first["exit_code"] == 0, first
    assert {s: i["action"] for s, i in first["stages"].items()} == dict.fromkeys(
        ["finetune", "label", "train", "compress", "ship"], "ran")
    out = tmp_path / "out"
    bundle = out / "latest" / "bundle"
    assert bundle.is_dir() and any(bundle.iterdir())
    m = first["metrics"]
    assert m["cache_hits"] == 0 and m["cache_misses"] == 300
    for key in ("baseline_accuracy", "teacher_accuracy", "student_accuracy", "retention", "size_mb", "latency_ms_p50"):
        assert m[key] is not None and m[key] > 0, (key, m)
    card = (bundle / "README.md").read_text()  # baseline, teacher, student and bundle side by side
    assert "| baseline (TF-IDF + logistic regression" in card and "| **this bundle** |" in card
    assert json.loads((bundle / "metrics.json").read_text())["baseline"]["accuracy"] == m["baseline_accuracy"]
    page = (out / "latest" / "report.html").read_text()  # the run report: tables and inline plots
    for section in ("Baseline, teacher, student, bundle", "Compression steps", "confusion matrix",
                    "Per-class recall", "Most confident disagreements", "data:image/png;base64,"):
        assert section in page or section.lower() in page.lower(), section
    (out / "latest" / "report.html").unlink()
    from zuoxiao.cli import main as cli_main

    assert cli_main(["report", str(out / "latest")]) == 0 and (out / "latest" / "report.html").is_file()
    assert first["gate"]["passed"] is True
    assert m["teacher_accuracy"] > 0.2  # 8 classes: the fine-tuned tiny teacher learned something (chance 0.125)

    _append_unlabeled(tmp_path / "data", 30)  # tomorrow's data: 10% new rows
    second = run_job(load_config(cfg_path), console=quiet)
    assert second["exit_code"] == 0, second
    actions = {s: i["action"] for s, i in second["stages"].items()}
    assert actions == {"finetune": "reused", "label": "ran", "train": "ran", "compress": "ran", "ship": "ran"}
    m2 = second["metrics"]
    assert (m2["cache_hits"], m2["cache_misses"]) == (300, 30)  # only the new rows reached the teacher
    assert m2["teacher_seconds_saved"] and m2["teacher_seconds_saved"] > 0
    assert json.loads((out / "latest.json").read_text())["run_id"] == second["run_id"]
    manifest = json.loads((Path(second["run_dir"]) / "label" / "manifest.json").read_text())
    assert manifest["counts"]["cache_hits"] == 300

    third = run_job(load_config(cfg_path), console=quiet)  # nothing changed: everything reused
    assert set(i["action"] for i in third["stages"].values()) == {"reused"}


class _Crash(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way up handles it."""


def test_crash_mid_train_resumes_from_checkpoint_to_identical_outputs(tmp_path, tiny_backbone, monkeypatch):
    import accelerate

    write_demo_data(tmp_path / "data", seed=1, n_gold=16, n_unlabeled=240, n_test=48)
    overrides = ["finetune=", f"label.teacher.path={tiny_backbone}", "task.label_names=" + json.dumps(
        sorted({json.loads(x)["label"] for x in (tmp_path / "data" / "test.jsonl").read_text().splitlines()})),
        "train.checkpoint_every=5", "train.optim.epochs=2", "compress.steps=[{kind: quantize}]"]
    quiet = Console(file=open(os.devnull, "w"))
    cfg_path = _config(tmp_path, tiny_backbone)
    clean = run_job(load_config(cfg_path, overrides + [f"output_dir={tmp_path / 'clean'}"]), console=quiet)
    assert clean["exit_code"] == 0

    original, saves = accelerate.Accelerator.save_state, []

    def save_then_die(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        saves.append(args)
        if len(saves) == 2:
            raise _Crash("killed after the second checkpoint")
        return out

    cfg = load_config(cfg_path, overrides)
    monkeypatch.setattr(accelerate.Accelerator, "save_state", save_then_die)
    with pytest.raises(_Crash):
        run_job(cfg, console=quiet)
    monkeypatch.setattr(accelerate.Accelerator, "save_state", original)
    run_dir = next((tmp_path / "out" / "runs").iterdir())
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not (run_dir / "student" / ".done.json").exists()

    resumed = run_job(cfg, console=quiet)
    assert resumed["run_dir"] == str(run_dir) and resumed["exit_code"] == 0
    assert {s: i["action"] for s, i in resumed["stages"].items()} == {"label": "skipped", "train": "ran",
                                                                       "compress": "ran", "ship": "ran"}
    assert json.loads((run_dir / "student" / ".done.json").read_text())["resumed"] is True
    a, b = Path(clean["run_dir"]), run_dir
    assert (a / "label" / "manifest.json").exists()
    for rel in ("student/model.safetensors",):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    sa = json.loads((a / "student" / "metrics.json").read_text())["student"]
    sb = json.loads((b / "student" / "metrics.json").read_text())["student"]
    assert sa["accuracy"] == sb["accuracy"]
