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
blend_acc is the teacher the finetune stage itself labels with: its kept teacher blended with the baseline
at the weight it chose on dev (blend_weight; teacher/finetune/blend_choice.py), or that teacher alone when the blend was not
kept: no weight gained finetune.blend_min_gain dev points, or the sign test's p (blend_p_value, on
blend_rows_gained vs blend_rows_lost dev rows) exceeded finetune.blend_max_p (blend_weight 0).
best_teacher is the candidate with the best dev accuracy (ties: the cheaper one). best_vs_teacher compares it
with the default teacher row by row on test: rows_gained (only best_teacher right), rows_lost (only the
teacher right) and the one-sided exact sign test's p_value (teacher/finetune/blend_choice.py's sign_test); null, with a
reason, when best_teacher is the teacher itself or its test predictions are not at hand (blend,
llm_calibrated on a subset of rows, a search trial other than the default).

LLM keys (sst2, agnews; `llm_bench`): the embedded SmolLM2-135M-Instruct prompted through the label
stage's own teacher code (teacher/llm/teacher.py) on the first --llm-rows test rows (default 200: about
1-6 rows/s on 2 CPU cores): llm_zero_shot_acc, llm_few_shot_acc (--llm-shots gold examples from the gold
rows), llm_calibrated_acc (zero-shot, prior fitted on the same rows' predictions without their labels,
as the label stage fits it on the transfer set), llm_content_free_acc, few_shot_cost_ratio (seconds per
row, few-shot over zero-shot, prefix KV cache on, prefix cost included). The calibrated LLM competes for
best_teacher through its accuracy on the first --llm-rows dev rows. --llm-only skips the fine-tunes
(their keys are null).

LoRA keys (--llm-lora-rows N > 0; `llm_lora_bench`): `finetune_teacher` with finetune.adapter: lora on
--llm-path (default the embedded SmolLM2-135M-Instruct) and the first N gold rows, shipped defaults
otherwise (no search, no blend): llm_lora_acc (test), llm_lora_dev_acc, llm_lora_seconds,
rows_per_s.llm_lora; with the fine-tunes, llm_lora_with_teacher_acc averages its probabilities with the
default MiniLM teacher's (a two-family ensemble). Both compete for best_teacher where both teachers were
chosen on the same dev rows: a dataset with its own dev split, or N = --gold-rows (AG News splits dev off
the gold rows). With N = 0 (the default)
llm_lora_acc is null and llm_lora_reason says why.

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
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from distill_quality import dataset_args  # noqa: E402 - bench/ is not a package

