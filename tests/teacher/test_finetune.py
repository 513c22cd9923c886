"""finetune_teacher on a tiny offline BERT and a keyword task: it learns, and its output is a teacher."""

import json

import pytest

from tests.student.conftest import make_rows, make_tiny_bert, one_thread, write_jsonl
from zuoxiao.core.config import parse_config
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.evaluate import evaluate_model
from zuoxiao.teacher.finetune import finetune_teacher, split_eval
from zuoxiao.teacher.model import label_names_of, load_classifier, load_tokenizer

__all__ = ["one_thread"]  # the autouse fixture from tests/student/conftest.py applies here too


def _cfg(tmp_path, teacher, with_eval=True, **optim):
    train = write_jsonl(tmp_path / "gold.jsonl", make_rows(192, seed=11))
    ev = write_jsonl(tmp_path / "test.jsonl", make_rows(64, seed=12))
    return parse_config({
        "task": {"name": "toy", "eval": {"path": str(ev)} if with_eval else None},
        "finetune": {"data": {"path": str(train)}, "teacher": {"path": str(teacher), "max_length": 32},
                     "optim": {"lr": 3e-3, "epochs": 5, "batch_size": 16, "warmup_ratio": 0.1, **optim},
                     "eval_fraction": 0.25},
    })


def test_finetune_learns_and_saves_a_teacher(tmp_path):
    teacher = make_tiny_bert(tmp_path / "base", layers=2, seed=1)
    out = tmp_path / "teacher"
    m = finetune_teacher(_cfg(tmp_path, teacher), out)
    assert m["eval_source"] == "task.eval" and m["n"] == 64 and m["train_rows"] == 192
    assert m["accuracy"] >= 0.9, m  # the keyword task is easy; an untrained head sits near 0.5
    assert m["train"]["steps"] == 60  # 5 epochs x 12 batches of 16
    for name in ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt", "config.resolved.yaml",
                 "metrics.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == m["accuracy"]
    model = load_classifier(str(out))
    assert label_names_of(model) == ["neg", "pos"]  # automatic map: the sorted labels seen
    again = evaluate_model(model, load_tokenizer(str(out)), _cfg(tmp_path, teacher).task.eval, ["neg", "pos"], 32)
    assert again["accuracy"] == pytest.approx(m["accuracy"])
    assert not (out / "checkpoints").exists()  # best weights are the saved model; no leftovers


def test_held_out_fraction_without_task_eval(tmp_path):
    teacher = make_tiny_bert(tmp_path / "base", layers=1, seed=2)
    m = finetune_teacher(_cfg(tmp_path, teacher, with_eval=False, max_steps=2), tmp_path / "t")
    assert m["eval_source"] == "25% of finetune.data" and m["n"] == 48 and m["train_rows"] == 144


def test_split_is_seeded_and_disjoint():
    texts = [f"t{i}" for i in range(20)]
    (a, _), (b, _) = split_eval(texts, list(range(20)), 0.25, seed=0)
    (a2, _), _ = split_eval(texts, list(range(20)), 0.25, seed=0)
    assert a == a2 and len(b) == 5 and not set(a) & set(b)


def test_missing_section(tmp_path):
    cfg = parse_config({"label": {"input": {"path": "x.jsonl"}}})
    with pytest.raises(ConfigError, match="finetune: section is missing"):
        finetune_teacher(cfg, tmp_path / "t")
