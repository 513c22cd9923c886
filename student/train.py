"""`zuoxiao train`: distil a student from the label stage's soft-label shards.

    metrics = train(cfg, Path("outputs/demo/label"), Path("outputs/demo/student"))

Output (a save_pretrained directory, merged, safetensors): config.json (id2label = label names),
model.safetensors, tokenizer files + vocab.txt, config.resolved.yaml, metrics.json, metrics.jsonl,
checkpoints/ (save_state checkpoints and the best evaluated weights).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from zuoxiao.core.config import Config, save_resolved
from zuoxiao.core.datasource import read_labelled
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.evaluate import evaluate_texts
from zuoxiao.core.loop import LoopSpec, fit, make_accelerator
from zuoxiao.core.metrics import agreement, classification_metrics
from zuoxiao.core.modelio import count_params, freeze_word_embeddings, save_model_dir
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.student.data import ShardStream, collate
from zuoxiao.student.losses import distill_loss
from zuoxiao.student.models import apply_adapter, build_student, merged

log = logging.getLogger(__name__)


def _loss_fn(cfg: Config, storage: str):
    lc = cfg.train.loss

    def loss_fn(model, batch):
        teacher, gold = batch.pop("teacher"), batch.pop("gold")  # [B, C], [B]
        logits = model(**batch).logits  # [B, C]
        return distill_loss(logits, teacher, gold, kind=lc.kind, temperature=lc.temperature, alpha=lc.alpha,
                            centred=storage == "topk")

    return loss_fn


def _check_labels(cfg: Config, stream: ShardStream) -> list[str]:
    names = stream.label_names
    if cfg.task.label_names is not None and list(cfg.task.label_names) != names:
        raise ConfigError(
            f"task.label_names={cfg.task.label_names} but the shards in {stream.label_dir} were labelled with "
            f"{names}; fix task.label_names or relabel"
        )
    return names


def teacher_on_eval(teacher_path: str, label_names: list[str], cfg: Config, texts, gold, dev_texts=None) -> dict:
    """Load the labelling teacher and measure it on the eval texts (predictions [N] kept for agreement).

    With ``dev_texts``, also its predictions on the dev set ("dev_predictions"), for agreement there.
    """
    from zuoxiao.teacher.model import load_eval_teacher

    teacher = load_eval_teacher(cfg, label_names, teacher_path)  # classifier, ensemble or prompted LLM
    out = {"path": teacher_path, **count_params(teacher.module), "fingerprint": teacher.fingerprint}
    out.pop("trainable")
    if texts is not None:
        pred = teacher.logits(texts, cfg.train.eval_batch_size).argmax(-1)
        out.update(classification_metrics(pred, gold, len(label_names)), predictions=pred)
    else:  # no task.eval: the keys stay (null) so readers of metrics.json need no special case
        out.update(accuracy=None, macro_f1=None)
    if dev_texts is not None:
        out["dev_predictions"] = teacher.logits(dev_texts, cfg.train.eval_batch_size).argmax(-1)
    return out


def train(cfg: Config, shards_dir: Path, out_dir: Path, resume: bool = False) -> dict:
    """Distil, evaluate, save. Returns the metrics written to out_dir/metrics.json."""
    from accelerate.utils import set_seed

    t0 = time.time()
    tc = cfg.train
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    stream = ShardStream(shards_dir, tc.optim.batch_size, cfg.seed, tc.shuffle_buffer)
    label_names = _check_labels(cfg, stream)
    teacher_path = stream.manifest.get("teacher", {}).get("path")
    if not teacher_path:
        raise ConfigError(f"{shards_dir}/manifest.json names no teacher.path; relabel with this zuoxiao")
    out_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(tc.optim.mixed_precision, out_dir)
    set_seed(cfg.seed)

    texts = gold = None
    if cfg.task.eval is not None:
        data = read_labelled(cfg.task.eval, label_names)
        texts, gold = data.texts, np.asarray(data.labels)
    dev_texts = dev_gold = None
    if cfg.task.dev is not None:  # model selection on dev keeps task.eval an unbiased test
        dev = read_labelled(cfg.task.dev, label_names)
        dev_texts, dev_gold = dev.texts, np.asarray(dev.labels)
    elif texts is not None:
        log.warning("task.dev is not set: the best checkpoint is chosen on task.eval, so its accuracy "
                    "reads optimistic; give a dev set")
    else:
        log.warning("task.eval and task.dev are not set: no evaluation, early stopping or best checkpoint")
    teacher = teacher_on_eval(teacher_path, label_names, cfg, texts, gold, dev_texts)
    recorded = stream.manifest.get("teacher", {}).get("fingerprint")
    if recorded and recorded != teacher["fingerprint"]:
        log.warning("teacher %s has fingerprint %s but the shards were labelled by %s: the teacher changed "
                    "since labelling", teacher_path, teacher["fingerprint"], recorded)
    teacher_pred = teacher.pop("predictions", None)
    dev_teacher_pred = teacher.pop("dev_predictions", None)
    if dev_texts is None:
        dev_texts, dev_gold, dev_teacher_pred = texts, gold, teacher_pred

    set_seed(cfg.seed)  # the student's init does not depend on whether the teacher was evaluated
    model, tokenizer = build_student(tc.student, teacher_path, label_names, tc.max_length,
                                     cfg.label.teacher.trust_remote_code)
    if tc.freeze_embeddings:
        freeze_word_embeddings(model)
    model = apply_adapter(model, tc.adapter)
    counts = count_params(model)
    log.info("student: %s parameters, %s trainable", f"{counts['params']:,}", f"{counts['trainable']:,}")

    def evaluate_on(m, eval_texts, eval_gold, eval_teacher_pred) -> dict:
        res = evaluate_texts(m, tokenizer, eval_texts, eval_gold, len(label_names), tc.max_length,
                             tc.eval_batch_size)
        pred = res.pop("predictions")
        return {**res, "agreement": agreement(pred, eval_teacher_pred)}

    def evaluate(m) -> dict:  # model selection: task.dev, else task.eval
        return evaluate_on(m, dev_texts, dev_gold, dev_teacher_pred)

    o = tc.optim
    spec = LoopSpec(out_dir=out_dir, lr=o.lr, weight_decay=o.weight_decay, epochs=o.epochs, max_steps=o.max_steps,
                    grad_accum=o.grad_accum, warmup_ratio=o.warmup_ratio, schedule=o.schedule,
                    max_grad_norm=o.max_grad_norm, eval_every=tc.eval_every, checkpoint_every=tc.checkpoint_every,
                    keep_checkpoints=tc.keep_checkpoints, patience=tc.early_stopping_patience, metric=tc.metric,
                    resume=resume, desc="distil")
    t_train = time.time()
    info = fit(accelerator, model, stream, lambda raw: collate(raw, tokenizer, tc.max_length),
               _loss_fn(cfg, stream.storage), evaluate if dev_texts is not None else None, spec)
    train_s = time.time() - t_train
    final = merged(accelerator.unwrap_model(model))
    final.eval()
    student = {**count_params(final)}
    student.pop("trainable")
    if texts is not None:
        student.update(evaluate_on(final, texts, gold, teacher_pred))
    else:
        student.update(accuracy=None, macro_f1=None, agreement=None)
    metrics = {
        "teacher": teacher,
        "student": student,
        "trainable_params": counts["trainable"],
        "train": {**info, "rows": stream.num_rows, "storage": stream.storage, "train_seconds": round(train_s, 1),
                  "seconds": round(time.time() - t0, 1)},
        "label_names": label_names,
        "selection": "task.dev" if cfg.task.dev is not None else ("task.eval" if texts is not None else None),
        "shards": str(shards_dir),
    }
    if accelerator.is_main_process:
        save_model_dir(final, tokenizer, out_dir, label_names)
        save_resolved(cfg, out_dir)
        write_json_atomic(out_dir / "metrics.json", metrics)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


def distill_model(model, tokenizer, shards_dir: Path, cfg: Config, *, max_steps: int, lr: float):
    """A short distillation pass (recovery after pruning): same shards, same loss, no eval/checkpoints.

    Returns the (unwrapped) model in eval mode. LoRA is not applied: every trainable parameter of
    ``model`` is updated (freeze what you want kept before calling).
    """
    tc = cfg.train
    stream = ShardStream(shards_dir, tc.optim.batch_size, cfg.seed, tc.shuffle_buffer)
    _check_labels(cfg, stream)
    if model.config.num_labels != stream.num_classes:
        raise ConfigError(f"model has {model.config.num_labels} labels, the shards {stream.num_classes}")
    with tempfile.TemporaryDirectory(prefix="zx-distill-") as tmp:
        accelerator = make_accelerator(tc.optim.mixed_precision, Path(tmp))
        o = tc.optim
        spec = LoopSpec(out_dir=Path(tmp), lr=lr, weight_decay=o.weight_decay, epochs=1.0, max_steps=max_steps,
                        grad_accum=1, warmup_ratio=o.warmup_ratio, schedule=o.schedule,
                        max_grad_norm=o.max_grad_norm, eval_every=None, checkpoint_every=None, desc="recover")
        model.train()
        fit(accelerator, model, stream, lambda raw: collate(raw, tokenizer, tc.max_length),
            _loss_fn(cfg, stream.storage), None, spec)
        out = accelerator.unwrap_model(model)
        accelerator.end_training()
    out.eval()
    return out

