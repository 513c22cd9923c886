"""Transfer-set size benchmark (not a test): student test accuracy against the number of rows the teacher labels.

    flock /tmp/zx-cpu.lock python bench/transfer_size.py --dataset sst2 --sizes 1000,2000,4000,8000 \\
        --augment --extra-unlabelled 4000 --teacher /path/to/teacher > bench/out/transfer_size_sst2.json

One fixed teacher (--teacher DIR, or fine-tuned once on the gold rows of the dataset's config, and kept in
--workdir for the next run); the transfer pool is the task text the teacher did NOT see (train rows after
the teacher's gold rows; demo: the generated unlabelled split), in file order. For every size N the first N
pool rows are labelled (label stage, with a teacher cache so no row is run twice) and the dataset's shipped
student recipe (configs/<dataset>.yaml `train:`) is trained on them; variants, each one line in the plot:

    plain      label.input = N pool rows
    augment    the same with label.augment.enabled (the config's copies, default 2)      (--augment)
    extra      N pool rows + --extra-unlabelled M more pool rows given as a second source,
               label column dropped (label.extra_inputs, label_column: null)              (--extra-unlabelled M)
    join       the same with --joins J joined rows per row (label.augment: copies 0, joins J)  (--joins J)

Test accuracy (task.eval = test split; the checkpoint is chosen on the dev split) of every student and of the
teacher goes to one JSON object on stdout; the plot (accuracy vs label.input rows, one line per variant, the
teacher as a horizontal line) to --out (default bench/out/transfer_size_<dataset>.png). Building blocks
(datasets, splits) come from bench/distill_quality.py. For 2 CPUs: --student-epochs, --test-rows, --dev-rows.
--dry-run prints the plan (configs of every run) without computing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from distill_quality import DATASETS, dataset_args, split_files  # noqa: E402 - bench/ is not a package

VARIANTS = ("plain", "augment", "extra", "join")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_args(p, [*sorted(DATASETS), "demo"])
    p.add_argument("--sizes", default="1000,2000,4000,8000", help="comma-separated label.input rows")
    p.add_argument("--augment", action="store_true", help="also the augment variant (label.augment on)")
    p.add_argument("--extra-unlabelled", type=int, default=0, metavar="M",
                   help="also the extra variant: M more pool rows as an unlabelled second source")
    p.add_argument("--joins", type=int, default=0, metavar="J",
                   help="also the join variant: J joined rows per row (label.augment.joins)")
    p.add_argument("--teacher", default=None, help="a fine-tuned teacher dir (default: fine-tune once into --workdir)")
    p.add_argument("--teacher-rows", type=int, default=None,
                   help="gold rows of the teacher = rows skipped before the pool (default: the config's "
                        "finetune.data.limit, else 2000)")
    p.add_argument("--student-epochs", type=float, default=None, help="override train.optim.epochs")
    p.add_argument("--eval-every", type=int, default=None, help="override train.eval_every")
    p.add_argument("--dev-rows", type=int, default=1000)
    p.add_argument("--test-rows", type=int, default=None, help="limit the test split (default all)")
    p.add_argument("--out", default=str(REPO / "bench" / "out"), help="folder for the PNG")
    p.add_argument("--dry-run", action="store_true", help="print the plan, compute nothing")
    p.add_argument("--merge", default=None, metavar="JSON",
                   help="an earlier run's output (same dataset, teacher and pool): its points join this plot and JSON")
    args = p.parse_args(argv)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        p.error(f"--sizes {args.sizes!r}: give comma-separated row counts such as 1000,2000,4000")
    if not args.sizes or args.sizes[0] < 1:
        p.error("--sizes needs at least one positive row count")
    if args.extra_unlabelled < 0 or args.joins < 0:
        p.error("--extra-unlabelled and --joins must be >= 0")
    args.variants = (["plain"] + (["augment"] if args.augment else []) + (["extra"] if args.extra_unlabelled else [])
                     + (["join"] if args.joins else []))
    return args


def recipe(dataset: str) -> tuple[dict, Path]:
    """The shipped config of the dataset (its train/label sections are the recipe measured)."""
    import yaml

    path = REPO / "configs" / f"{dataset}.yaml"
    if not path.is_file():  # e.g. tweeteval_emoji before it ships a config: SST-2's recipe, said so
        print(f"no {path.name}: using configs/sst2.yaml's recipe", file=sys.stderr)
        path = REPO / "configs" / "sst2.yaml"
    return yaml.safe_load(path.read_text()), path


def teacher_gold_rows(teacher: str | None) -> int | None:
    """A given teacher's gold rows (finetune.data.limit of its config.resolved.yaml): the pool starts after them."""
    import yaml

    path = Path(teacher) / "config.resolved.yaml" if teacher else None
    if path is None or not path.is_file():
        return None
    return ((yaml.safe_load(path.read_text()).get("finetune") or {}).get("data") or {}).get("limit")


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def prepare_data(args, base: dict, work: Path) -> dict:
    """Files of one benchmark: teacher gold, test, dev, the transfer pool and the unlabelled extra rows.

    pool.jsonl holds the first max(sizes) pool rows (text, label); extra.jsonl the next M, text only.
    """
    from zuoxiao.core.config.base import DataSource
    from zuoxiao.core.datasource import iter_rows

    need = args.sizes[-1] + args.extra_unlabelled
    if args.dataset == "demo":
        from zuoxiao.run.demo import DEMO_SIZES
        from zuoxiao.run.demo_data import write_demo_data

        data = work / "data"
        if not args.dry_run:
            write_demo_data(data, seed=0, **{**DEMO_SIZES, "n_unlabeled": need})
        src = {"text_column": "text", "label_column": "label"}
        files = {"test": DataSource(path=str(data / "test.jsonl"), limit=args.test_rows, **src),
                 "dev": DataSource(path=str(data / "dev.jsonl"), limit=args.dev_rows, **src),
                 "gold": DataSource(path=str(data / "gold.jsonl"), **src), "pool_file": data / "unlabeled.jsonl",
                 "skip": 0, "text": "text"}
        labels = None  # the fine-tuned teacher names them
    else:
        ds = dict(DATASETS[args.dataset])
        files = split_files(args, ds, work)  # reads args.data_dir, dataset, test_rows, dev_rows
        skip = args.teacher_rows or teacher_gold_rows(args.teacher) or \
            (base.get("finetune") or {}).get("data", {}).get("limit") or 2000
        files.update(gold=DataSource(path=files["train"], limit=skip, **files["src"]),
                     pool_file=Path(files["train"]), skip=skip, text=ds["text"])
        labels = ds["labels"]
    files["labels"] = labels
    if args.dry_run:
        return files
    rows = []
    for r in iter_rows(files["pool_file"], "tsv" if files["pool_file"].suffix == ".tsv" else "jsonl"):
        if r["error"]:
            continue
        if r["pos"] >= files["skip"]:
            rows.append({"text": r["row"].get(files["text"]), "label": str(r["row"].get("label"))})
        if len(rows) >= need:
            break
    if len(rows) < need:
        raise SystemExit(f"the pool has {len(rows)} rows after the teacher's {files['skip']}; need "
                         f"{need} (max size + --extra-unlabelled): lower --sizes or --extra-unlabelled")
    if labels is None:
        files["labels"] = sorted({r["label"] for r in rows})
    top = args.sizes[-1]
    files["pool"] = write_jsonl(work / "pool.jsonl", rows[:top])
    files["extra"] = write_jsonl(work / "extra.jsonl", [{"body": r["text"]} for r in rows[top:]])
    return files


