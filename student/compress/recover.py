"""Recovery distillation after destructive steps (pruning, low rank, magnitude).

Uses the train stage's ``student.train.distill_model`` (same shards, same loss as training). When that
is unavailable (a stripped install), a minimal loop here does soft cross-entropy against the teacher's
probabilities with AdamW on randomly sampled shard rows.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from zuoxiao.core.config.views import TrainView

log = logging.getLogger(__name__)


def recover(model, tokenizer, label_dir: Path, cfg: TrainView, *, steps: int, lr: float, batch_size: int, max_length: int):
    try:
        from zuoxiao.student.train import distill_model
    except ImportError:
        distill_model = None
    if distill_model is not None:
        optim = cfg.train.optim.model_copy(update={"batch_size": batch_size})
        c = replace(cfg, train=cfg.train.model_copy(update={"optim": optim, "max_length": max_length}))
        return distill_model(model, tokenizer, Path(label_dir), c, max_steps=steps, lr=lr), "zuoxiao.student.train.distill_model"
    return _minimal(model, tokenizer, label_dir, steps, lr, batch_size, max_length, cfg.seed), "zuoxiao.student.compress.recover"


def _minimal(model, tokenizer, label_dir, steps, lr, batch_size, max_length, seed):
    from zuoxiao.student.transfer import read_transfer

    ts = read_transfer(label_dir)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    model.train()
    for _ in tqdm(range(steps), desc="recover", leave=False):
        idx = rng.choice(len(ts.texts), min(batch_size, len(ts.texts)), replace=False)
        enc = tokenizer([ts.texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        soft = torch.from_numpy(ts.probs[idx])
        loss = -(soft * model(**enc).logits.float().log_softmax(-1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return model.eval()
