"""The shared training loop's pieces: rank batching, LoopSpec from an optimiser config, NaN guard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zuoxiao.core.config.train import OptimConfig
from zuoxiao.core.errors import InputError
from zuoxiao.core.loop import LoopSpec, fit, make_accelerator, rank_batches


class Source:
    """len() batches per epoch; batch i of every epoch is the number i (a stand-in for real rows)."""

    def __init__(self, n: int, poison_at: int | None = None):
        self.n, self.poison_at = n, poison_at

    def __len__(self):
        return self.n

    def epoch(self, e):
        return iter(range(self.n))


def test_rank_batches_deal_every_usable_batch_once_across_processes():
    src = Source(11)
    world, usable = 2, 4  # 11 batches over 2 processes: 5 each, 4 usable with grad_accum 2
    seen = [[(local, raw) for local, raw in rank_batches(src, 0, world, r, usable, 0)] for r in range(world)]
    assert [raw for _, raw in seen[0]] == [0, 2, 4, 6] and [raw for _, raw in seen[1]] == [1, 3, 5, 7]
    assert [local for local, _ in seen[0]] == [0, 1, 2, 3]
    resumed = [raw for _, raw in rank_batches(src, 0, world, 1, usable, 2)]  # 2 local batches consumed
    assert resumed == [5, 7]


def test_loopspec_from_optim_copies_every_optimiser_field_and_takes_overrides(tmp_path):
    o = OptimConfig(lr=3e-4, weight_decay=0.1, epochs=3, max_steps=50, grad_accum=2, warmup_ratio=0.2,
                    schedule="cosine", max_grad_norm=0.5)
    spec = LoopSpec.from_optim(o, tmp_path, eval_every=7, desc="x", lr=1e-3)
    assert (spec.lr, spec.weight_decay, spec.epochs, spec.max_steps, spec.grad_accum, spec.warmup_ratio,
            spec.schedule, spec.max_grad_norm, spec.eval_every, spec.desc) == (
        1e-3, 0.1, 3, 50, 2, 0.2, "cosine", 0.5, 7, "x")
    assert spec.checkpoint_every is None and spec.out_dir == Path(tmp_path)


def test_a_nan_loss_stops_training_with_the_cause_instead_of_a_nan_model(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    acc = make_accelerator("no", tmp_path, cpu=True)

    def loss_fn(m, batch):
        out = m(batch["x"]).sum()
        return (out * float("nan") if int(batch["i"]) == 3 else out), {}

    spec = LoopSpec.from_optim(OptimConfig(lr=1e-2, epochs=1), tmp_path, desc="t")
    with pytest.raises(InputError, match=r"loss became nan at optimizer step 4.*Lower optim.lr"):
        fit(acc, model, Source(6), lambda i: {"x": torch.ones(1, 3), "i": torch.tensor(i)}, loss_fn, None, spec)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN step never reached the weights
