"""`zuoxiao finetune-teacher`: fine-tune a sequence-classification backbone on gold labels.

The result is a save_pretrained directory (safetensors, tokenizer + vocab.txt, id2label = label names,
config.resolved.yaml, metrics.json) that the label stage takes as its teacher. It runs the shared
Accelerate loop (zuoxiao/core/loop.py) with cross-entropy on gold labels.

What makes the defaults work on 2 to 77 classes without tuning:
- the schedule scales with the data (`epochs: auto`, see `plan_epochs` in teacher/finetune/goldsplit.py):
  a floor of optimizer steps, more passes when each class has few rows, a cap on passes;
- the newly initialised head trains at `optim.head_lr` (a random head at a backbone's lr is the main
  reason a 77-class fine-tune stalls), the pretrained backbone at `optim.lr`, both after a warmup;
- early stopping and the kept weights are decided on the dev set (task.dev, or a stratified slice of
  the gold rows), never on task.eval;
- a TF-IDF + logistic-regression baseline (teacher/tfidf.py) is fitted on the same rows, and a
  teacher that does not beat it by `min_gain_over_baseline` stops the run (exit 3) before labelling;
- where the two are complementary, the teacher that labels is their probability blend (teacher/blend.py),
  chosen on dev by teacher/finetune/blend_choice.py (`blend_baseline`); metrics.json's top-level accuracy
  is then the blend's.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from zuoxiao.core.config import Config, save_resolved
from zuoxiao.core.config.views import FinetuneView
from zuoxiao.core.errors import ConfigError, GateFailed
from zuoxiao.core.evaluate import evaluate_texts
from zuoxiao.core.loop import LoopSpec, fit, make_accelerator
from zuoxiao.core.modelio import count_params, freeze_word_embeddings, save_model_dir
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.teacher.classifier import load_classifier, load_tokenizer
from zuoxiao.teacher.finetune.blend_choice import choose_blend, remove_blend, save_blend, score_teacher
from zuoxiao.teacher.finetune.goldsplit import GoldBatches, GoldSplits, plan_epochs, read_splits
from zuoxiao.teacher.finetune.goldsplit import stratified_split as stratified_split  # re-exported for callers
from zuoxiao.teacher.tfidf import fit_baseline

log = logging.getLogger(__name__)


def add_lora(model, spec) -> tuple:
    """Wrap a sequence classifier with PEFT LoRA -> (PeftModel, names of its fully trained head parameters).

    Only the low-rank matrices and the new head (PEFT's SEQ_CLS task keeps `score`/`classifier` trainable)
    learn; the head keeps its higher learning rate (optim.head_lr). Merged back by `merge_and_unload`.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = spec.target_modules or ([t for t in ("q_proj", "k_proj", "v_proj", "o_proj") if t in present]
                                      or [t for t in ("query", "key", "value") if t in present])
    missing = [t for t in targets if t not in present]
    if not targets or missing:
        raise ConfigError(f"finetune.lora.target_modules={spec.target_modules} names modules the model has not "
                          f"({missing or 'no attention projections found'}); pick from e.g. "
                          f"{sorted(n for n in present if 'proj' in n or n in ('query', 'key', 'value'))}")
    cfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                     target_modules=targets)
    peft_model = get_peft_model(model, cfg)
    head = {n for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n}
    return peft_model, head