def run_config(args, base: dict, files: dict, work: Path, teacher: str, size: int, variant: str):
    """The shipped config with this run's data: label.input = first `size` pool rows, + the variant."""
    import copy

    from zuoxiao.core.config import parse_config

    raw = copy.deepcopy(base)
    raw["output_dir"] = str(work / "out")
    raw["task"].update(eval=files["test"].model_dump(), dev=files["dev"].model_dump())
    if files.get("labels") and args.dataset != "demo":
        raw["task"]["label_names"] = files["labels"]
    if raw.get("finetune"):
        raw["finetune"]["data"] = files["gold"].model_dump()
    lab = raw.setdefault("label", {})
    lab["input"] = {"path": str(work / "pool.jsonl"), "text_column": "text", "label_column": "label", "limit": size}
    lab.setdefault("teacher", {})["path"] = teacher
    if variant == "augment":
        lab["augment"] = {**lab.get("augment", {}), "enabled": True}
    if variant == "join":
        lab["augment"] = {**lab.get("augment", {}), "enabled": True, "copies": 0, "joins": args.joins}
    if variant == "extra":
        lab["extra_inputs"] = [{"path": str(work / "extra.jsonl"), "text_column": "body", "label_column": None}]
    tr = raw.setdefault("train", {})
    if args.student_epochs is not None:
        tr.setdefault("optim", {})["epochs"] = args.student_epochs
    if args.eval_every is not None:
        tr["eval_every"] = args.eval_every
    return parse_config(raw)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for variant, points in result["accuracy"].items():
        xs = [int(n) for n in points]
        ax.plot(xs, [100 * points[str(n)] for n in xs], marker="o",
                label=result.get("legend", {}).get(variant, variant))
    ax.axhline(100 * result["teacher_acc"], color="grey", linestyle="--", label="teacher")
    ax.set_xscale("log", base=2)
    ax.set_xticks(result["sizes"], [str(n) for n in result["sizes"]])
    ax.set_xlabel("label.input rows (transfer set before augmentation / extra source)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{result['dataset']}: student accuracy vs transfer-set size")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def merge(result: dict, earlier: dict) -> None:
    """Add an earlier run's points (e.g. smaller sizes) to ``result``; this run's points win on overlap."""
    if (earlier["dataset"], earlier["teacher"]) != (result["dataset"], result["teacher"]):
        raise SystemExit(f"--merge: {earlier['dataset']} / {earlier['teacher']} is another dataset or teacher")
    for variant, points in earlier["accuracy"].items():
        result["accuracy"][variant] = {**points, **result["accuracy"].get(variant, {})}
    result["variants"] = list(result["accuracy"])
    result["sizes"] = sorted({int(n) for pts in result["accuracy"].values() for n in pts})
    done = {(r["variant"], r["input_rows"]) for r in result["runs"]}
    result["runs"] = [r for r in earlier["runs"] if (r["variant"], r["input_rows"]) not in done] + result["runs"]
    result["legend"] = {**earlier.get("legend", {}), **result["legend"]}
    if "extra" not in result["legend"] or not result.get("extra_unlabelled"):
        result["extra_unlabelled"] = earlier.get("extra_unlabelled", 0)
    result["seconds"] = {"this_run": result["seconds"], "merged_run": earlier["seconds"]}