DATASETS = {
    "sst2": {"text": "sentence", "labels": ["0", "1"], "max_length": 64, "dev": True},
    "agnews": {"text": "text", "labels": ["World", "Sports", "Business", "Sci/Tech"], "max_length": 128,
               "dev": False},
    "tweeteval_emoji": {"text": "text", "labels": None, "max_length": 64, "dev": True},
    "demo": {"text": "text", "labels": None, "max_length": 64, "dev": True},
}
LLM_KEYS = ("llm_zero_shot_acc", "llm_few_shot_acc", "llm_calibrated_acc", "llm_lora_acc")
LLM_PROMPTS = {  # as in configs/sst2_llm.yaml; label name -> verbalizer words
    "sst2": {"system": "You classify the sentiment of movie reviews.",
             "prompt": "Review: {text}\nIs this review positive or negative? Answer with one word.",
             "verbalizers": {"0": ["negative", "Negative", " negative"], "1": ["positive", "Positive", " positive"]}},
    "agnews": {"system": "You classify news articles by topic.",
               "prompt": "Article: {text}\nIs this article about World, Sports, Business or Technology? "
                         "Answer with one word.",
               "verbalizers": {"World": ["World", "Politics"], "Sports": ["Sports", "Sport"],
                               "Business": ["Business", "Economy"], "Sci/Tech": ["Technology", "Science", "Sci/Tech"]}},
}
LORA_REASON = ("not run: --llm-lora-rows 0 (a LoRA fine-tune of a 135M model: SST-2, 2,000 gold rows, ~11 min on 2 "
               "AVX-512 cores; pass --llm-lora-rows 2000)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    dataset_args(p, sorted(DATASETS))
    p.add_argument("--gold-rows", type=int, default=8000, help="gold rows (the first rows of train.tsv)")
    p.add_argument("--eval-rows", type=int, default=None, help="test rows (default all of test.tsv)")
    p.add_argument("--dev-rows", type=int, default=1000, help="dev rows (the first rows of dev.tsv)")
    p.add_argument("--search-lr", type=float, nargs="+", default=[1e-4, 2e-4, 5e-5],
                   help="backbone learning rates of the search (the shipped default among them)")
    p.add_argument("--search-budget-s", type=float, default=7200)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--llm-rows", type=int, default=200, help="test (and dev) rows for the LLM teacher; 0 = skip")
    p.add_argument("--llm-shots", type=int, default=5, help="few-shot examples for llm_few_shot_acc")
    p.add_argument("--llm-lora-rows", type=int, default=0,
                   help="gold rows for the LoRA-tuned LLM teacher (llm_lora_acc); 0 = skip (SST-2, 2,000 rows: ~11 min)")
    p.add_argument("--llm-path", default="embedded:smollm2-135m-instruct",
                   help="causal LM for the LoRA teacher (a local dir or embedded name)")
    p.add_argument("--llm-only", action="store_true", help="only the LLM teacher (skip the fine-tunes)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set finetune.min_steps=20 (smoke runs; not the shipped defaults)")
    return p.parse_args(argv)


def build_config(args, work: Path, extra: list[str] = ()):
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
    }, [*args.overrides, *extra])), default_lr


def right(logits_or_probs, gold):
    """Which rows scores [N, C] get right: bool [N] (for best_vs_teacher's row-by-row sign test)."""
    import numpy as np

    return np.asarray(logits_or_probs).argmax(-1) == np.asarray(gold)


def best_vs_teacher(best: str, candidates: dict) -> dict:
    """best_teacher against the default teacher on the same test rows: rows each alone gets right, sign test.

    candidates: {name: (dev acc, test acc, test rows right bool [N_test] or None)}.
    """
    from zuoxiao.teacher.finetune.blend_choice import sign_test

    if best == "teacher":
        return {"p_value": None, "reason": "best_teacher is the default teacher"}
    r_best, r_teacher = candidates[best][2], candidates.get("teacher", (None, None, None))[2]
    if r_best is None or r_teacher is None:
        return {"p_value": None, "reason": f"no row-by-row test predictions for {best} or the default teacher"}
    b, c = int((r_best & ~r_teacher).sum()), int((~r_best & r_teacher).sum())
    return {"rows_gained": b, "rows_lost": c, "p_value": float(f"{sign_test(b, c):.3g}")}


def accuracy(logits_or_probs, gold, num_classes: int) -> float:
    """Test/dev accuracy of scores [N, C] (logits, log-probs or probabilities) against gold [N]."""
    import numpy as np

    from zuoxiao.core.metrics import classification_metrics

    return classification_metrics(np.asarray(logits_or_probs).argmax(-1), np.asarray(gold), num_classes)["accuracy"]


def throughput(fn, texts) -> float:
    t0 = time.perf_counter()
    fn(texts)
    return round(len(texts) / max(time.perf_counter() - t0, 1e-9), 1)


