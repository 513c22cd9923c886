"""train.search: a coordinate search over loss / alpha / repr_weight / lr, scored on dev, all recorded."""

import json

import numpy as np

from tests.student.conftest import make_cfg, write_shards
from zuoxiao.core.config.views import TrainView
from zuoxiao.student.losses import resolve_kind
from zuoxiao.student.search import coordinate_search, recipe
from zuoxiao.student.train import train


def _search_cfg(teacher, data, **search):
    return make_cfg(teacher, data, search={"max_steps": 2, "temperatures": [1.0, 4.0], "alphas": [1.0, 0.5],
                                           "repr_weights": [0.0, 1.0], "lrs": [1e-3, 3e-3], **search}).train


def test_search_picks_the_best_dev_score_and_records_every_candidate(tiny_teacher, toy_data):
    tc = _search_cfg(tiny_teacher, toy_data)
    # a made-up dev score: MSE best among losses, alpha 0.5, repr 1.0 and lr 3e-3 best in their stages
    def score(c):
        r = recipe(c)
        return (0.5 if r["kind"] == "mse" else 0.1 * r["temperature"] / 4) + (0.2 if r["alpha"] == 0.5 else 0) \
            + 0.1 * r["repr_weight"] + (0.05 if r["lr"] == 3e-3 else 0)

    ran = []
    best, report = coordinate_search(tc, lambda c: ran.append(c) or {"accuracy": score(c)}, has_gold=True,
                                     has_repr=True)
    assert (best.loss.kind, best.loss.alpha, best.loss.repr_weight, best.optim.lr) == ("mse", 0.5, 1.0, 3e-3)
    assert best.search is None and report["best"] == recipe(best)
    scores = [c["score"] for c in report["candidates"]]
    assert report["best_score"] == max(scores) == score(best)
    # the configured alpha 0.5, repr_weight 0 and lr 1e-3 were already scored in the loss stage: not run twice
    assert [c["stage"] for c in report["candidates"]] == ["loss"] * 3 + ["alpha", "repr_weight", "lr"]
    assert len(ran) == len(report["candidates"]) == 6


def test_search_skips_gold_and_repr_stages_it_cannot_use_and_respects_the_budget(tiny_teacher, toy_data):
    tc = _search_cfg(tiny_teacher, toy_data, budget_s=25)
    ticks = iter(range(0, 1000, 10))  # every run takes 10 "seconds" on this clock
    best, report = coordinate_search(tc, lambda c: {"accuracy": 0.5}, has_gold=False, has_repr=False,
                                     clock=lambda: next(ticks))
    assert {c["stage"] for c in report["candidates"]} == {"loss", "lr"}
    status = [c["status"] for c in report["candidates"]]
    assert status[0] == "ran" and "skipped_budget" in status
    assert best.loss.kind == "kl" and best.loss.temperature == 1.0  # ties keep the earlier candidate


def test_train_with_search_keeps_the_best_and_reports_all(tmp_path, tiny_teacher, toy_data):
    rows = toy_data["rows"]
    logits = np.array([[-2.0, 2.0] if r["y"] else [2.0, -2.0] for r in rows])
    reprs = np.random.default_rng(0).normal(size=(len(rows), 48)).astype(np.float32)
    shards = write_shards(tmp_path / "label", rows, logits, ["neg", "pos"], str(tiny_teacher), gold_every=2,
                          reprs=reprs)
    cfg = make_cfg(tiny_teacher, toy_data, optim={"max_steps": 2, "batch_size": 16, "lr": 1e-3},
                   search={"max_steps": 1, "temperatures": [2.0], "alphas": [1.0], "repr_weights": [0.0, 1.0],
                           "lrs": [1e-3, 3e-3]})
    m = train(TrainView.of(cfg), shards, tmp_path / "out")
    s = json.loads((tmp_path / "out" / "metrics.json").read_text())["search"]
    ran = [c for c in s["candidates"] if c["status"] == "ran"]
    assert {c["stage"] for c in ran} == {"loss", "alpha", "repr_weight", "lr"}
    top = max(ran, key=lambda c: c["score"])  # first of the best (ties keep the earlier one)
    assert s["best_score"] == top["score"]
    assert s["best"]["lr"] == m["lr"] and s["best"]["repr_weight"] == m["loss"]["repr_weight"]
    assert s["best"]["kind"] == m["loss"]["kind"]


def test_auto_loss_kind_by_number_of_classes():
    assert [resolve_kind("auto", c) for c in (2, 4, 8, 20, 77)] == ["mse", "mse", "kl", "kl", "kl"]
    assert resolve_kind("kl", 2) == "kl" and resolve_kind("mse", 77) == "mse"