def main(argv=None) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    base, recipe_path = recipe(args.dataset)
    work = Path(args.workdir or tempfile.mkdtemp(prefix=f"zx-transfer-{args.dataset}-"))
    work.mkdir(parents=True, exist_ok=True)
    files = prepare_data(args, base, work)
    teacher = Path(args.teacher) if args.teacher else work / "teacher"
    if args.dry_run:  # every run's config is still built and validated
        for v in args.variants:
            for n in args.sizes:
                run_config(args, base, files, work, str(teacher), n, v)
        plan = {"dataset": args.dataset, "recipe": str(recipe_path), "teacher": str(teacher),
                "teacher_gold": files["gold"].model_dump(mode="json"), "sizes": args.sizes,
                "variants": args.variants, "runs": len(args.sizes) * len(args.variants), "workdir": str(work)}
        print(json.dumps(plan, indent=2))
        return plan
    from zuoxiao.core.config.views import TrainView
    from zuoxiao.pipelines.label import label_from_config
    from zuoxiao.student.train import train

    t0, times = time.time(), {}
    if not (teacher / "config.json").is_file():  # fine-tuned once; a rerun with the same --workdir reuses it
        from zuoxiao.teacher.finetune.stage import finetune_teacher

        t = time.time()
        finetune_teacher(run_config(args, base, files, work, "embedded:all-MiniLM-L6-v2", args.sizes[0], "plain"),
                         teacher)
        times["finetune_s"] = round(time.time() - t, 1)
    acc: dict = {v: {} for v in args.variants}
    runs: list[dict] = []
    teacher_acc = test_rows = None
    for variant in args.variants:
        for n in args.sizes:
            cfg = run_config(args, base, files, work, str(teacher), n, variant)
            name = f"{variant}-{n}"
            t = time.time()
            m = label_from_config(cfg, work / "label" / name, beam_args=[], teacher_path=str(teacher),
                                  cache_dir=work / "teacher-cache")
            label_s = time.time() - t
            t = time.time()
            res = train(TrainView.of(cfg), work / "label" / name, work / "student" / name)
            train_s = time.time() - t
            shutil.rmtree(work / "student" / name / "checkpoints", ignore_errors=True)
            (work / "student" / name / "model.safetensors").unlink(missing_ok=True)  # metrics.json stays
            teacher_acc, test_rows = res["teacher"]["accuracy"], res["teacher"].get("n")
            acc[variant][str(n)] = res["student"]["accuracy"]
            runs.append({"variant": variant, "input_rows": n, "rows_in_shards": m["counts"]["rows_in_shards"],
                         "augmented": m["counts"]["augmented"], "by_input": m["counts"]["by_input"],
                         "test_acc": res["student"]["accuracy"], "test_macro_f1": res["student"]["macro_f1"],
                         "agreement": res["student"].get("agreement"), "steps": res["train"]["steps"],
                         "best_step": res["train"]["best_step"], "label_s": round(label_s, 1),
                         "train_s": round(train_s, 1)})
            print(f"{name}: test acc {res['student']['accuracy']:.4f} ({m['counts']['rows_in_shards']} rows, "
                  f"label {label_s:.0f}s, train {train_s:.0f}s)", file=sys.stderr)
    times["total_s"] = round(time.time() - t0, 1)
    result = {"dataset": args.dataset, "recipe": str(recipe_path.relative_to(REPO)), "sizes": args.sizes,
              "variants": args.variants, "teacher_acc": teacher_acc, "accuracy": acc, "runs": runs,
              "teacher": str(teacher), "teacher_gold_rows": files["gold"].limit,
              "extra_unlabelled": args.extra_unlabelled, "test_rows": test_rows,
              "legend": {k: v for k, v in {
                  "plain": "plain", "augment": f"augment (+{cfg.label.augment.copies} copies/row)",
                  "extra": f"extra (+{args.extra_unlabelled} unlabelled rows, 2nd source)",
                  "join": f"join (+{args.joins} joined rows/row)"}.items() if k in acc},
              "seconds": times, "settings": {k: v for k, v in vars(args).items() if k != "variants"}}
    if args.merge:
        merge(result, json.loads(Path(args.merge).read_text()))
    out = Path(args.out) / f"transfer_size_{args.dataset}.png"
    plot(result, out)
    result["plot"] = str(out)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