def llm_bench(args, cfg, splits) -> tuple[dict, tuple | None]:
    """The LLM keys (see the module doc) and the calibrated LLM's (dev, test) accuracy for best_teacher."""
    import torch

    from zuoxiao.core.config import parse_config
    from zuoxiao.core.config.views import LabelView
    from zuoxiao.pipelines.label_teacher import teacher_source
    from zuoxiao.teacher import load_teacher
    from zuoxiao.teacher.llm.scorer import calibrate, fit_prior

    if args.dataset not in LLM_PROMPTS or not args.llm_rows:
        why = "--llm-rows 0" if not args.llm_rows else f"no prompt/verbalizers for {args.dataset} in LLM_PROMPTS"
        return {"llm_reason": f"not run: {why}", "few_shot_cost_ratio": None}, None
    names = splits.label_names
    (test_x, test_y), (dev_x, dev_y) = splits.eval, splits.dev
    test_x, test_y, dev_x, dev_y = test_x[:args.llm_rows], test_y[:args.llm_rows], dev_x[:args.llm_rows], dev_y[:args.llm_rows]

    def teacher(shots):
        """The label stage's teacher for this prompt; few-shot examples are drawn from the gold rows."""
        c = parse_config({"seed": cfg.seed, "task": {"name": args.dataset, "label_names": names},
                          "label": {"input": cfg.finetune.data.model_dump(mode="json"), "teacher": {
                              "kind": "causal_lm", "max_length": DATASETS[args.dataset]["max_length"],
                              "num_threads": args.threads,
                              "llm": {**LLM_PROMPTS[args.dataset], "few_shot": shots,
                                      "few_shot_source": "label_input"}}},
                          "train": {"student": {"kind": "pretrained", "path": "embedded:all-MiniLM-L6-v2"}}})
        return load_teacher(teacher_source(LabelView.of(c), c.label.teacher.path, names), names)

    def timed(t, texts):
        t0, c0 = time.perf_counter(), time.process_time()
        logp = torch.from_numpy(t.predict_texts(texts))
        return logp, time.perf_counter() - t0, time.process_time() - c0

    acc = lambda lp, y: round(float((lp.argmax(-1) == torch.tensor(y)).float().mean()), 4)  # noqa: E731
    zero, few = teacher(0), teacher(args.llm_shots)
    prefix_s = {}
    for name, t in (("zero_shot", zero), ("few_shot", few)):  # once per worker: the prefix KV cache (+ warm-up)
        t0 = time.perf_counter()
        t.predict_texts(test_x[:4])
        prefix_s[name] = round(time.perf_counter() - t0, 2)
    # alternate zero/few twice: the machine is shared and its load drifts; the ratio uses the sums
    lp0, s0, c0 = timed(zero, test_x)
    lpk, sk, ck = timed(few, test_x)
    _, s0b, c0b = timed(zero, test_x)
    _, skb, ckb = timed(few, test_x)
    s0, sk, c0, ck = s0 + s0b, sk + skb, c0 + c0b, ck + ckb
    n2 = 2 * len(test_x)
    cf = zero.scorer.content_free_logprior()
    dev_lp = torch.from_numpy(zero.predict_texts(dev_x))
    out = {
        "llm_model": "embedded:smollm2-135m-instruct (SmolLM2-135M-Instruct, Q4_1 GGUF de-quantised to fp32)",
        "llm_rows": len(test_x), "llm_rows_note": f"first {len(test_x)} test rows (and {len(dev_x)} dev rows), "
        "not the whole split: CPU time",
        "llm_zero_shot_acc": acc(lp0, test_y), "llm_few_shot_acc": acc(lpk, test_y), "llm_few_shot_k": args.llm_shots,
        "llm_calibrated_acc": acc(calibrate(lp0, fit_prior(lp0)), test_y),
        "llm_calibrated": "zero-shot, prior fitted on the rows' own predictions (labels unused)",
        "llm_content_free_acc": acc(calibrate(lp0, cf), test_y),
        "llm_few_shot_calibrated_acc": acc(calibrate(lpk, fit_prior(lpk)), test_y),
        "llm_prefix_tokens": {"zero_shot": len(zero.scorer._prefix_ids), "few_shot": len(few.scorer._prefix_ids)},
        "few_shot_cost_ratio": round(sk / s0, 3), "few_shot_cost_ratio_cpu": round(ck / c0, 3),
        "few_shot_cost_note": "seconds per row, few-shot / zero-shot, prefix KV cache built (once per worker: "
        "llm_prefix_s, incl. warm-up on 4 rows); two alternating passes each",
        "llm_prefix_s": prefix_s, "llm_batch_size": zero.recipe["batch_size"],
        "llm_rows_per_s": {"zero_shot": round(n2 / s0, 2), "few_shot": round(n2 / sk, 2)},
        "llm_cpu_s_per_row": {"zero_shot": round(c0 / n2, 3), "few_shot": round(ck / n2, 3)},
    }
    dev_acc = acc(calibrate(dev_lp, fit_prior(dev_lp)), dev_y)
    return out, (dev_acc, out["llm_calibrated_acc"], None)  # first --llm-rows rows only: no row-by-row test


