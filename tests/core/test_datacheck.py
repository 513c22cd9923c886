"""`zuoxiao validate --data` and `zuoxiao run`'s data check (issue 13): every data problem at once, before
any model loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from zuoxiao.cli import main
from zuoxiao.core.config import load_config
from zuoxiao.core.datacheck import check_data
from zuoxiao.core.errors import EXIT_BAD_INPUT, EXIT_OK, InputError

REPO = Path(__file__).resolve().parents[2]


def _job(tmp_path: Path, dev_classes=("a", "b"), leak=True, short_record=True, **sections) -> Path:
    """finetune.data (train.csv), task.dev, task.eval, label.input; teachers point at no model at all."""
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    train = ["text,label"] + [f"train text {i},{'abc'[i % 3]}" for i in range(30)]
    if short_record:
        train.insert(5, "a record with one field")  # line 6 of train.csv
    if leak:
        train.append("The  Eval Text Number 1,b")  # eval's text, up to case and spacing
    (d / "train.csv").write_text("\n".join(train) + "\n")
    (d / "dev.csv").write_text("text,label\n" + "".join(f"dev text {i},{dev_classes[i % len(dev_classes)]}\n"
                                                         for i in range(6)))
    (d / "eval.csv").write_text("text,label\n" + "".join(f"the eval text number {i},{'abc'[i % 3]}\n"
                                                          for i in range(6)))
    (d / "input.jsonl").write_text("".join(json.dumps({"text": f"unlabelled row {i}"}) + "\n" for i in range(20)))
    raw = {"output_dir": str(tmp_path / "out"),
           "task": {"name": "t", "label_names": ["a", "b", "c"], "dev": {"path": str(d / "dev.csv")},
                    "eval": {"path": str(d / "eval.csv")}},
           "finetune": {"data": {"path": str(d / "train.csv")}, "teacher": {"path": str(tmp_path / "no-model")}},
           "label": {"input": {"path": str(d / "input.jsonl")}, "teacher": {"path": str(tmp_path / "no-model")}}}
    raw.update(sections)
    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_validate_data_reports_leak_short_record_and_missing_class_at_once(tmp_path, capsys):
    cfg = _job(tmp_path)
    assert main(["validate", str(cfg), "--data"]) == EXIT_BAD_INPUT  # a class missing from dev is an error
    out = capsys.readouterr().out
    # 1. the class missing from dev (an error: the model is never measured on it)
    assert "ERROR: task.dev: 1 of 3 classes of task.label_names have no row: ['c']" in out
    # 2. the short record, with its file and line, and what finetune will do with it
    assert "finetune.data: 1 of 32 rows do not parse: train.csv: line 6: 1 comma-separated fields, header has 2" in out
    assert "will do: finetune: finetune.data 1 rows skipped: malformed_row 1 (train.csv line 6)" in out
    # 3. the planted train/test overlap, found although case and spacing differ
    assert ("train/test leakage: 1 of 6 distinct task.eval texts also occur in finetune.data (compared case- and "
            "space-insensitively), e.g. 'the eval text number 1'") in out
    assert "data check: 1 error(s), 2 warning(s)" in out


def test_validate_data_loads_no_model(tmp_path):
    """The teachers point at a folder that does not exist, and neither torch nor transformers is imported."""
    cfg = _job(tmp_path)
    code = ("import sys; from zuoxiao.cli import main; rc = main(['validate', sys.argv[1], '--data', '--json']); "
            "print('LOADED', [m for m in ('torch', 'transformers', 'onnxruntime', 'apache_beam') if m in sys.modules]); "
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    report, loaded = proc.stdout.rsplit("LOADED", 1)
    assert loaded.strip() == "[]"
    data = json.loads(report)
    assert data["ok"] is False and data["overlaps"] == {"task.eval & finetune.data": 1}
    assert data["sources"]["finetune.data"]["rows"] == 32 and data["sources"]["finetune.data"]["usable"] == 31
    assert data["sources"]["finetune.data"]["skipped_where"] == {"malformed_row": ["train.csv line 6"]}
    assert data["sources"]["task.dev"]["labels"] == {"a": 3, "b": 3}
    assert data["sources"]["label.input"]["length"]["words"] == {"p50": 3, "p95": 3, "max": 3}


def test_clean_data_exits_0_and_without_data_validate_is_unchanged(tmp_path, capsys):
    cfg = _job(tmp_path, dev_classes=("a", "b", "c"), leak=False, short_record=False)
    assert main(["validate", str(cfg), "--data"]) == EXIT_OK
    assert capsys.readouterr().out.strip().endswith("data check: no problems found")
    assert main(["validate", str(cfg)]) == EXIT_OK
    assert "task:" in capsys.readouterr().out  # the resolved config, as before


def test_duplicates_conflicts_unknown_labels_and_dead_letters(tmp_path):
    d = tmp_path / "data"
    cfg = load_config(_job(tmp_path, dev_classes=("a", "b", "c"), leak=False, short_record=False))
    with open(d / "train.csv", "a") as f:
        f.write("train text 0,a\ntrain text 1,c\nTRAIN TEXT 2,c\nnew text,zzz\n")
    with open(d / "input.jsonl", "a") as f:
        f.write('{"text": "unlabelled row 0"}\n{"text": ""}\n{"text": "x", "label": "nope"}\n')
    report = check_data(cfg)
    ft = report.sources["finetune.data"]
    assert ft["skipped"] == {"duplicate_id": 1, "conflicting_label": 1}
    assert ft["near_duplicates"] == 1 and ft["unknown_labels"] == {"zzz": 1}
    assert any("finetune.data: labels ['zzz'] (1 rows) are not in task.label_names" in e for e in report.errors)
    assert any("1 texts repeat with a different gold label (first kept): train.csv line 33" in w
               for w in report.warnings)
    assert report.sources["label.input"]["skipped"] == {"duplicate_id": 1, "empty_text": 1, "unknown_label": 1}
    assert ("label: label.input 3 rows -> dead letters (label/rejected/): duplicate_id 1 "
            "(input.jsonl line 21 (first: input.jsonl line 1)), empty_text 1 (input.jsonl line 22), "
            "unknown_label 1 (input.jsonl line 23)") in report.actions


def test_long_texts_imbalance_and_missing_file(tmp_path):
    cfg = load_config(_job(tmp_path, dev_classes=("a", "b", "c"), leak=False, short_record=False),
                      ["train.max_length=16", "task.eval.path=" + str(tmp_path / "nowhere.csv")])
    with open(tmp_path / "data" / "train.csv", "a") as f:  # 160 rows of a, 10 of b, 10 of c
        f.write("".join(f"{' '.join(['word'] * 20)} {i},a\n" for i in range(150)))
    with open(tmp_path / "data" / "input.jsonl", "a") as f:  # 5 of 25 rows longer than the student's 16 tokens
        f.write("".join(json.dumps({"text": f"long {i} " * 15}) + "\n" for i in range(5)))
    report = check_data(cfg)
    assert any(e.startswith("task.eval: input path") and "matches no file" in e for e in report.errors)
    assert "finetune.data: classes are imbalanced 16x ('a': 160 rows, 'c': 10); accuracy hides the small classes" \
        in report.warnings
    assert report.sources["finetune.data"]["length"]["tokens_estimated"]["max"] == 28
    assert not any(w.startswith("finetune.data: ~") for w in report.warnings)  # its teacher takes 128 tokens
    assert ("label.input: ~20% of texts exceed the student (train.max_length) of 16 tokens (estimated) and are "
            "truncated; raise max_length if the end of a text matters") in report.warnings


def test_run_stops_before_any_stage_on_data_errors_and_warn_goes_on(tmp_path):
    from tests.run.fake_stages import FAKES, calls
    from zuoxiao.run.runner import run_job

    quiet = Console(file=open(os.devnull, "w"))
    cfg = load_config(_job(tmp_path), ["run.run_id=r1"])
    with pytest.raises(InputError, match=r"data check: 1 error\(s\), nothing was computed: task\.dev: 1 of 3 "
                                         r"classes .* run.data_check: warn"):
        run_job(cfg, stage_fns=FAKES, console=quiet)
    run_dir = tmp_path / "out" / "runs" / "r1"
    events = [json.loads(x) for x in (run_dir / "logs" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["run_start", "data_checked", "run_end"]
    assert events[1]["errors"] == 1 and events[1]["rows"]["finetune.data"] == 32
    assert events[1]["overlaps"] == {"task.eval & finetune.data": 1}
    assert not (tmp_path / "out" / "calls.jsonl").exists()  # no stage ran
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"

    cfg = load_config(_job(tmp_path), ["run.run_id=r2", "run.data_check=warn", "run.stages=[finetune]"])
    run_job(cfg, stage_fns=FAKES, console=quiet)
    assert [c["stage"] for c in calls(tmp_path / "out")] == ["finetune"]


def test_label_input_conflicts_are_duplicate_ids_as_in_the_label_stage(tmp_path):
    cfg = load_config(_job(tmp_path, dev_classes=("a", "b", "c"), leak=False, short_record=False))
    with open(tmp_path / "data" / "input.jsonl", "a") as f:
        f.write('{"text": "same", "label": "a"}\n{"text": "same", "label": "b"}\n')
    report = check_data(cfg)
    assert report.sources["label.input"]["skipped"] == {"duplicate_id": 1}
    assert report.ok and not any("different gold label" in w for w in report.warnings)


def test_a_class_too_small_to_hold_out_is_a_warning_not_an_error(tmp_path):
    """task.split keeps a 1-row class in train; the check must not then stop every run of a long-tailed task,
    while a class with enough rows that is missing from dev stays an error."""
    d = tmp_path / "data"
    d.mkdir()
    rows = [f"text {i} of a,a" for i in range(20)] + [f"text {i} of b,b" for i in range(20)] + ["lonely text,c"]
    (d / "all.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    raw = {"output_dir": str(tmp_path / "out"),
           "task": {"name": "t", "label_names": ["a", "b", "c"],
                    "split": {"source": {"path": str(d / "all.csv")}, "dev": 0.2, "test": 0.2}},
           "label": {"teacher": {"path": str(tmp_path / "no-model")}}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(raw))
    from zuoxiao.core.split import prepare_data

    cfg, _ = prepare_data(load_config(tmp_path / "job.yaml"))
    report = check_data(cfg)
    assert report.errors == []
    assert any("['c']" in w and "fewer than 3" in w for w in report.warnings)


def test_extra_inputs_are_checked_like_label_input(tmp_path, capsys):
    """label.extra_inputs feed the teacher too: their bad rows are dead letters and their overlap with the
    test set is leakage, reported under their own name."""
    extra = tmp_path / "more.csv"
    extra.write_text("body\nsome unlabelled tweet\nthe eval text number 2\n")
    job = _job(tmp_path, dev_classes=("a", "b", "c"), leak=False, short_record=False)
    raw = yaml.safe_load(job.read_text())
    raw["label"]["extra_inputs"] = [{"path": str(extra), "text_column": "body", "label_column": None}]
    job.write_text(yaml.safe_dump(raw))
    report = check_data(load_config(job))
    assert "label.extra_inputs[0]" in report.sources
    assert report.overlaps == {"task.eval & label.extra_inputs[0]": 1}
    assert any("label.extra_inputs[0]" in w and "leakage" in w for w in report.warnings)


def test_eval_text_much_longer_than_dev_and_transfer_text_is_a_warning(tmp_path):
    cfg = load_config(_job(tmp_path, leak=False, short_record=False))
    assert not [w for w in check_data(cfg).warnings if "median" in w]  # 5 vs 3 words: no warning
    d = tmp_path / "data"
    long = " ".join(["word"] * 14)
    (d / "eval.csv").write_text("text,label\n" + "".join(f"{long} {i},{'abc'[i % 3]}\n" for i in range(6)))
    shift = [w for w in check_data(cfg).warnings if "median" in w]
    assert shift == [
        "task.eval texts are longer than task.dev's (median 15 vs 3 words, 5.0x): checkpoints, the blend and "
        "searches are chosen on text unlike the evaluation's: give a dev set drawn like task.eval (or task.split)",
        "task.eval texts are longer than label.input's (median 15 vs 3 words, 5.0x): the student is distilled on "
        "text unlike what it is measured on, and loses most where the lengths differ: add transfer text like "
        "task.eval's"]
