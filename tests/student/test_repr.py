"""Representation distillation: the teacher_repr column read back, the loss term, the projection dropped."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import zuoxiao.student.train as train_mod
from tests.student.conftest import make_cfg, write_shards
from zuoxiao.core.config.views import TrainView
from zuoxiao.core.errors import IntegrityError
from zuoxiao.student.data import ShardStream
from zuoxiao.student.losses import repr_loss
from zuoxiao.student.train import train

TEACHER_DIM = 48  # wider than the 32-wide student: the projection maps 32 -> 48


def _reprs(rows, null_every=5):
    """[N, 48] synthetic teacher states: a class direction plus noise; every 5th row null (NaN)."""
    rng = np.random.default_rng(0)
    direction = rng.normal(size=TEACHER_DIM)
    out = np.stack([(1 if r["y"] else -1) * direction + 0.3 * rng.normal(size=TEACHER_DIM) for r in rows])
    out[::null_every] = np.nan
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def repr_shards(tmp_path_factory, tiny_teacher, toy_data):
    rows = toy_data["rows"]
    logits = np.array([[-2.0, 2.0] if r["y"] else [2.0, -2.0] for r in rows])
    return write_shards(tmp_path_factory.mktemp("repr"), rows, logits, ["neg", "pos"], str(tiny_teacher),
                        gold_every=2, reprs=_reprs(rows))


def test_repr_column_read_with_its_dim_and_finite_values(repr_shards, toy_data):
    want = _reprs(toy_data["rows"])
    stream = ShardStream(repr_shards, batch_size=16, with_repr=True)
    assert stream.repr_dim == TEACHER_DIM
    batches = list(stream.epoch(0))
    reps = np.concatenate([b.teacher_repr for b in batches])
    has = np.concatenate([b.has_repr for b in batches])
    assert reps.shape == (len(want), TEACHER_DIM) and np.isfinite(reps).all()
    assert has.sum() == (~np.isnan(want).any(1)).sum() and not reps[~has].any()  # null rows: zeros, flagged
    stored = np.sort(want[~np.isnan(want).any(1)].astype(np.float16).astype(np.float32).sum(1))
    np.testing.assert_allclose(np.sort(reps[has].sum(1)), stored, rtol=1e-5, atol=1e-4)
    # the same batches (texts, teacher) as a stream that does not read representations
    plain = list(ShardStream(repr_shards, batch_size=16).epoch(0))
    assert [b.texts for b in plain] == [b.texts for b in batches]
    assert all(np.array_equal(p.teacher, b.teacher) and p.teacher_repr is None for p, b in zip(plain, batches, strict=True))


def test_old_shards_without_the_column_still_read(toy_shards):
    stream = ShardStream(toy_shards, batch_size=16)  # written without teacher_repr (conftest default)
    assert stream.repr_dim is None and sum(len(b.texts) for b in stream.epoch(0)) == stream.num_rows
    with pytest.raises(IntegrityError, match="store_representation"):
        ShardStream(toy_shards, batch_size=16, with_repr=True)


def test_repr_loss_equals_hand_computed_cosine():
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    t = torch.tensor([[0.0, 2.0], [2.0, 2.0], [4.0, -3.0]])
    has = torch.tensor([True, True, False])
    # row 0: cos = 0 -> 1; row 1: cos = 1 -> 0; row 2 has no teacher state: left out of the mean
    assert repr_loss(s, t, has).item() == pytest.approx((1.0 + 0.0) / 2)
    assert repr_loss(s, t, torch.tensor([False, False, False])).item() == 0.0
    assert repr_loss(s, t, has, "mse").item() == pytest.approx(((1 + 4) / 2 + (1 + 1) / 2) / 2)


def test_projection_is_trained_and_not_exported(tmp_path, tiny_teacher, toy_data, repr_shards, monkeypatch):
    made = []

    class Recording(train_mod.ReprDistiller):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append((self, self.proj.weight.detach().clone()))

    monkeypatch.setattr(train_mod, "ReprDistiller", Recording)
    optim = {"max_steps": 4, "batch_size": 16, "lr": 3e-3}
    plain = train(TrainView.of(make_cfg(tiny_teacher, toy_data, optim=optim)), repr_shards, tmp_path / "plain")
    assert not made and plain["loss"]["repr_weight"] == 0
    m = train(TrainView.of(make_cfg(tiny_teacher, toy_data, optim=optim, loss={"repr_weight": 1.0})),
              repr_shards, tmp_path / "repr")
    (wrapper, before), = made
    assert wrapper.proj.weight.shape == (TEACHER_DIM, 32)
    assert not torch.equal(wrapper.proj.weight.detach(), before)  # AdamW updated the projection
    assert set(load_file(str(tmp_path / "repr" / "model.safetensors"))) == \
        set(load_file(str(tmp_path / "plain" / "model.safetensors")))
    logged = [json.loads(x) for x in (tmp_path / "repr" / "metrics.jsonl").read_text().splitlines()]
    assert any("repr" in r for r in logged) and m["student"]["accuracy"] is not None


def test_repr_term_with_topk_shards_and_lora(tmp_path, tiny_teacher, toy_data):
    rows = toy_data["rows"]
    logits = np.array([[-2.0, 2.0] if r["y"] else [2.0, -2.0] for r in rows])
    shards = write_shards(tmp_path / "label", rows, logits, ["neg", "pos"], str(tiny_teacher), storage="topk",
                          top_k=1, reprs=_reprs(rows))
    cfg = make_cfg(tiny_teacher, toy_data, adapter={"kind": "lora", "r": 2}, loss={"repr_weight": 0.5},
                   optim={"max_steps": 2, "batch_size": 16, "lr": 3e-3})
    m = train(TrainView.of(cfg), shards, tmp_path / "out")
    keys = set(load_file(str(tmp_path / "out" / "model.safetensors")))
    assert m["train"]["storage"] == "topk" and not any("lora" in k or "proj" in k for k in keys)
