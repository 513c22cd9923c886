"""bench/transfer_size.py without the compute: arguments, the validated plan (--dry-run), the plot."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import transfer_size as T  # noqa: E402 - bench/ is not a package


def test_arguments_give_sorted_sizes_and_the_variants():
    a = T.parse_args(["--dataset", "sst2", "--sizes", "4000, 1000,2000,1000"])
    assert a.sizes == [1000, 2000, 4000] and a.variants == ["plain"]
    a = T.parse_args(["--dataset", "demo", "--augment", "--extra-unlabelled", "500"])
    assert a.variants == ["plain", "augment", "extra"] and a.sizes == [1000, 2000, 4000, 8000]
    assert T.parse_args(["--dataset", "demo", "--joins", "1"]).variants == ["plain", "join"]


@pytest.mark.parametrize("argv", [["--sizes", "1k"], ["--sizes", "0"], ["--sizes", ","], ["--extra-unlabelled", "-1"],
                                  ["--joins", "-1"]])
def test_bad_arguments_exit_2_naming_the_value(argv, capsys):
    with pytest.raises(SystemExit) as err:
        T.parse_args(["--dataset", "sst2", *argv])
    assert err.value.code == 2
    assert "--sizes" in capsys.readouterr().err or "--extra-unlabelled" in argv


def test_dry_run_builds_and_validates_every_run_config(tmp_path, capsys):
    plan = T.main(["--dataset", "demo", "--sizes", "100,200", "--augment", "--extra-unlabelled", "50",
                   "--joins", "1", "--dry-run", "--workdir", str(tmp_path)])
    assert plan["runs"] == 8 and plan["variants"] == ["plain", "augment", "extra", "join"]
    assert json.loads(capsys.readouterr().out)["recipe"].endswith("configs/demo.yaml")
    args = T.parse_args(["--dataset", "demo", "--extra-unlabelled", "50", "--dry-run"])
    base, _ = T.recipe("demo")
    files = T.prepare_data(args, base, tmp_path)
    files["labels"] = ["a", "b"]
    cfg = T.run_config(args, base, files, tmp_path, "teacher-dir", 100, "extra")
    assert cfg.label.input.limit == 100 and cfg.label.teacher.path == "teacher-dir"
    assert cfg.label.extra_inputs[0].label_column is None and cfg.label.extra_inputs[0].text_column == "body"
    assert cfg.train == T.run_config(args, base, files, tmp_path, "t", 100, "plain").train  # the shipped recipe
    assert T.run_config(args, base, files, tmp_path, "t", 100, "augment").label.augment.enabled
    args.joins = 2
    aug = T.run_config(args, base, files, tmp_path, "t", 100, "join").label.augment
    assert aug.enabled and aug.copies == 0 and aug.joins == 2


def test_plot_writes_a_png(tmp_path):
    result = {"dataset": "x", "sizes": [100, 200], "teacher_acc": 0.8,
              "accuracy": {"plain": {"100": 0.6, "200": 0.7}, "augment": {"100": 0.65, "200": 0.72}}}
    T.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_merge_joins_an_earlier_run_and_refuses_another_teacher():
    def run(variant, n, acc):
        return {"variant": variant, "input_rows": n, "test_acc": acc}

    now = {"dataset": "d", "teacher": "t", "accuracy": {"plain": {"4000": 0.8}}, "runs": [run("plain", 4000, 0.8)],
           "legend": {}, "seconds": {"total_s": 1}}
    before = {"dataset": "d", "teacher": "t", "accuracy": {"plain": {"1000": 0.7, "4000": 0.5}, "augment": {"1000": 0.75}},
              "runs": [run("plain", 1000, 0.7), run("plain", 4000, 0.5), run("augment", 1000, 0.75)],
              "seconds": {"total_s": 2}}
    T.merge(now, before)
    assert now["accuracy"] == {"plain": {"1000": 0.7, "4000": 0.8}, "augment": {"1000": 0.75}}
    assert now["sizes"] == [1000, 4000] and sorted(now["variants"]) == ["augment", "plain"]
    assert sorted((r["variant"], r["input_rows"], r["test_acc"]) for r in now["runs"]) == [
        ("augment", 1000, 0.75), ("plain", 1000, 0.7), ("plain", 4000, 0.8)]
    with pytest.raises(SystemExit, match="another dataset or teacher"):
        T.merge(now, {**before, "teacher": "other"})
