"""The fine-tune's gold rows: the train/dev/eval splits, their batches and the number of passes over them.

`read_splits` reads finetune.data, task.dev (or splits a stratified, seeded dev set off the gold rows when
there is none: dev decides early stopping, the search and the blend, never task.eval) and task.eval;
`GoldBatches` serves the training rows as length-bucketed batches; `plan_epochs` turns `optim.epochs:
auto` into a number from the rows and classes. Split out of teacher/finetune/stage.py (which re-exports
`read_splits`, `plan_epochs` and `stratified_split` for its callers).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from zuoxiao.core.config.views import FinetuneView
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.goldsets import PREPARE_HINT, read_labelled

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


def stratified_split(texts: list[str], labels: list[int], fraction: float, seed: int, max_rows: int | None = None):
    """Hold out ~``fraction`` of each class (seeded) as a dev set -> ((train_x, train_y), (dev_x, dev_y)).

    Every class with at least 2 rows puts at least one row in dev and keeps at least one for training;
    ``max_rows`` caps the dev set (scaling every class down alike).
    """
    rng = np.random.default_rng([seed, 4])
    y = np.asarray(labels)
    share = fraction if not max_rows else min(fraction, max_rows / max(len(y), 1))
    dev_idx = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        if len(rows) < 2:
            continue
        rng.shuffle(rows)
        dev_idx += rows[: min(len(rows) - 1, max(1, int(round(share * len(rows)))))].tolist()
    in_dev = np.zeros(len(y), dtype=bool)
    in_dev[dev_idx] = True
    tr, dv = np.flatnonzero(~in_dev), np.flatnonzero(in_dev)
    return ([texts[i] for i in tr], [labels[i] for i in tr]), ([texts[i] for i in dv], [labels[i] for i in dv])


@dataclass
class GoldSplits:
    label_names: list[str]
    train: tuple[list[str], list[int]]
    dev: tuple[list[str], list[int]]
    dev_source: str
    eval: tuple[list[str], list[int]] | None
    skipped: dict


def read_splits(cfg: FinetuneView) -> GoldSplits:
    """Gold rows to train on, the dev set that selects (task.dev or a stratified split) and task.eval."""
    ft = cfg.finetune
    if cfg.task.split is not None:  # like sample (goldsets.require_prepared): drawn by prepare_data, else a silent 10% split
        raise ConfigError(f"task.split is set but its parts were not written. {PREPARE_HINT}")
    data = read_labelled(ft.data, cfg.task.label_names, "finetune.data")
    names = data.label_names
    if cfg.task.dev is not None:
        dev = read_labelled(cfg.task.dev, names, "task.dev")
        train, dev_xy, source = (data.texts, data.labels), (dev.texts, dev.labels), "task.dev"
    else:
        train, dev_xy = stratified_split(data.texts, data.labels, ft.dev_fraction, cfg.seed, ft.dev_max_rows)
        source = (f"split from finetune.data (task.dev is null): {len(dev_xy[0])} of {len(data.texts)} rows, "
                  f"stratified, seed {cfg.seed}")
        log.warning("finetune: no task.dev; held out %s", source.split(": ", 1)[1])
        if not dev_xy[0]:
            raise ConfigError("finetune: no class has 2 gold rows, so no dev set can be split off; give task.dev "
                              "or more gold rows")
    ev = read_labelled(cfg.task.eval, names, "task.eval") if cfg.task.eval is not None else None
    # rows the shared row policy left out (zuoxiao/core/rowpolicy.py), per source, for metrics.json
    skipped = {k: d.skipped for k, d in (("finetune.data", data), ("task.dev", dev if cfg.task.dev else None),
                                         ("task.eval", ev)) if d is not None and d.skipped}
    return GoldSplits(names, train, dev_xy, source, (ev.texts, ev.labels) if ev else None, skipped)


def plan_epochs(ft, rows: int, num_classes: int, steps_per_epoch: int, epochs=None) -> tuple[float, str]:
    """Epochs for ``optim.epochs`` (or ``epochs``): a number is kept; 'auto' scales with rows and classes.

    auto = min(max_epochs, max(min_epochs, min_steps / steps_per_epoch, rows_per_class * classes / rows)):
    a small set still gets min_steps updates, and each class is seen ~rows_per_class times in total.
    """
    epochs = ft.optim.epochs if epochs is None else epochs
    if epochs != "auto":
        return float(epochs), "optim.epochs"
    by_steps = ft.min_steps / max(steps_per_epoch, 1)
    by_class = ft.rows_per_class * num_classes / max(rows, 1)
    chosen = round(min(ft.max_epochs, max(ft.min_epochs, by_steps, by_class)), 2)
    why = (f"auto: min(max_epochs {ft.max_epochs:g}, max(min_epochs {ft.min_epochs:g}, min_steps {ft.min_steps} / "
           f"{steps_per_epoch} steps per epoch = {by_steps:.2f}, rows_per_class {ft.rows_per_class} x "
           f"{num_classes} classes / {rows} rows = {by_class:.2f}))")
    return chosen, why
