"""finetune_teacher on a tiny offline BERT and a keyword task: schedule, dev split, search, baseline gate."""

import json

import numpy as np
import pytest
import torch

from tests.student.conftest import make_rows, make_tiny_bert, one_thread, write_jsonl
from zuoxiao.core.config import parse_config
from zuoxiao.core.errors import ConfigError, GateFailed
from zuoxiao.core.evaluate import evaluate_model
from zuoxiao.core.loop import param_groups
from zuoxiao.teacher.classifier import label_names_of, load_classifier, load_tokenizer
from zuoxiao.teacher.finetune.stage import finetune_teacher, plan_epochs, stratified_split

__all__ = ["one_thread"]  # the autouse fixture from tests/student/conftest.py applies here too


def _cfg(tmp_path, teacher, with_dev=True, finetune=None, **optim):
    train = write_jsonl(tmp_path / "gold.jsonl", make_rows(192, seed=11))
    ev = write_jsonl(tmp_path / "test.jsonl", make_rows(64, seed=12))
    dev = write_jsonl(tmp_path / "dev.jsonl", make_rows(48, seed=13))
    return parse_config({
        "task": {"name": "toy", "eval": {"path": str(ev)}, "dev": {"path": str(dev)} if with_dev else None},
        "finetune": {"data": {"path": str(train)}, "teacher": {"path": str(teacher), "max_length": 32},
                     "optim": {"lr": 3e-3, "epochs": 5, "batch_size": 16, "warmup_ratio": 0.1, **optim},
                     "dev_fraction": 0.25, "allow_below_baseline": True, **(finetune or {})},
    })


def test_finetune_learns_and_saves_a_teacher(tmp_path):
    teacher = make_tiny_bert(tmp_path / "base", layers=2, seed=1)
    out = tmp_path / "teacher"
    m = finetune_teacher(_cfg(tmp_path, teacher), out)
    assert m["eval_source"] == "task.eval" and m["n"] == 64 and m["train_rows"] == 192
    assert m["dev_source"] == "task.dev" and m["teacher"]["dev"]["n"] == 48
    assert m["accuracy"] >= 0.9, m  # the keyword task is easy; an untrained head sits near 0.5
    assert m["train"]["steps"] == 60 and m["train"]["epochs_from"] == "optim.epochs"  # 5 epochs x 12 batches
    # the baseline is fitted on the same rows and scored on the same sets
    assert m["baseline"]["kind"] == "tfidf+logreg" and m["baseline"]["eval"]["n"] == 64
    assert m["baseline"]["dev"]["n"] == 48 and m["gate"]["split"] == "dev"
    assert m["gate"]["gain_points"] == pytest.approx(100 * (m["teacher"]["dev"]["accuracy"]
                                                            - m["baseline"]["dev"]["accuracy"]), abs=0.01)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt", "config.resolved.yaml",
                 "metrics.json"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["accuracy"] == m["accuracy"] and on_disk["baseline"] == m["baseline"]
    model = load_classifier(str(out))
    assert label_names_of(model) == ["neg", "pos"]  # automatic map: the sorted labels seen
    again = evaluate_model(model, load_tokenizer(str(out)), _cfg(tmp_path, teacher).task.eval, ["neg", "pos"], 32)
    assert again["accuracy"] == pytest.approx(m["accuracy"])
    assert not (out / "checkpoints").exists()  # best weights are the saved model; no leftovers


def test_dev_split_off_gold_when_task_dev_is_null(tmp_path, caplog):
    teacher = make_tiny_bert(tmp_path / "base", layers=1, seed=2)
    with caplog.at_level("WARNING"):
        m = finetune_teacher(_cfg(tmp_path, teacher, with_dev=False, max_steps=2), tmp_path / "t")
    assert m["dev_rows"] == 48 and m["train_rows"] == 144 and m["teacher"]["dev"]["n"] == 48
    assert "stratified" in m["dev_source"] and "48 of 192" in m["dev_source"]
    assert "held out 48 of 192 rows" in caplog.text  # said, not only recorded
    assert m["eval_source"] == "task.eval"  # the test set is scored, never used to select


def test_stratified_split_keeps_class_shares_seeded_and_disjoint():
    labels = [0] * 80 + [1] * 16 + [2] * 4 + [3]
    texts = [f"t{i}" for i in range(len(labels))]
    (tr_x, tr_y), (dv_x, dv_y) = stratified_split(texts, labels, 0.25, seed=0)
    assert np.bincount(dv_y, minlength=4).tolist() == [20, 4, 1, 0]  # a 1-row class stays in training
    assert not set(tr_x) & set(dv_x) and len(tr_x) + len(dv_x) == len(texts)
    assert stratified_split(texts, labels, 0.25, seed=0)[1][0] == dv_x
    assert stratified_split(texts, labels, 0.25, seed=1)[1][0] != dv_x
    capped = stratified_split(texts, labels, 0.25, seed=0, max_rows=10)[1][1]
    assert np.bincount(capped, minlength=4).tolist() == [8, 2, 1, 0]  # every class scaled down alike


@pytest.mark.parametrize("rows,classes,spe,expected", [
    (7200, 2, 225, 3.0),      # SST-2, 8k gold: min_epochs
    (1800, 2, 57, 5.26),      # 2k gold: min_steps 300
    (4500, 77, 141, 8.56),    # 77 intents x ~58 rows: rows_per_class 500
    (40, 20, 2, 20.0),        # tiny: capped at max_epochs
])
def test_auto_epochs_scale_with_rows_and_classes(tmp_path, rows, classes, spe, expected):
    ft = _cfg(tmp_path, "x", epochs="auto").finetune
    epochs, why = plan_epochs(ft, rows, classes, spe)
    assert epochs == pytest.approx(expected, abs=0.01) and why.startswith("auto")
    assert plan_epochs(ft, rows, classes, spe, epochs=2.0) == (2.0, "optim.epochs")


