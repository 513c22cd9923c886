"""Distillation quality benchmark (not a test): fine-tune -> label -> distil, plus a hard-label student.

    flock /tmp/zx-cpu.lock python bench/distill_quality.py --dataset sst2 > sst2.json

For --dataset sst2|agnews|tweeteval_emoji from --data-dir (default ../shared/data, relative to the repo): fine-tune the
MiniLM teacher on --teacher-rows gold rows, label --transfer-rows train rows with the label stage
(pipelines.label.label_from_config; --augment-copies grows the transfer set), distil a student of at
most 1/4 of the teacher's non-embedding parameters (teacher layers --layers, FFN narrowed to --ffn-size),
and train the same student on gold labels only (loss alpha=0): `gold_budget_student_acc` with the gold of
the --teacher-rows rows the teacher was tuned on (the realistic case: gold is scarce, text is not) and
`all_gold_student_acc` with the gold of every transfer row. Training-
time evaluation (best checkpoint) uses a dev set: SST-2's dev.tsv, or for AG News --dev-rows rows held
out of the END of train.tsv (never trained on). Everything is finally measured on test.tsv.

The distilled student can use the issue-10 options: --loss auto, --repr-weight (with the label stage's
--store-repr), --search (train.search on dev, --search-budget seconds, --search-steps per candidate).

Prints JSON: teacher_acc, student_acc, gold_budget_student_acc, all_gold_student_acc,
hard_label_student_acc (= --hard-rows gold if given, else all_gold), retention (= student/teacher),
teacher_params, student_params (and non-embedding counts), the wall time of every stage, the settings.
Work files go to --workdir (default a temp dir outside the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATASETS = {
    "sst2": {"text": "sentence", "labels": ["0", "1"], "max_length": 64},
    "agnews": {"text": "text", "labels": ["World", "Sports", "Business", "Sci/Tech"], "max_length": 128},
    "tweeteval_emoji": {"text": "text", "labels": None, "max_length": 64},  # 20 names, read from train.tsv
}


def dataset_args(p: argparse.ArgumentParser, choices) -> None:
    """--dataset, --data-dir and --workdir, alike in every quality benchmark."""
    p.add_argument("--dataset", choices=choices, required=True)
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--workdir", default=None, help="default: a new temp dir")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_args(p, sorted(DATASETS))
    p.add_argument("--teacher-rows", type=int, default=8000, help="gold rows the teacher is fine-tuned on")
    p.add_argument("--teacher-epochs", type=float, default=2.0)
    p.add_argument("--teacher", default=None, help="reuse a fine-tuned teacher dir (skips fine-tuning)")
    p.add_argument("--transfer-rows", type=int, default=20000, help="train rows labelled by the teacher")
    p.add_argument("--augment-copies", type=int, default=0, help="augmented copies per transfer row (0 = off)")
    p.add_argument("--dev-rows", type=int, default=1000, help="dev rows (agnews: held out of train.tsv)")
    p.add_argument("--test-rows", type=int, default=None, help="limit test.tsv (default all)")
    p.add_argument("--layers", type=int, nargs="+", default=[0, 5])
    p.add_argument("--ffn-size", type=int, default=768)
    p.add_argument("--student-epochs", type=float, default=2.0)
    p.add_argument("--student-lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--loss", choices=["auto", "kl", "mse"], default="mse")
    p.add_argument("--temperature", type=float, default=2.0, help="KL temperature")
    p.add_argument("--repr-weight", type=float, default=0.0, help="train.loss.repr_weight (needs --store-repr)")
    p.add_argument("--store-repr", action="store_true", help="label.store_representation: store teacher [CLS] states")
    p.add_argument("--search", action="store_true", help="train.search: choose loss/alpha/repr/lr on dev")
    p.add_argument("--search-budget", type=float, default=1800)
    p.add_argument("--search-steps", type=int, default=150)
    p.add_argument("--skip-gold-budget", action="store_true", help="do not train the gold-budget student")
    p.add_argument("--compare-losses", nargs="*", default=[], metavar="KIND[:T]",
                   help="also distil with each of these losses on the same shards (e.g. kl:1 kl:4 mse, mse@r1 = with "
                        "repr_weight 1) and report their test accuracy in loss_comparison (the evidence behind "
                        "loss.kind=auto)")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of the distillation term")
    p.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--skip-hard", action="store_true", help="do not train the all-gold (hard-label) student")
    p.add_argument("--hard-rows", type=int, default=None,
                   help="hard-label student: gold of the first N train rows only (e.g. = --teacher-rows, the gold "
                        "set the teacher saw); default = the gold of all transfer rows")
    return p.parse_args(argv)


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    # Plain TSV like the source files (read back without quoting: zuoxiao/datasource.py)
    path.write_text("".join("\t".join(r) + "\n" for r in [header, *rows]), encoding="utf-8")
    return path


def split_files(args, ds: dict, work: Path) -> dict:
    """train / dev / test sources. AG News has no dev split: hold the last --dev-rows train rows out."""
    from zuoxiao.core.config.base import DataSource
    from zuoxiao.core.datasource import read_file

    root = Path(args.data_dir) / args.dataset
    src = {"format": "tsv", "text_column": ds["text"], "label_column": "label"}
    test = DataSource(path=str(root / "test.tsv"), limit=args.test_rows, **src)
    if (root / "dev.tsv").is_file():
        return {"train": str(root / "train.tsv"), "dev": DataSource(path=str(root / "dev.tsv"),
                                                                      limit=args.dev_rows, **src), "test": test, "src": src}
    table = read_file(root / "train.tsv", "tsv")
    header = table.column_names
    rows = [[str(table.column(c)[i]) for c in header] for i in range(table.num_rows)]
    keep, dev = rows[: len(rows) - args.dev_rows], rows[len(rows) - args.dev_rows:]
    train = write_tsv(work / "train.tsv", header, keep)
    devf = write_tsv(work / "dev.tsv", header, dev)
    return {"train": str(train), "dev": DataSource(path=str(devf), **src), "test": test, "src": src}


def make_cfg(args, ds, files, work: Path, teacher_path: str, train_over: dict | None = None):
    from zuoxiao.core.config import parse_config

    src = files["src"]
    raw = {
        "output_dir": str(work / "out"), "seed": 0,
        "task": {"name": args.dataset, "label_names": ds["labels"], "eval": files["dev"].model_dump(),
                 "dev": files["dev"].model_dump() if args.search else None},
        "finetune": {
            "data": {"path": files["train"], **src, "limit": args.teacher_rows},
            "teacher": {"max_length": ds["max_length"]},
            "optim": {"lr": 5e-5, "epochs": args.teacher_epochs, "batch_size": 32},
            "eval_every": 10_000,
        },
        "label": {
            "input": {"path": files["train"], **src, "limit": args.transfer_rows},
            "teacher": {"path": teacher_path, "max_length": ds["max_length"]},
            "batch_size": 64,
            "augment": {"enabled": args.augment_copies > 0, "copies": max(1, args.augment_copies)},
            "store_representation": args.store_repr,
        },
        "train": {
            "student": {"kind": "from_teacher", "layers": args.layers, "ffn_size": args.ffn_size},
            "adapter": {"kind": "full"},
            "loss": {"kind": args.loss, "alpha": args.alpha, "temperature": args.temperature,
                     "repr_weight": args.repr_weight},
            "search": {"budget_s": args.search_budget, "max_steps": args.search_steps} if args.search else None,
            "optim": {"lr": args.student_lr, "epochs": args.student_epochs, "batch_size": args.batch_size,
                      "warmup_ratio": 0.06},
            "max_length": ds["max_length"], "freeze_embeddings": args.freeze_embeddings,
            "eval_every": args.eval_every, "checkpoint_every": 100_000, "shuffle_buffer": 8192,
            **(train_over or {}),
        },
    }
    return parse_config(raw)


def test_acc(model_dir: Path, files, labels, max_length) -> dict:
    from zuoxiao.core.evaluate import evaluate_model
    from zuoxiao.teacher.classifier import load_classifier, load_tokenizer

    model = load_classifier(str(model_dir), labels)
    res = evaluate_model(model, load_tokenizer(str(model_dir)), files["test"], labels, max_length)
    return {"accuracy": res["accuracy"], "macro_f1": res["macro_f1"], "n": res["n"], "pred": res["predictions"]}


def main(argv=None) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    ds = dict(DATASETS[args.dataset])
    if ds["labels"] is None:  # the task's label names, in a fixed (sorted) order
        from zuoxiao.core.datasource import read_file

        train_file = Path(args.data_dir) / args.dataset / "train.tsv"
        ds["labels"] = sorted({str(x) for x in read_file(train_file, "tsv").column("label").to_pylist()})
    work = Path(args.workdir or tempfile.mkdtemp(prefix=f"zx-bench-{args.dataset}-"))
    work.mkdir(parents=True, exist_ok=True)
    from zuoxiao.core.config.views import TrainView
    from zuoxiao.core.metrics import agreement
    from zuoxiao.pipelines.label import label_from_config
    from zuoxiao.student.train import train
    from zuoxiao.teacher.finetune.stage import finetune_teacher

    files = split_files(args, ds, work)
    times = {}
    teacher_dir = Path(args.teacher) if args.teacher else work / "teacher"
    cfg = make_cfg(args, ds, files, work, str(teacher_dir))
    t = time.time()
    if not args.teacher:
        ft = finetune_teacher(cfg, teacher_dir)
        times["finetune_s"] = round(time.time() - t, 1)
        print(f"teacher dev acc {ft.get('accuracy')}", file=sys.stderr)
    t = time.time()
    manifest = label_from_config(cfg, work / "label", beam_args=[], teacher_path=str(teacher_dir))
    times["label_s"] = round(time.time() - t, 1)
    t = time.time()
    kd = train(TrainView.of(cfg), work / "label", work / "student")
    times["distil_s"] = round(time.time() - t, 1)

    def gold_student(name: str, rows: int | None) -> dict:
        """The same student on gold labels only (alpha=0: cross-entropy), of the first ``rows`` train rows
        (None = every transfer row, the shards already labelled)."""
        hcfg = make_cfg(args, ds, files, work, str(teacher_dir),
                        {"loss": {"kind": "kl", "alpha": 0.0}, "search": None})
        shards = work / "label"
        if rows:
            hcfg.label.input.limit = rows
            shards = work / f"label-{name}"
            label_from_config(hcfg, shards, beam_args=[], teacher_path=str(teacher_dir))
        t = time.time()
        res = train(TrainView.of(hcfg), shards, work / f"student-{name}")
        times[f"{name}_s"] = round(time.time() - t, 1)
        return res

    comparison = {}
    for spec in args.compare_losses:  # same shards, same student, only the distillation loss differs
        loss_spec, _, weight = spec.partition("@r")  # e.g. "kl:4", "mse@r1" (repr_weight 1, needs --store-repr)
        kind, _, temp = loss_spec.partition(":")
        ccfg = make_cfg(args, ds, files, work, str(teacher_dir),
                        {"loss": {"kind": kind, "alpha": args.alpha, "temperature": float(temp or 2.0),
                                  "repr_weight": float(weight or 0.0)}, "search": None})
        t = time.time()
        name = "student-" + spec.replace(":", "T").replace("@", "-")
        res = train(TrainView.of(ccfg), work / "label", work / name)
        comparison[spec] = {"dev_acc": res["student"]["accuracy"], "seconds": round(time.time() - t, 1),
                            "test": test_acc(work / name, files, ds["labels"], ds["max_length"])}

    gold = {}
    if not args.skip_gold_budget:
        gold["gold_budget"] = gold_student("gold-budget", args.teacher_rows)
    if not args.skip_hard:
        gold["all_gold"] = gold_student("all-gold", None)
    if args.hard_rows and args.hard_rows != args.teacher_rows:
        gold["hard"] = gold_student("hard", args.hard_rows)
    t = time.time()
    labels, ml = ds["labels"], ds["max_length"]
    te = test_acc(teacher_dir, files, labels, ml)
    st = test_acc(work / "student", files, labels, ml)
    dirs = {"gold_budget": "student-gold-budget", "all_gold": "student-all-gold", "hard": "student-hard"}
    gold_test = {k: test_acc(work / dirs[k], files, labels, ml) for k in gold}
    hard_key = "hard" if "hard" in gold else ("gold_budget" if args.hard_rows == args.teacher_rows else "all_gold")
    hd, hard = gold_test.get(hard_key), gold.get(hard_key)
    times["test_eval_s"] = round(time.time() - t, 1)
    out = {
        "dataset": args.dataset,
        "teacher_acc": te["accuracy"], "student_acc": st["accuracy"],
        "hard_label_student_acc": hd["accuracy"] if hd else None,
        "gold_budget_student_acc": gold_test["gold_budget"]["accuracy"] if "gold_budget" in gold else None,
        "all_gold_student_acc": gold_test["all_gold"]["accuracy"] if "all_gold" in gold else None,
        "gold_budget_rows": gold["gold_budget"]["train"]["rows"] if "gold_budget" in gold else None,
        "student_loss": kd["loss"], "student_lr": kd["lr"], "search": kd.get("search"),
        "loss_comparison": {k: {"test_acc": v["test"]["accuracy"], "test_macro_f1": v["test"]["macro_f1"],
                                "dev_acc": v["dev_acc"], "seconds": v["seconds"]} for k, v in comparison.items()},
        "retention": st["accuracy"] / te["accuracy"],
        "hard_label_retention": hd["accuracy"] / te["accuracy"] if hd else None,
        "teacher_macro_f1": te["macro_f1"], "student_macro_f1": st["macro_f1"],
        "student_teacher_agreement": agreement(st["pred"], te["pred"]),
        "teacher_params": kd["teacher"]["params"], "student_params": kd["student"]["params"],
        "teacher_non_embedding_params": kd["teacher"]["non_embedding_params"],
        "student_non_embedding_params": kd["student"]["non_embedding_params"],
        "non_embedding_ratio": kd["student"]["non_embedding_params"] / kd["teacher"]["non_embedding_params"],
        "test_rows": te["n"], "dev_acc": {"teacher": kd["teacher"]["accuracy"], "student": kd["student"]["accuracy"],
                                          "hard_label_student": hard["student"]["accuracy"] if hard else None},
        "transfer_rows": manifest["counts"]["rows_in_shards"],
        "hard_label_rows": hard["train"]["rows"] if hard else None, "augmented_rows": manifest["counts"]["augmented"],
        "student_steps": kd["train"]["steps"], "student_best_step": kd["train"]["best_step"],
        "times": times,
        "settings": {k: v for k, v in vars(args).items()},
        "workdir": str(work),
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
