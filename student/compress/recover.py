"""Recovery distillation after destructive steps (pruning, low rank, magnitude).

Uses the train stage's ``zuoxiao.student.train.distill_model``: the same shards and the same loss as
training, for ``steps`` optimizer steps at ``lr`` with the step's batch size and max_length.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from zuoxiao.core.config.views import TrainView
from zuoxiao.student.train import distill_model

#: Recorded in step.json: which loop recovered the model.
RECOVERED_BY = "zuoxiao.student.train.distill_model"


def recover(model, tokenizer, label_dir: Path, cfg: TrainView, *, steps: int, lr: float, batch_size: int, max_length: int):
    """(the recovered model in eval mode, RECOVERED_BY)."""
    optim = cfg.train.optim.model_copy(update={"batch_size": batch_size})
    c = replace(cfg, train=cfg.train.model_copy(update={"optim": optim, "max_length": max_length}))
    return distill_model(model, tokenizer, Path(label_dir), c, max_steps=steps, lr=lr), RECOVERED_BY
