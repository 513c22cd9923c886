"""Teacher quality benchmark (not a test): baseline, default fine-tune, search, ensembles, on real data.

    flock /tmp/zx-cpu.lock python bench/teacher_quality.py --dataset sst2 --gold-rows 2000 --eval-rows 1000

For --dataset sst2|agnews|tweeteval_emoji (from --data-dir, default ../shared/data) or demo (generated):
gold rows = the first --gold-rows rows of train.tsv; dev = dev.tsv (first --dev-rows rows), or for AG News
the stratified split that finetune-teacher makes itself when task.dev is null; test = the first
--eval-rows rows of test.tsv (the files are shuffled). Every selection uses dev; accuracies are on test.

One `finetune_teacher` run with `finetune.search` over --search-lr (which includes the shipped default
lr, so the default teacher is one of the trials: same seed, same data order, same weights as a plain
run) gives: teacher_acc (the trial with the shipped defaults), search_teacher_acc (the trial the search
keeps), and ensemble_acc (the two best trials by dev, probabilities averaged, teacher/ensemble.py).
baseline_acc is the TF-IDF + logistic-regression baseline fitted on the same gold rows.
ensemble_with_baseline_acc averages the default teacher's and the baseline's probabilities.
best_teacher is the candidate with the best dev accuracy (ties: the cheaper one).

Prints one JSON object to stdout; logs go to stderr. Work files go to --workdir (default a temp dir).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATASETS = {
    "sst2": {"text": "sentence", "labels": ["0", "1"], "max_length": 64, "dev": True},
    "agnews": {"text": "text", "labels": ["World", "Sports", "Business", "Sci/Tech"], "max_length": 128,
               "dev": False},
    "tweeteval_emoji": {"text": "text", "labels": None, "max_length": 64, "dev": True},
    "demo": {"text": "text", "labels": None, "max_length": 64, "dev": True},
}
LLM_KEYS = ("llm_zero_shot_acc", "llm_few_shot_acc", "llm_calibrated_acc", "llm_lora_acc")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--workdir", default=None, help="default: a new temp dir")
    p.add_argument("--gold-rows", type=int, default=8000, help="gold rows (the first rows of train.tsv)")
    p.add_argument("--eval-rows", type=int, default=None, help="test rows (default all of test.tsv)")
    p.add_argument("--dev-rows", type=int, default=1000, help="dev rows (the first rows of dev.tsv)")
    p.add_argument("--search-lr", type=float, nargs="+", default=[1e-4, 2e-4, 5e-5],
                   help="backbone learning rates of the search (the shipped default among them)")
    p.add_argument("--search-budget-s", type=float, default=7200)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set finetune.min_steps=20 (smoke runs; not the shipped defaults)")
    return p.parse_args(argv)


def build_config(args, work: Path):
    from zuoxiao.core.config import apply_overrides, parse_config
    from zuoxiao.core.config.train import FinetuneOptimConfig

    ds = DATASETS[args.dataset]
    if args.dataset == "demo":
        from zuoxiao.run.demo import DEMO_SIZES
        from zuoxiao.run.demo_data import write_demo_data

        write_demo_data(work / "data", seed=0, **DEMO_SIZES)
        src = lambda split, limit=None: {"path": str(work / "data" / f"{split}.jsonl"), "limit": limit}  # noqa: E731
        gold, dev, test = src("gold", args.gold_rows), src("dev", args.dev_rows), src("test", args.eval_rows)
    else:
        root = Path(args.data_dir) / args.dataset

        def src(split, limit=None):
            return {"path": str(root / f"{split}.tsv"), "format": "tsv", "text_column": ds["text"],
                    "label_column": "label", "limit": limit}
        gold, test = src("train", args.gold_rows), src("test", args.eval_rows)
        dev = src("dev", args.dev_rows) if ds["dev"] else None
    default_lr = FinetuneOptimConfig().lr
    lrs = sorted(set(args.search_lr) | {default_lr}, key=lambda x: (x != default_lr, x))  # default first
    return parse_config(apply_overrides({
        "seed": 0, "output_dir": str(work),
        "task": {"name": args.dataset, "label_names": ds["labels"], "eval": test, "dev": dev},
        "finetune": {"data": gold, "teacher": {"max_length": ds["max_length"], "num_threads": args.threads},
                     "search": {"lr": lrs, "epochs": ["auto"], "budget_s": args.search_budget_s},
                     "allow_below_baseline": True},
    }, args.overrides)), default_lr


def throughput(fn, texts) -> float:
    t0 = time.perf_counter()
    fn(texts)
    return round(len(texts) / max(time.perf_counter() - t0, 1e-9), 1)


def main(argv=None) -> int:
    import numpy as np

    from zuoxiao.core.metrics import classification_metrics
    from zuoxiao.teacher.baseline import fit_baseline
    from zuoxiao.teacher.ensemble import combine_logits, load_ensemble
    from zuoxiao.teacher.finetune import finetune_teacher, read_splits
    from zuoxiao.teacher.model import load_classifier, load_tokenizer

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix=f"zx-teacher-{args.dataset}-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg, default_lr = build_config(args, work)
    t0 = time.perf_counter()
    metrics = finetune_teacher(cfg, work / "teacher", keep_trials=True)
    t_finetune = time.perf_counter() - t0
    splits = read_splits(cfg)  # the same rows finetune_teacher used (the dev split is seeded)
    n_cls, max_len = len(splits.label_names), cfg.finetune.teacher.max_length
    (dev_x, dev_y), (test_x, test_y) = splits.dev, splits.eval

    def acc(logits_or_probs, gold):
        return classification_metrics(np.asarray(logits_or_probs).argmax(-1), np.asarray(gold), n_cls)["accuracy"]

    base, base_m = fit_baseline(splits.train, splits.dev, {"eval": splits.eval}, n_cls, cfg.seed)
    trials = [t for t in metrics["search"]["trials"] if t["status"] == "done"]
    default = next(t for t in trials if t["lr"] == default_lr)
    best = next(t for t in trials if t["trial"] == metrics["search"]["best_trial"])
    top2 = sorted(trials, key=lambda t: -t["dev"]["accuracy"])[:2]
    tdir = lambda t: str(work / "teacher" / "trials" / str(t["trial"]))  # noqa: E731

    from zuoxiao.core.evaluate import predict_logits

    teacher = load_classifier(tdir(default))
    tok = load_tokenizer(tdir(default))
    rows_per_s = {
        "baseline": throughput(base.predict_proba, test_x),
        "teacher": throughput(lambda x: predict_logits(teacher, tok, x, max_len), test_x),
    }
    rows_per_s["search_teacher"] = rows_per_s["teacher"]  # same architecture, other weights
    result_extra = {}
    ensemble_acc = ens_dev = None
    if len(top2) == 2:
        ens = load_ensemble([{"path": tdir(t)} for t in top2], splits.label_names, "prob", max_len)
        ens_dev = acc(ens.predict_texts(dev_x), dev_y)
        t1 = time.perf_counter()
        ensemble_acc = acc(ens.predict_texts(test_x), test_y)
        rows_per_s["ensemble"] = round(len(test_x) / (time.perf_counter() - t1), 1)
    # default teacher + baseline, probabilities averaged (the baseline is nearly free to run)
    t_dev, t_test = predict_logits(teacher, tok, dev_x, max_len), predict_logits(teacher, tok, test_x, max_len)
    mix = lambda z, p: combine_logits([z, np.log(np.clip(p, 1e-9, 1))], [1, 1], "prob")  # noqa: E731
    mix_dev = acc(mix(t_dev, base.predict_proba(dev_x)), dev_y)
    result_extra["ensemble_with_baseline_acc"] = acc(mix(t_test, base.predict_proba(test_x)), test_y)
    candidates = {  # name: (dev accuracy, test accuracy)
        "baseline": (base_m["dev"]["accuracy"], base_m["eval"]["accuracy"]),
        "teacher": (default["dev"]["accuracy"], default["eval"]["accuracy"]),
        "search_teacher": (best["dev"]["accuracy"], best["eval"]["accuracy"]),
        "ensemble_with_baseline": (mix_dev, result_extra["ensemble_with_baseline_acc"]),
    }
    if ensemble_acc is not None:
        candidates["ensemble"] = (ens_dev, ensemble_acc)
    best_name = max(candidates, key=lambda k: candidates[k][0])  # dict order = cheapest first on ties
    out = {
        "dataset": args.dataset, "gold_rows": len(splits.train[0]) + (0 if DATASETS[args.dataset]["dev"] else
                                                                       len(dev_x)),
        "train_rows": len(splits.train[0]), "dev_rows": len(dev_x), "dev_source": splits.dev_source,
        "test_rows": len(test_x), "classes": n_cls,
        "baseline_acc": base_m["eval"]["accuracy"], "teacher_acc": default["eval"]["accuracy"],
        "search_teacher_acc": best["eval"]["accuracy"],
        **{k: None for k in LLM_KEYS}, "llm_reason": "LLM teacher not integrated yet",
        "few_shot_cost_ratio": None,
        "ensemble_acc": ensemble_acc,
        "ensemble": (f"the 2 best search trials by dev (lr {[t['lr'] for t in top2]}), probabilities averaged"
                     if ensemble_acc is not None else "null: the search ran fewer than 2 trials (--search-lr)"),
        **result_extra,
        "best_teacher": best_name, "best_teacher_acc": candidates[best_name][1],
        "dev_acc": {k: v[0] for k, v in candidates.items()},
        "rows_per_s": rows_per_s,
        "teacher_gain_over_baseline_points": round(100 * (default["eval"]["accuracy"] - base_m["eval"]["accuracy"]), 2),
        "trials": [{k: t.get(k) for k in ("lr", "epochs_planned", "steps", "best_step", "stopped_early", "seconds")}
                   | {"dev_acc": t["dev"]["accuracy"], "test_acc": t["eval"]["accuracy"]} for t in trials],
        "seconds": {"finetune_and_search": round(t_finetune, 1), "total": round(time.perf_counter() - t0, 1)},
        "workdir": str(work),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
