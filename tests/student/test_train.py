"""train(): metrics.json contract, resume == uninterrupted, refusals, distill_model, label -> train."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import zuoxiao.student.train as train_mod
from tests.student.conftest import make_cfg
from zuoxiao.core.config.views import TrainView
from zuoxiao.core.errors import ConfigError, IntegrityError
from zuoxiao.student.train import distill_model, train


def test_metrics_contract_and_outputs(tmp_path, tiny_teacher, toy_data, toy_shards):
    out = tmp_path / "student"
    m = train(TrainView.of(make_cfg(tiny_teacher, toy_data, optim={"max_steps": 6, "batch_size": 16, "lr": 3e-3})), toy_shards, out)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["teacher"]["path"] == str(tiny_teacher)
    for k in ("accuracy", "macro_f1", "path", "params"):
        assert k in on_disk["teacher"]
    for k in ("accuracy", "macro_f1", "agreement", "params", "non_embedding_params"):
        assert k in on_disk["student"]
    assert 0 <= on_disk["student"]["agreement"] <= 1 and on_disk["student"]["n"] == 48
    assert (out / "config.resolved.yaml").is_file() and (out / "model.safetensors").is_file()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "eval_accuracy" in r] == [2, 4, 6]
    assert m["train"]["best_step"] in (2, 4, 6)
    # the saved model is the best evaluated one
    best = load_file(str(out / "checkpoints" / "best.safetensors"))
    final = load_file(str(out / "model.safetensors"))
    assert torch.equal(best["classifier.weight"], final["classifier.weight"])


def test_resume_equals_uninterrupted(tmp_path, tiny_teacher, toy_data, toy_shards, monkeypatch):
    over = {"optim": {"max_steps": 6, "batch_size": 16, "lr": 3e-3, "grad_accum": 2}, "checkpoint_every": 2,
            "keep_checkpoints": 5}
    cfg = make_cfg(tiny_teacher, toy_data, evaluate=False, **over)  # no eval: the final = the last weights
    train(TrainView.of(cfg), toy_shards, tmp_path / "a")

    calls = {"n": 0}
    real = train_mod.distill_loss

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2 * 5:  # micro-batch 10 = inside optimizer step 5 (grad_accum 2)
            raise KeyboardInterrupt("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "distill_loss", crashing)
    with pytest.raises(KeyboardInterrupt):
        train(TrainView.of(cfg), toy_shards, tmp_path / "b")
    monkeypatch.setattr(train_mod, "distill_loss", real)
    ckpts = tmp_path / "b" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step-*")) == ["step-00000002", "step-00000004"]
    # a half-written checkpoint (no trainer_state.json) must not be taken as complete
    shutil.copytree(ckpts / "step-00000004", ckpts / "step-00000005")
    (ckpts / "step-00000005" / "trainer_state.json").unlink()
    m = train(TrainView.of(cfg), toy_shards, tmp_path / "b", resume=True)
    assert m["train"]["steps"] == 6 and m["train"]["resumed_from"] == 4  # not a restart from scratch
    assert m["student"]["accuracy"] is None and m["teacher"]["accuracy"] is None  # no task.eval: null, not absent
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    la = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in la] == [r["step"] for r in lb]


def test_modified_shard_refused(tmp_path, tiny_teacher, toy_data, toy_shards):
    d = tmp_path / "lab"
    shutil.copytree(toy_shards, d)
    shard = next((d / "shards").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-100] + b"\0" * 100)
    with pytest.raises(IntegrityError, match="does not match the sha256.*relabel or restore"):
        train(TrainView.of(make_cfg(tiny_teacher, toy_data)), d, tmp_path / "s")


def test_label_names_mismatch_is_config_error(tmp_path, tiny_teacher, toy_data, toy_shards):
    cfg = make_cfg(tiny_teacher, toy_data)
    cfg.task.label_names = ["bad", "good"]
    with pytest.raises(ConfigError, match=r"task.label_names=\['bad', 'good'\].*\['neg', 'pos'\]"):
        train(TrainView.of(cfg), toy_shards, tmp_path / "s")


def test_distill_model_moves_towards_teacher(tiny_teacher, toy_data, toy_shards):
    from zuoxiao.teacher.classifier import load_classifier, load_tokenizer

    cfg = make_cfg(tiny_teacher, toy_data)
    model = load_classifier(str(tiny_teacher), ["neg", "pos"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = distill_model(model, load_tokenizer(str(tiny_teacher)), toy_shards, TrainView.of(cfg), max_steps=3, lr=1e-3)
    assert not out.training and type(out).__name__ == "BertForSequenceClassification"
    assert not torch.equal(before["classifier.weight"], out.state_dict()["classifier.weight"])


def test_label_then_train_end_to_end(tmp_path, tiny_teacher, toy_data):
    from zuoxiao.pipelines.label import label_from_config

    cfg = make_cfg(tiny_teacher, toy_data, optim={"max_steps": 4, "batch_size": 16, "lr": 3e-3})
    manifest = label_from_config(cfg, tmp_path / "label", teacher_path=str(tiny_teacher))
    assert manifest["counts"]["labeled"] == 192
    m = train(TrainView.of(cfg), tmp_path / "label", tmp_path / "student")
    assert m["train"]["rows"] == 192 and m["train"]["steps"] == 4
    assert m["teacher"]["path"] == manifest["teacher"]["path"]
    assert (tmp_path / "student" / "model.safetensors").is_file()


def test_early_stopping(tmp_path, tiny_teacher, toy_data, toy_shards):
    # lr ~ 0: the eval metric cannot improve after the first evaluation -> patience 1 stops at step 4
    cfg = make_cfg(tiny_teacher, toy_data, early_stopping_patience=1,
                   optim={"max_steps": 10, "batch_size": 16, "lr": 1e-12})
    m = train(TrainView.of(cfg), toy_shards, tmp_path / "s")
    assert m["train"]["stopped_early"] and m["train"]["steps"] == 4 and m["train"]["best_step"] == 2


def test_dev_set_selects_the_checkpoint_and_eval_stays_a_test(tmp_path, tiny_teacher, toy_data, toy_shards):
    from tests.student.conftest import make_rows, write_jsonl

    cfg = make_cfg(tiny_teacher, toy_data, optim={"max_steps": 4, "batch_size": 16, "lr": 3e-3})
    dev = write_jsonl(tmp_path / "dev.jsonl", make_rows(20, seed=3))
    cfg.task.dev = cfg.task.eval.model_copy(update={"path": str(dev)})
    out = tmp_path / "student"
    m = train(TrainView.of(cfg), toy_shards, out)
    assert m["selection"] == "task.dev"
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "eval_accuracy" in x]
    assert evals and all(r["eval_n"] == 20 for r in evals)  # selection ran on the 20 dev rows
    assert m["student"]["n"] == 48  # the final report is on task.eval