def llm_lora_bench(args, work: Path, splits, default_logits) -> tuple[dict, dict, float | None]:
    """The LoRA keys (see the module doc), their best_teacher candidates {name: (dev acc, test acc, test rows
    right)} and the LoRA teacher's test rows/s (None when it did not run).

    default_logits: the default MiniLM teacher's (dev [N_dev, C], test [N_test, C]) logits, or None.
    """
    from zuoxiao.core.evaluate import predict_logits
    from zuoxiao.teacher.classifier import load_classifier, load_tokenizer
    from zuoxiao.teacher.ensemble import combine_logits
    from zuoxiao.teacher.finetune.stage import finetune_teacher

    if not args.llm_lora_rows:
        return {"llm_lora_acc": None, "llm_lora_reason": LORA_REASON}, {}, None
    cfg, _ = build_config(args, work / "llm_lora", [
        f"finetune.teacher.path={args.llm_path}", "finetune.adapter=lora", "finetune.search=null",
        f"finetune.data.limit={args.llm_lora_rows}", "finetune.blend_baseline=off",
        "task.eval=null"])  # the test rows are scored once, below (AG News: ~9 min of a 135M model on 2 cores)
    tdir = work / "llm_lora" / "teacher"
    t0 = time.perf_counter()
    m = finetune_teacher(cfg, tdir)
    seconds = time.perf_counter() - t0
    model, tok = load_classifier(str(tdir)), load_tokenizer(str(tdir))
    max_len = cfg.finetune.teacher.max_length
    (dev_x, dev_y), (test_x, test_y) = splits.dev, splits.eval
    t1 = time.perf_counter()
    z_test = predict_logits(model, tok, test_x, max_len)  # [N_test, C]
    rows_per_s = round(len(test_x) / (time.perf_counter() - t1), 1)
    acc = partial(accuracy, num_classes=len(splits.label_names))
    lora = m["teacher"]
    out = {"llm_lora_acc": acc(z_test, test_y), "llm_lora_dev_acc": lora["dev"]["accuracy"],
           "llm_lora_model": args.llm_path, "llm_lora_train_rows": m["train_rows"],
           "llm_lora_steps": m["train"].get("steps"), "llm_lora_seconds": round(seconds, 1),
           "llm_lora_recipe": "finetune.adapter: lora (r 8, attention projections) + a new head, shipped optim "
                              "defaults, no search, no blend"}
    # a dev split off the gold rows is the same split only when both runs split the same rows (seeded)
    same_dev = DATASETS[args.dataset]["dev"] or args.llm_lora_rows == args.gold_rows
    cands = {"llm_lora": (lora["dev"]["accuracy"], out["llm_lora_acc"], right(z_test, test_y))} if same_dev else {}
    if default_logits is not None and same_dev:
        z_dev = predict_logits(model, tok, dev_x, max_len)
        mix = lambda a, b: combine_logits([a, b], [1, 1], "prob")  # noqa: E731
        z_mix = mix(z_test, default_logits[1])
        dev_mix, test_mix = acc(mix(z_dev, default_logits[0]), dev_y), acc(z_mix, test_y)
        out["llm_lora_with_teacher_acc"] = round(test_mix, 4)
        cands["llm_lora_with_teacher"] = (dev_mix, test_mix, right(z_mix, test_y))
    elif not same_dev:
        out["llm_lora_note"] = (f"{args.dataset}'s dev is split off the gold rows, which differ between the MiniLM "
                                "teacher and the LoRA run (--llm-lora-rows != --gold-rows): llm_lora does not "
                                "compete for best_teacher")
    return out, cands, rows_per_s


