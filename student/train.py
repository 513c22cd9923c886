"""`zuoxiao train`: distil a student from the label stage's soft-label shards.

    metrics = train(TrainView.of(cfg), Path("outputs/demo/label"), Path("outputs/demo/student"))

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

from zuoxiao.core.config import save_resolved
from zuoxiao.core.config.views import TrainView
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.evaluate import evaluate_texts
from zuoxiao.core.goldsets import read_labelled
from zuoxiao.core.loop import LoopSpec, fit, make_accelerator
from zuoxiao.core.metrics import agreement, classification_metrics
from zuoxiao.core.modelio import count_params, freeze_word_embeddings, save_model_dir
from zuoxiao.core.shards import read_manifest, write_json_atomic
from zuoxiao.student.data import ShardStream, collate
from zuoxiao.student.losses import distill_loss, repr_loss, resolve_kind
from zuoxiao.student.models import ReprDistiller, apply_adapter, build_student, merged, unwrap_student
from zuoxiao.student.search import coordinate_search

log = logging.getLogger(__name__)


def _loss_fn(cfg: TrainView, storage: str, num_classes: int, with_repr: bool = False):
    """loss_fn(model, batch) for fit. with_repr: ``model`` is a ReprDistiller and the batch carries
    teacher_repr [B, D] / has_repr [B]; the representation term is added with weight repr_weight."""
    lc = cfg.train.loss
    kind = resolve_kind(lc.kind, num_classes)

    def loss_fn(model, batch):
        teacher, gold = batch.pop("teacher"), batch.pop("gold")  # [B, C], [B]
        t_repr, has_repr = batch.pop("teacher_repr", None), batch.pop("has_repr", None)  # [B, D], [B]
        if with_repr:
            logits, projected = model(**batch)  # [B, C], [B, D]
        else:
            logits = model(**batch).logits  # [B, C]
        loss, parts = distill_loss(logits, teacher, gold, kind=kind, temperature=lc.temperature, alpha=lc.alpha,
                                   centred=storage == "topk")
        if with_repr:
            term = repr_loss(projected, t_repr, has_repr, lc.repr_kind)
            loss = loss + lc.repr_weight * term
            parts["repr"] = float(term.detach())
        return loss, parts

    return loss_fn


def _wants_repr(tc, shards_dir: Path) -> bool:
    """Read teacher representations? When the recipe uses them, or a search may try them and they exist."""
    if tc.loss.repr_weight > 0:
        return True
    if tc.search is None or not any(w > 0 for w in tc.search.repr_weights):
        return False
    return bool(read_manifest(shards_dir, verify_checksums=False).teacher.get("repr_dim"))


def _check_labels(cfg: TrainView, stream: ShardStream) -> list[str]:
    names = stream.label_names
    if cfg.task.label_names is not None and list(cfg.task.label_names) != names:
        raise ConfigError(
            f"task.label_names={cfg.task.label_names} but the shards in {stream.label_dir} were labelled with "
            f"{names}; fix task.label_names or relabel"
        )
    return names


def teacher_on_eval(recorded: dict, label_names: list[str], cfg: TrainView, texts, gold, dev_texts=None) -> dict:
    """Re-create the labelling teacher from what the label manifest recorded (``recorded`` = its teacher
    section: a classifier, an ensemble or a prompted LLM) and measure it on the eval texts (predictions [N]
    kept for agreement). With ``dev_texts``, also its predictions on the dev set ("dev_predictions").
    """
    from zuoxiao.teacher import TeacherSource, load_teacher

    teacher = load_teacher(TeacherSource.of_record(recorded, cfg.teacher.trust_remote_code), label_names)
    out = {"path": recorded.get("path"), **count_params(teacher.module), "fingerprint": teacher.fingerprint()}
    out.pop("trainable")
    if texts is not None:
        pred = teacher.predict_texts(texts, cfg.train.eval_batch_size).argmax(-1)
        out.update(classification_metrics(pred, gold, len(label_names)), predictions=pred)
    else:  # no task.eval: the keys stay (null) so readers of metrics.json need no special case
        out.update(accuracy=None, macro_f1=None)
    if dev_texts is not None:
        out["dev_predictions"] = teacher.predict_texts(dev_texts, cfg.train.eval_batch_size).argmax(-1)
    return out


def train(cfg: TrainView, shards_dir: Path, out_dir: Path, resume: bool = False) -> dict:
    """Distil, evaluate, save. Returns the metrics written to out_dir/metrics.json."""
    from accelerate.utils import set_seed

    t0 = time.time()
    tc = cfg.train
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    stream = ShardStream(shards_dir, tc.optim.batch_size, cfg.seed, tc.shuffle_buffer,
                         with_repr=_wants_repr(tc, shards_dir))
    label_names = _check_labels(cfg, stream)
    teacher_path = stream.manifest.teacher.get("path")
    if not teacher_path:
        raise ConfigError(f"{shards_dir}/manifest.json names no teacher.path; relabel with this zuoxiao")
    out_dir.mkdir(parents=True, exist_ok=True)
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
    teacher = teacher_on_eval(stream.manifest.teacher, label_names, cfg, texts, gold, dev_texts)
    recorded = stream.manifest.teacher.get("fingerprint")
    if recorded and recorded != teacher["fingerprint"]:
        log.warning("teacher %s has fingerprint %s but the shards were labelled by %s: the teacher changed "
                    "since labelling", teacher_path, teacher["fingerprint"], recorded)
    teacher_pred = teacher.pop("predictions", None)
    dev_teacher_pred = teacher.pop("dev_predictions", None)
    if dev_teacher_pred is not None:  # the stage headline puts it next to the student's dev accuracy
        teacher["dev_accuracy"] = classification_metrics(dev_teacher_pred, dev_gold, len(label_names))["accuracy"]
    if dev_texts is None:
        dev_texts, dev_gold, dev_teacher_pred = texts, gold, teacher_pred

    def evaluate_on(m, eval_texts, eval_gold, eval_teacher_pred) -> dict:
        res = evaluate_texts(unwrap_student(m), tokenizer, eval_texts, eval_gold, len(label_names), tc.max_length,
                             tc.eval_batch_size)
        pred = res.pop("predictions")
        return {**res, "agreement": agreement(pred, eval_teacher_pred)}

    def evaluate(m) -> dict:  # model selection: task.dev, else task.eval
        return evaluate_on(m, dev_texts, dev_gold, dev_teacher_pred)

    def run_fit(run_cfg: TrainView, run_dir: Path, select: bool = True, **loop):
        """Build the student of run_cfg, distil it; returns (accelerator, trained model (maybe wrapped), info)."""
        nonlocal tokenizer
        rt = run_cfg.train
        set_seed(cfg.seed)  # the student's init does not depend on whether the teacher was evaluated
        model, tokenizer = build_student(rt.student, teacher_path, label_names, rt.max_length,
                                         cfg.teacher.trust_remote_code)
        if rt.freeze_embeddings:
            freeze_word_embeddings(model)
        model = apply_adapter(model, rt.adapter)
        counts.update(count_params(model))
        with_repr = rt.loss.repr_weight > 0
        if with_repr:  # the projection is trained alongside, and dropped below (never saved)
            model = ReprDistiller(model, stream.repr_dim)
        acc = make_accelerator(rt.optim.mixed_precision, run_dir)
        settings = {"eval_every": rt.eval_every, "checkpoint_every": rt.checkpoint_every,
                    "keep_checkpoints": rt.keep_checkpoints, "patience": rt.early_stopping_patience,
                    "metric": rt.metric, "resume": resume, "desc": "distil", **loop}
        spec = LoopSpec.from_optim(rt.optim, run_dir, **settings)
        info = fit(acc, model, stream, lambda raw: collate(raw, tokenizer, rt.max_length),
                   _loss_fn(run_cfg, stream.storage, stream.num_classes, with_repr),
                   evaluate if select and dev_texts is not None else None, spec)
        return acc, acc.unwrap_model(model), info

    tokenizer, counts = None, {}
    search_report = None
    if tc.search is not None:
        if dev_texts is None:
            raise ConfigError("train.search scores candidates on task.dev (else task.eval): set task.dev")
        has_repr = stream.with_repr

        def run_candidate(cand) -> dict:
            with tempfile.TemporaryDirectory(prefix="zx-search-") as tmp:
                acc, m, _ = run_fit(TrainView(task=cfg.task, train=cand, teacher=cfg.teacher, seed=cfg.seed),
                                    Path(tmp), select=False, max_steps=cand.search.max_steps, resume=False,
                                    checkpoint_every=None, desc="search")
                acc.end_training()
                return evaluate(m)

        best_tc, search_report = coordinate_search(tc, run_candidate, has_gold=stream.has_gold(),
                                                   has_repr=has_repr)
        cfg = TrainView(task=cfg.task, train=best_tc, teacher=cfg.teacher, seed=cfg.seed)
        tc = best_tc
        log.info("search chose %s (dev %s %.4f); training it in full", search_report["best"], tc.metric,
                 search_report["best_score"])

    t_train = time.time()
    accelerator, trained, info = run_fit(cfg, out_dir)
    train_s = time.time() - t_train
    log.info("student: %s parameters, %s trainable", f"{counts['params']:,}", f"{counts['trainable']:,}")
    final = merged(unwrap_student(trained))
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
        "loss": {**tc.loss.model_dump(mode="json"), "resolved_kind": resolve_kind(tc.loss.kind, len(label_names))},
        "lr": tc.optim.lr,
    }
    if search_report is not None:
        metrics["search"] = search_report
    if accelerator.is_main_process:
        save_model_dir(final, tokenizer, out_dir, label_names)
        save_resolved(cfg, out_dir)
        write_json_atomic(out_dir / "metrics.json", metrics)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


def distill_model(model, tokenizer, shards_dir: Path, cfg: TrainView, *, max_steps: int, lr: float):
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
        spec = LoopSpec.from_optim(o, Path(tmp), lr=lr, epochs=1.0, max_steps=max_steps, grad_accum=1,
                                   head_lr=None, desc="recover")
        model.train()
        fit(accelerator, model, stream, lambda raw: collate(raw, tokenizer, tc.max_length),
            _loss_fn(cfg, stream.storage, stream.num_classes), None, spec)
        out = accelerator.unwrap_model(model)
        accelerator.end_training()
    out.eval()
    return out