def train_candidate(cfg: FinetuneView, splits: GoldSplits, accelerator, out_dir: Path, lr: float, epochs) -> tuple:
    """One fine-tune of the configured backbone at (lr, epochs) -> (model, tokenizer, info).

    The model comes back unwrapped, in eval mode, holding the weights of its best dev evaluation.
    """
    from accelerate.utils import set_seed

    ft, names = cfg.finetune, splits.label_names
    set_seed(cfg.seed)
    new_params: set[str] = set()
    model = load_classifier(ft.teacher.path, names, ft.teacher.trust_remote_code, new_params=new_params)
    tokenizer = load_tokenizer(ft.teacher.path, ft.teacher.trust_remote_code)
    if ft.adapter == "lora":
        model, new_params = add_lora(model, ft.lora)
    elif ft.freeze_embeddings:
        freeze_word_embeddings(model)
    model.train()
    max_len, o = ft.teacher.max_length, ft.optim
    tr_x, tr_y = splits.train
    dev_x, dev_y = splits.dev

    def collate(raw):
        texts, labels = raw
        enc = tokenizer(texts, truncation=True, max_length=max_len, padding=True, return_tensors="pt")
        return {**enc, "labels": torch.from_numpy(labels)}

    def loss_fn(m, batch):
        labels = batch.pop("labels")  # [B]
        loss = F.cross_entropy(m(**batch).logits.float(), labels)  # logits [B, C]
        return loss, {"ce": float(loss.detach())}

    def evaluate(m):
        res = evaluate_texts(m, tokenizer, dev_x, dev_y, len(names), max_len)
        res.pop("predictions")
        return res

    source = GoldBatches(tr_x, tr_y, o.batch_size, cfg.seed)
    steps_per_epoch = len(source) // accelerator.num_processes // o.grad_accum
    n_epochs, epochs_from = plan_epochs(ft, len(tr_x), len(names), steps_per_epoch, epochs)
    spec = LoopSpec.from_optim(o, out_dir, lr=lr, epochs=n_epochs, eval_every=ft.eval_every,
                               patience=ft.early_stopping_patience, desc="finetune",
                               head_params=frozenset(new_params))
    t0 = time.perf_counter()
    info = fit(accelerator, model, source, collate, loss_fn, evaluate, spec)
    model = accelerator.unwrap_model(model)
    if ft.adapter == "lora":  # fold the low-rank updates into the weights: a plain classifier to save and label with
        model = model.merge_and_unload().eval()
    info.update(lr=lr, head_lr=o.head_lr if new_params else None, head_params=sorted(new_params),
                epochs=n_epochs, epochs_from=epochs_from, seconds=round(time.perf_counter() - t0, 1))
    return model, tokenizer, info


def _trial_metrics(model, tokenizer, xy, n_classes: int, max_len: int) -> dict | None:
    """A fine-tune trial's metrics on one gold part ((texts, labels)), predictions dropped; None for no rows."""
    if not xy or not xy[0]:
        return None
    res = evaluate_texts(model, tokenizer, xy[0], xy[1], n_classes, max_len)
    res.pop("predictions")
    return res


def run_search(cfg: FinetuneView, splits: GoldSplits, accelerator, out_dir: Path, keep_trials: bool = False):
    """Each (lr, epochs) of finetune.search as its own run scored on dev; -> (best model, tokenizer, report).

    Trials run in grid order; one that would overrun search.budget_s (seconds per step measured on the
    trials so far x its planned steps) is skipped and reported. keep_trials saves every trial's model
    under out_dir/trials/<k>/ (bench/teacher_quality.py ensembles them).
    """
    s, t0 = cfg.finetune.search, time.perf_counter()
    trials, best, per_step = [], None, None
    names, max_len = splits.label_names, cfg.finetune.teacher.max_length
    for k, (lr, ep) in enumerate((lr, ep) for lr in s.lr for ep in s.epochs):
        trial = {"trial": k, "lr": lr, "epochs": ep}
        if per_step is not None:
            spe = math.ceil(len(splits.train[0]) / cfg.finetune.optim.batch_size) // cfg.finetune.optim.grad_accum
            planned = cfg.finetune.optim.max_steps or math.ceil(
                plan_epochs(cfg.finetune, len(splits.train[0]), len(names), spe, ep)[0] * spe)
            left = s.budget_s - (time.perf_counter() - t0)
            if planned * per_step > left:
                trials.append({**trial, "status": f"skipped: ~{planned * per_step:.0f} s needed, {left:.0f} s left"})
                continue
        tdir = out_dir / "trials" / f"{k}"
        model, tokenizer, info = train_candidate(cfg, splits, accelerator, tdir, lr, ep)
        per_step = max(per_step or 0.0, info["seconds"] / max(info["steps"], 1))
        dev = _trial_metrics(model, tokenizer, splits.dev, len(names), max_len)
        trial.update(status="done", dev=dev, eval=_trial_metrics(model, tokenizer, splits.eval, len(names), max_len),
                     steps=info["steps"], epochs_planned=info["epochs"], best_step=info["best_step"],
                     stopped_early=info["stopped_early"], seconds=info["seconds"])
        trials.append(trial)
        if keep_trials and accelerator.is_main_process:
            save_model_dir(model, tokenizer, tdir, names)
            shutil.rmtree(tdir / "checkpoints", ignore_errors=True)
        else:
            shutil.rmtree(tdir, ignore_errors=True)
        if best is None or dev["accuracy"] > best[3]["dev"]["accuracy"]:
            best = (model, tokenizer, info, trial)  # the previous best is dropped here
        del model
        accelerator.free_memory()  # drop the Accelerator's references to this trial's model and optimizer
    report = {"trials": trials, "best_trial": best[3]["trial"], "budget_s": s.budget_s,
              "seconds": round(time.perf_counter() - t0, 1)}
    return best[0], best[1], best[2], report


