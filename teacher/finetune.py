"""`zuoxiao finetune-teacher`: fine-tune a sequence-classification backbone on gold labels.

The result is a save_pretrained directory (safetensors, tokenizer + vocab.txt, id2label = label names,
config.resolved.yaml, metrics.json) that the label stage takes as its teacher. It runs the same
Accelerate loop as student distillation (student/loop.py), with cross-entropy on gold labels.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zuoxiao.core.config import Config, save_resolved
from zuoxiao.core.datasource import read_labelled
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.evaluate import evaluate_texts
from zuoxiao.core.loop import LoopSpec, fit, make_accelerator
from zuoxiao.core.modelio import count_params, freeze_word_embeddings, save_model_dir
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.teacher.model import load_classifier, load_tokenizer

log = logging.getLogger(__name__)


class GoldBatches:
    """In-memory gold rows as length-bucketed batches; the order depends only on (seed, epoch)."""

    def __init__(self, texts: list[str], labels: list[int], batch_size: int, seed: int):
        self.texts, self.labels = texts, np.asarray(labels, dtype=np.int64)
        self.batch_size, self.seed = batch_size, seed

    def __len__(self) -> int:
        return math.ceil(len(self.texts) / self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[list[str], np.ndarray]]:
        rng = np.random.default_rng([self.seed, epoch, 3])
        perm = rng.permutation(len(self.texts))
        # Sort by length within windows of 64 batches: little padding, yet well mixed.
        window = 64 * self.batch_size
        chunks = []
        for s in range(0, len(perm), window):
            part = perm[s: s + window]
            part = part[np.argsort([len(self.texts[i]) for i in part], kind="stable")]
            chunks += [part[i: i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        for j in rng.permutation(len(chunks)):
            yield [self.texts[i] for i in chunks[j]], self.labels[chunks[j]]


def split_eval(texts, labels, fraction: float, seed: int):
    """Hold out ``fraction`` of the rows (seeded) when there is no task.eval."""
    rng = np.random.default_rng([seed, 4])
    perm = rng.permutation(len(texts))
    n_eval = int(round(fraction * len(texts)))
    ev, tr = perm[:n_eval], perm[n_eval:]
    return ([texts[i] for i in tr], [labels[i] for i in tr]), ([texts[i] for i in ev], [labels[i] for i in ev])


def finetune_teacher(cfg: Config, out_dir: Path) -> dict:
    """Fine-tune cfg.finetune.teacher on cfg.finetune.data; returns (and writes) metrics.json."""
    from accelerate.utils import set_seed

    if cfg.finetune is None:
        raise ConfigError("finetune: section is missing; add finetune.data (gold-labelled rows) to the config")
    t0 = time.time()
    ft, out_dir = cfg.finetune, Path(out_dir)
    data = read_labelled(ft.data, cfg.task.label_names)
    label_names = data.label_names
    selection = cfg.task.dev or cfg.task.eval  # never select on the test set when a dev set exists
    if selection is not None:
        ev = read_labelled(selection, label_names)
        eval_from = "task.dev" if cfg.task.dev is not None else "task.eval"
        (tr_x, tr_y), (ev_x, ev_y) = (data.texts, data.labels), (ev.texts, ev.labels)
    elif ft.eval_fraction > 0:
        (tr_x, tr_y), (ev_x, ev_y) = split_eval(data.texts, data.labels, ft.eval_fraction, cfg.seed)
        eval_from = f"{ft.eval_fraction:.0%} of finetune.data"
    else:
        (tr_x, tr_y), (ev_x, ev_y), eval_from = (data.texts, data.labels), ([], []), None
    if ft.teacher.num_threads:
        torch.set_num_threads(ft.teacher.num_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(ft.optim.mixed_precision, out_dir, cpu=ft.teacher.device == "cpu")
    set_seed(cfg.seed)
    model = load_classifier(ft.teacher.path, label_names, ft.teacher.trust_remote_code)
    tokenizer = load_tokenizer(ft.teacher.path, ft.teacher.trust_remote_code)
    if ft.freeze_embeddings:
        freeze_word_embeddings(model)
    model.train()
    counts = count_params(model)
    max_len = ft.teacher.max_length

    def collate(raw):
        texts, labels = raw
        enc = tokenizer(texts, truncation=True, max_length=max_len, padding=True, return_tensors="pt")
        return {**enc, "labels": torch.from_numpy(labels)}

    def loss_fn(m, batch):
        labels = batch.pop("labels")  # [B]
        loss = F.cross_entropy(m(**batch).logits.float(), labels)  # logits [B, C]
        return loss, {"ce": float(loss.detach())}

    def evaluate(m):
        res = evaluate_texts(m, tokenizer, ev_x, ev_y, len(label_names), max_len)
        res.pop("predictions")
        return res

    o = ft.optim
    spec = LoopSpec(out_dir=out_dir, lr=o.lr, weight_decay=o.weight_decay, epochs=o.epochs, max_steps=o.max_steps,
                    grad_accum=o.grad_accum, warmup_ratio=o.warmup_ratio, schedule=o.schedule,
                    max_grad_norm=o.max_grad_norm, eval_every=ft.eval_every, checkpoint_every=None,
                    desc="finetune")
    source = GoldBatches(tr_x, tr_y, o.batch_size, cfg.seed)
    info = fit(accelerator, model, source, collate, loss_fn, evaluate if ev_x else None, spec)
    model = accelerator.unwrap_model(model)
    final = evaluate(model) if ev_x else {}
    metrics = {
        **final, "eval_source": eval_from, "label_names": label_names, "train_rows": len(tr_x),
        "skipped_rows": data.skipped, "params": counts["params"],
        "non_embedding_params": counts["non_embedding_params"], "base": ft.teacher.path,
        "train": info, "seconds": round(time.time() - t0, 1),
    }
    if accelerator.is_main_process:
        save_model_dir(model, tokenizer, out_dir, label_names)
        save_resolved(cfg, out_dir)
        write_json_atomic(out_dir / "metrics.json", metrics)
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # the best weights are the saved model
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics
