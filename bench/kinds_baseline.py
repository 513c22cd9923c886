"""TF-IDF baselines of the task kinds (not a test): the bar of issue 28's teacher target, per dataset.

    flock /tmp/zx-cpu.lock python bench/kinds_baseline.py --dataset mrpc > mrpc.json

Reads configs/<dataset>.yaml (finetune.data = train, task.dev, task.eval = test) with the row policy of
every stage (zuoxiao.core.rowpolicy.read_task_rows), fits teacher/tfidf_kinds.py's baseline on train,
picks its regularisation (and, multi-label, its per-label thresholds) on dev, and prints JSON with the
primary metric and the kind's secondary ones on dev and test. --data-dir replaces the configs'
../shared/data (for a checkout where that relative path does not reach the data); --train-limit fits on
the first N training rows (the JSON says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zuoxiao.core.config import load_config  # noqa: E402
from zuoxiao.core.metrics import PRIMARY_METRIC  # noqa: E402
from zuoxiao.core.rowpolicy import read_task_rows  # noqa: E402

DATASETS = ("mrpc", "stsb", "goemotions")


def _rows(src, kind: str, data_dir: str | None, limit: int | None = None):
    path = src.path.replace("../shared/data", data_dir) if data_dir else src.path
    rows, skips = read_task_rows(src.model_copy(update={"path": path, "limit": limit or src.limit}), kind)
    return rows, dict(skips.counts)


def main() -> None:
    from zuoxiao.teacher import tfidf_kinds as B

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=DATASETS, required=True)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--train-limit", type=int, default=None)
    args = ap.parse_args()
    cfg = load_config(REPO / "configs" / f"{args.dataset}.yaml")
    kind = cfg.task.kind
    train, skipped_train = _rows(cfg.finetune.data, kind, args.data_dir, args.train_limit)
    dev, skipped_dev = _rows(cfg.task.dev, kind, args.data_dir)
    test, skipped_test = _rows(cfg.task.eval, kind, args.data_dir)
    fit = {"pair": lambda: B.fit_pair_baseline(train, dev, {"test": test}, cfg.task.label_names),
           "multi_label": lambda: B.fit_multilabel_baseline(train, dev, {"test": test}, cfg.task.label_names),
           "regression": lambda: B.fit_regression_baseline(train, dev, {"test": test})}[kind]
    out = fit()
    primary = PRIMARY_METRIC[kind]
    print(json.dumps({"dataset": args.dataset, "kind": kind, "primary_metric": primary,
                      "baseline_metric": out["test"][primary], "rows": {"train": len(train), "dev": len(dev),
                      "test": len(test)}, "skipped": {"train": skipped_train, "dev": skipped_dev, "test": skipped_test},
                      "train_limit": args.train_limit, **out}, indent=2))


if __name__ == "__main__":
    main()