def test_new_head_trains_at_head_lr(tmp_path):
    teacher = make_tiny_bert(tmp_path / "base", layers=1, seed=3)  # a 2-class head
    new: set[str] = set()
    model = load_classifier(str(teacher), ["a", "b", "c"], new_params=new)  # 3 classes: the head is new
    assert new == {"classifier.weight", "classifier.bias"}
    groups = param_groups(model, 0.01, 1e-4, frozenset(new), 2e-3)
    by_lr: dict[float, int] = {}
    for g in groups:
        by_lr[g["lr"]] = by_lr.get(g["lr"], 0) + sum(p.numel() for p in g["params"])
    assert by_lr[2e-3] == model.classifier.weight.numel() + model.classifier.bias.numel()
    assert sum(by_lr.values()) == sum(p.numel() for p in model.parameters())
    kept: set[str] = set()
    load_classifier(str(teacher), ["a", "b"], new_params=kept)
    assert kept == set()  # a matching head is loaded, not new: everything at the backbone lr


def test_early_stopping_on_dev(tmp_path):
    teacher = make_tiny_bert(tmp_path / "base", layers=1, seed=4)
    cfg = _cfg(tmp_path, teacher, finetune={"eval_every": 1, "early_stopping_patience": 2},
               lr=1e-12, head_lr=1e-12, max_steps=10)  # nothing improves after the first evaluation
    m = finetune_teacher(cfg, tmp_path / "t")
    assert m["train"]["stopped_early"] and m["train"]["steps"] == 3 and m["train"]["best_step"] == 1


def test_search_keeps_the_best_on_dev_and_reports_all(tmp_path):
    teacher = make_tiny_bert(tmp_path / "base", layers=2, seed=1)
    cfg = _cfg(tmp_path, teacher, finetune={"search": {"lr": [1e-9, 3e-3], "epochs": [5]}})
    m = finetune_teacher(cfg, tmp_path / "t", keep_trials=True)
    trials = m["search"]["trials"]
    assert [(t["lr"], t["epochs"], t["status"]) for t in trials] == [(1e-9, 5, "done"), (3e-3, 5, "done")]
    assert trials[1]["dev"]["accuracy"] > trials[0]["dev"]["accuracy"] + 0.2  # 1e-9 learns nothing
    best = trials[1]
    assert m["search"]["best_trial"] == best["trial"] == 1 and m["train"]["lr"] == 3e-3
    assert m["teacher"]["dev"] == best["dev"]  # the kept model is the best trial's
    assert (tmp_path / "t" / "trials" / "0" / "model.safetensors").is_file()  # keep_trials saves each


def test_search_skips_trials_beyond_the_budget(tmp_path):
    teacher = make_tiny_bert(tmp_path / "base", layers=1, seed=5)
    cfg = _cfg(tmp_path, teacher, finetune={"search": {"lr": [1e-3, 3e-3], "epochs": [1], "budget_s": 0.01}})
    m = finetune_teacher(cfg, tmp_path / "t")
    assert m["search"]["trials"][0]["status"] == "done"  # the first trial always runs
    assert m["search"]["trials"][1]["status"].startswith("skipped")
    assert not (tmp_path / "t" / "trials" / "0").exists()


def test_teacher_below_baseline_stops_before_labelling(tmp_path):
    teacher = make_tiny_bert(tmp_path / "base", layers=1, seed=6)
    # two steps at a tiny lr: the teacher stays near chance, TF-IDF solves the keyword task
    cfg = _cfg(tmp_path, teacher, finetune={"allow_below_baseline": False}, lr=1e-9, head_lr=1e-9, max_steps=2)
    out = tmp_path / "t"
    with pytest.raises(GateFailed, match=r"TF-IDF .* baseline .*min_gain_over_baseline=1.*finetune.search") as err:
        finetune_teacher(cfg, out)
    assert err.value.exit_code == 3
    m = json.loads((out / "metrics.json").read_text())
    assert not m["gate"]["passed"] and m["baseline"]["dev"]["accuracy"] >= 0.9
    assert f"{m['gate']['teacher']:.2%}" in str(err.value) and f"{m['gate']['baseline']:.2%}" in str(err.value)
    assert not (out / "model.safetensors").exists()  # nothing the label stage could pick up
    cfg.finetune.allow_below_baseline = True
    assert not finetune_teacher(cfg, out)["gate"]["passed"] and (out / "model.safetensors").is_file()


def test_config_errors(tmp_path):
    cfg = parse_config({"label": {"input": {"path": "x.jsonl"}}})
    with pytest.raises(ConfigError, match="finetune: section is missing"):
        finetune_teacher(cfg, tmp_path / "t")
    with pytest.raises(ConfigError, match="ensembles belong in label.teacher.members"):
        parse_config({"finetune": {"data": {"path": "g.jsonl"}, "teacher": {"members": ["a", "b"]}}})
    with pytest.raises(ConfigError, match="epochs"):
        parse_config({"finetune": {"data": {"path": "g.jsonl"}, "optim": {"epochs": 0}}})


def test_defaults_are_the_scaling_schedule():
    ft = parse_config({"finetune": {"data": {"path": "g.jsonl"}}}).finetune
    assert ft.optim.epochs == "auto" and ft.optim.head_lr > ft.optim.lr and ft.optim.warmup_ratio > 0
    assert ft.min_gain_over_baseline == 1.0 and not ft.allow_below_baseline and ft.search is None
    assert torch.get_num_threads() == 1  # the one_thread fixture is active