def _gate(ft, teacher_dev: float, baseline_dev: float) -> dict:
    gain = round(100 * (teacher_dev - baseline_dev), 2)
    return {"split": "dev", "metric": "accuracy", "teacher": teacher_dev, "baseline": baseline_dev,
            "gain_points": gain, "min_gain_over_baseline": ft.min_gain_over_baseline,
            "passed": gain >= ft.min_gain_over_baseline, "allowed_below_baseline": ft.allow_below_baseline}


def finetune_teacher(cfg: Config, out_dir: Path, keep_trials: bool = False) -> dict:
    """`finetune` on the whole config's FinetuneView (the CLI and library callers)."""
    return finetune(FinetuneView.of(cfg), out_dir, keep_trials)


def finetune(cfg: FinetuneView, out_dir: Path, keep_trials: bool = False) -> dict:
    """Fine-tune cfg.finetune.teacher on cfg.finetune.data; returns (and writes) metrics.json.

    Raises GateFailed (exit 3) after writing metrics.json, and without saving the model, when the teacher
    does not beat the TF-IDF baseline on dev by finetune.min_gain_over_baseline points (unless allowed).
    """
    if cfg.finetune is None:
        raise ConfigError("finetune: section is missing; add finetune.data (gold-labelled rows) to the config")
    t0 = time.time()
    ft, out_dir = cfg.finetune, Path(out_dir)
    splits = read_splits(cfg)
    names, max_len = splits.label_names, ft.teacher.max_length
    if ft.teacher.num_threads:
        torch.set_num_threads(ft.teacher.num_threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("model.safetensors", "config.json"):  # a failed gate must not leave an old teacher behind
        (out_dir / stale).unlink(missing_ok=True)
    remove_blend(out_dir)  # nor an old blend: this run decides afresh
    accelerator = make_accelerator(ft.optim.mixed_precision, out_dir, cpu=ft.teacher.device == "cpu")
    evals = {"eval": splits.eval} if splits.eval else {}
    base_model, baseline = fit_baseline(splits.train, splits.dev, evals, len(names), cfg.seed)
    if ft.search is not None:
        model, tokenizer, info, search = run_search(cfg, splits, accelerator, out_dir, keep_trials)
    else:
        model, tokenizer, info = train_candidate(cfg, splits, accelerator, out_dir, ft.optim.lr, None)
        search = None
    logits, teacher = score_teacher(model, tokenizer, splits, len(names), max_len)  # the blend reuses the logits
    gate = _gate(ft, teacher["dev"]["accuracy"], baseline["dev"]["accuracy"])  # the transformer alone
    keep = gate["passed"] or ft.allow_below_baseline
    blend = choose_blend(ft, base_model, logits, splits, len(names), keep) if ft.blend_baseline == "auto" else None
    counts = count_params(model)
    blended = bool(blend and blend["saved"])  # the top-level numbers are the labelling teacher's: the blend's
    headline = (blend["eval"] or blend["dev"]) if blended else (teacher["eval"] or teacher["dev"])
    metrics = {
        **headline, "eval_source": "task.eval" if teacher["eval"] else "dev", "dev_source": splits.dev_source,
        "teacher": teacher, "baseline": baseline, "blend": blend, "gate": gate, "search": search,
        "label_names": names, "train_rows": len(splits.train[0]), "dev_rows": len(splits.dev[0]),
        "skipped_rows": splits.skipped, "params": counts["params"],
        "non_embedding_params": counts["non_embedding_params"], "base": ft.teacher.path,
        "train": info, "seconds": round(time.time() - t0, 1),
    }
    log.info("finetune: teacher dev accuracy %.4f, TF-IDF baseline %.4f (gain %+.2f points)",
             gate["teacher"], gate["baseline"], gate["gain_points"])
    if accelerator.is_main_process:
        if keep:
            save_model_dir(model, tokenizer, out_dir, names)
            if blended:
                save_blend(out_dir, base_model, blend, names)
        save_resolved(cfg, out_dir)
        write_json_atomic(out_dir / "metrics.json", metrics)
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # the best weights are the saved model
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if not keep:
        raise GateFailed(
            f"the fine-tuned teacher reaches {gate['teacher']:.2%} dev accuracy, the TF-IDF + logistic-regression "
            f"baseline {gate['baseline']:.2%}: a gain of {gate['gain_points']:+.2f} points, below "
            f"finetune.min_gain_over_baseline={ft.min_gain_over_baseline:g}. Labelling with it would distil a "
            "student no better than a linear model. Try more epochs (finetune.optim.epochs, finetune.min_steps), "
            "finetune.search (a few learning rates), or a bigger backbone (finetune.teacher.path); or set "
            f"finetune.allow_below_baseline: true to go on anyway. Details: {out_dir / 'metrics.json'}"
        )
    return metrics