def finetuned_teachers(args, cfg, default_lr, work: Path) -> tuple[dict, dict, tuple]:
    """Baseline, default fine-tune, search, ensembles.

    Returns (result keys, {candidate: (dev acc, test acc, test rows right bool [N_test] or None)}, the default
    teacher's (dev [N_dev, C], test [N_test, C]) logits, which llm_lora_bench averages with the LoRA LLM's).
    best_teacher and its keys are chosen in main, once every candidate (LLM ones included) is in.
    """
    import numpy as np

    from zuoxiao.core.config.base import TeacherSpec
    from zuoxiao.core.config.views import FinetuneView
    from zuoxiao.teacher import TeacherSource, load_teacher
    from zuoxiao.teacher.classifier import load_classifier, load_tokenizer
    from zuoxiao.teacher.ensemble import combine_logits
    from zuoxiao.teacher.finetune.stage import finetune_teacher, read_splits
    from zuoxiao.teacher.tfidf import fit_baseline

    t0 = time.perf_counter()
    metrics = finetune_teacher(cfg, work / "teacher", keep_trials=True)
    t_finetune = time.perf_counter() - t0
    splits = read_splits(FinetuneView.of(cfg))  # the same rows finetune_teacher used (the dev split is seeded)
    n_cls, max_len = len(splits.label_names), cfg.finetune.teacher.max_length
    (dev_x, dev_y), (test_x, test_y) = splits.dev, splits.eval

    acc = partial(accuracy, num_classes=n_cls)

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
    ensemble_acc = ens_dev = ens_test = None
    if len(top2) == 2:
        spec = TeacherSpec(members=[{"path": tdir(t)} for t in top2], combine="prob", max_length=max_len)
        ens = load_teacher(TeacherSource.of_spec(spec), splits.label_names)
        ens_dev = acc(ens.predict_texts(dev_x), dev_y)
        t1 = time.perf_counter()
        ens_test = ens.predict_texts(test_x)  # [N_test, C]
        ensemble_acc = acc(ens_test, test_y)
        rows_per_s["ensemble"] = round(len(test_x) / (time.perf_counter() - t1), 1)
    # default teacher + baseline, probabilities averaged (the baseline is nearly free to run)
    t_dev, t_test = predict_logits(teacher, tok, dev_x, max_len), predict_logits(teacher, tok, test_x, max_len)
    mix = lambda z, p: combine_logits([z, np.log(np.clip(p, 1e-9, 1))], [1, 1], "prob")  # noqa: E731
    p_base = base.predict_proba(test_x)  # [N_test, C]
    mix_dev, mix_test = acc(mix(t_dev, base.predict_proba(dev_x)), dev_y), mix(t_test, p_base)
    result_extra["ensemble_with_baseline_acc"] = acc(mix_test, test_y)
    blend = metrics.get("blend") or {}
    kept = best if blend.get("chosen") else None  # the search-kept trial is the stage's own teacher
    result_extra.update(
        blend_acc=blend["eval"]["accuracy"] if kept else best["eval"]["accuracy"],
        blend_weight=blend.get("baseline_weight"), blend_dev_grid=blend.get("grid"),
        blend_gain_dev_points=blend.get("gain_points"), blend_rows_gained=blend.get("rows_gained"),
        blend_rows_lost=blend.get("rows_lost"), blend_p_value=blend.get("p_value"))
    t_right = right(t_test, test_y)
    candidates = {  # name: (dev accuracy, test accuracy, test rows right [N_test] or None)
        "baseline": (base_m["dev"]["accuracy"], base_m["eval"]["accuracy"], right(p_base, test_y)),
        "teacher": (default["dev"]["accuracy"], default["eval"]["accuracy"], t_right),
        "search_teacher": (best["dev"]["accuracy"], best["eval"]["accuracy"], t_right if best is default else None),
        "ensemble_with_baseline": (mix_dev, result_extra["ensemble_with_baseline_acc"], right(mix_test, test_y)),
        "blend": (blend["dev"]["accuracy"] if kept else best["dev"]["accuracy"], result_extra["blend_acc"],
                  None if kept or best is not default else t_right),
    }
    if ensemble_acc is not None:
        candidates["ensemble"] = (ens_dev, ensemble_acc, right(ens_test, test_y))
    out = {
        "dataset": args.dataset, "gold_rows": len(splits.train[0]) + (0 if DATASETS[args.dataset]["dev"] else
                                                                       len(dev_x)),
        "train_rows": len(splits.train[0]), "dev_rows": len(dev_x), "dev_source": splits.dev_source,
        "test_rows": len(test_x), "classes": n_cls,
        "baseline_acc": base_m["eval"]["accuracy"], "teacher_acc": default["eval"]["accuracy"],
        "search_teacher_acc": best["eval"]["accuracy"],
        "ensemble_acc": ensemble_acc,
        "ensemble": (f"the 2 best search trials by dev (lr {[t['lr'] for t in top2]}), probabilities averaged"
                     if ensemble_acc is not None else "null: the search ran fewer than 2 trials (--search-lr)"),
        **result_extra,
        "rows_per_s": rows_per_s,
        "teacher_gain_over_baseline_points": round(100 * (default["eval"]["accuracy"] - base_m["eval"]["accuracy"]), 2),
        "trials": [{k: t.get(k) for k in ("lr", "epochs_planned", "steps", "best_step", "stopped_early", "seconds")}
                   | {"dev_acc": t["dev"]["accuracy"], "test_acc": t["eval"]["accuracy"]} for t in trials],
        "seconds": {"finetune_and_search": round(t_finetune, 1), "total": round(time.perf_counter() - t0, 1)},
        "workdir": str(work),
    }
    return out, candidates, (t_dev, t_test)


def main(argv=None) -> int:
    from zuoxiao.core.config.views import FinetuneView
    from zuoxiao.teacher.finetune.stage import read_splits

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix=f"zx-teacher-{args.dataset}-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg, default_lr = build_config(args, work)
    t0 = time.perf_counter()
    if args.llm_only:
        splits = read_splits(FinetuneView.of(cfg))
        out = {"dataset": args.dataset, "classes": len(splits.label_names), "dev_rows": len(splits.dev[0]),
               "dev_source": splits.dev_source, "test_rows": len(splits.eval[0]), "baseline_acc": None,
               "teacher_acc": None, "search_teacher_acc": None, "ensemble_acc": None,
               "finetune_reason": "not run: --llm-only", "rows_per_s": {}, "seconds": {}, "workdir": str(work)}
        candidates, default_logits = {}, None
    else:
        out, candidates, default_logits = finetuned_teachers(args, cfg, default_lr, work)
        splits = read_splits(FinetuneView.of(cfg))
    t1 = time.perf_counter()
    llm, llm_candidate = llm_bench(args, cfg, splits)
    out = {**out, **{k: None for k in LLM_KEYS}, **llm}
    out["rows_per_s"].update({f"llm_{k}": v for k, v in llm.get("llm_rows_per_s", {}).items()})
    if llm_candidate is not None:
        candidates["llm_calibrated"] = llm_candidate
        out["dev_acc_note"] = f"llm_calibrated's dev accuracy is on the first {llm['llm_rows']} dev rows only"
    t2 = time.perf_counter()
    lora, lora_candidates, lora_rows_per_s = llm_lora_bench(args, work, splits, default_logits)
    if lora_rows_per_s is not None:
        out["rows_per_s"]["llm_lora"] = lora_rows_per_s
    out.update(lora)
    candidates.update(lora_candidates)
    out["seconds"]["llm_lora"] = round(time.perf_counter() - t2, 1)
    if candidates:
        best = max(candidates, key=lambda k: candidates[k][0])  # dict order = cheapest first on ties
        out.update(best_teacher=best, best_teacher_acc=candidates[best][1],
                   best_vs_teacher=best_vs_teacher(best, candidates), dev_acc={k: v[0] for k, v in candidates.items()})
    out["seconds"].update(llm=round(t2 - t1, 1), total=round(time.perf_counter() - t0, 1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
