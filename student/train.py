"""`zuoxiao train`: distil a student from the label stage's soft-label shards.

    metrics = train(TrainView.of(cfg), Path("outputs/demo/label"), Path("outputs/demo/student"))

Output (a save_pretrained directory, merged, safetensors): config.json (id2label = label names),
model.safetensors, tokenizer files + vocab.txt, config.resolved.yaml, metrics.json, metrics.jsonl,
checkpoints/ (save_state checkpoints and the best evaluated weights).

``train`` reads top to bottom like zuoxiao.core.loop: shards -> gold sets -> teacher on them ->
(recipe search) -> one distillation -> the merged student measured and saved. Each step is a function
of this module; what every fit of one call shares travels in a ``_Distil``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from zuoxiao.core.config import save_resolved
from zuoxiao.core.config.train import LossConfig, TrainConfig
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


def _batch_loss(model, batch, *, lc: LossConfig, kind: str, centred: bool, with_repr: bool):
    """(loss, parts) of one batch for fit. with_repr: ``model`` is a ReprDistiller and the batch carries
    teacher_repr [B, D] / has_repr [B]; the representation term is added with weight repr_weight."""
    teacher, gold = batch.pop("teacher"), batch.pop("gold")  # [B, C], [B]
    t_repr, has_repr = batch.pop("teacher_repr", None), batch.pop("has_repr", None)  # [B, D], [B]
    if with_repr:
        logits, projected = model(**batch)  # [B, C], [B, D]
    else:
        logits = model(**batch).logits  # [B, C]
    loss, parts = distill_loss(logits, teacher, gold, kind=kind, temperature=lc.temperature, alpha=lc.alpha,
                               centred=centred)
    if with_repr:
        term = repr_loss(projected, t_repr, has_repr, lc.repr_kind)
        loss = loss + lc.repr_weight * term
        parts["repr"] = float(term.detach())
    return loss, parts


def _loss_fn(lc: LossConfig, storage: str, num_classes: int, with_repr: bool = False):
    """loss_fn(model, batch) for fit: the distillation loss of ``lc`` (see _batch_loss)."""
    return partial(_batch_loss, lc=lc, kind=resolve_kind(lc.kind, num_classes), centred=storage == "topk",
                   with_repr=with_repr)


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


@dataclass
class GoldSet:
    """Texts with gold label ids [N] and the teacher's predictions on them [N] (for agreement)."""

    texts: list[str]
    gold: np.ndarray
    teacher_pred: np.ndarray | None = None


def _read_gold_sets(cfg: TrainView, label_names: list[str]) -> tuple[GoldSet | None, GoldSet | None]:
    """(task.eval, task.dev) as GoldSets, None where not configured; warns what a missing one costs."""
    test = dev = None
    if cfg.task.eval is not None:
        data = read_labelled(cfg.task.eval, label_names)
        test = GoldSet(data.texts, np.asarray(data.labels))
    if cfg.task.dev is not None:  # model selection on dev keeps task.eval an unbiased test
        data = read_labelled(cfg.task.dev, label_names)
        dev = GoldSet(data.texts, np.asarray(data.labels))
    elif test is not None:
        log.warning("task.dev is not set: the best checkpoint is chosen on task.eval, so its accuracy "
                    "reads optimistic; give a dev set")
    else:
        log.warning("task.eval and task.dev are not set: no evaluation, early stopping or best checkpoint")
    return test, dev


def _measure_teacher(cfg: TrainView, stream: ShardStream, label_names: list[str], test: GoldSet | None,
                     dev: GoldSet | None) -> dict:
    """The labelling teacher on task.eval (and task.dev): its metrics.json record. Sets each set's
    teacher_pred; warns when the teacher's fingerprint moved since labelling."""
    teacher = teacher_on_eval(stream.manifest.teacher, label_names, cfg, test and test.texts,
                              test and test.gold, dev and dev.texts)
    recorded = stream.manifest.teacher.get("fingerprint")
    if recorded and recorded != teacher["fingerprint"]:
        log.warning("teacher %s has fingerprint %s but the shards were labelled by %s: the teacher changed "
                    "since labelling", stream.manifest.teacher.get("path"), teacher["fingerprint"], recorded)
    if test is not None:
        test.teacher_pred = teacher.pop("predictions")
    if dev is not None:  # the stage headline puts it next to the student's dev accuracy
        dev.teacher_pred = teacher.pop("dev_predictions")
        teacher["dev_accuracy"] = classification_metrics(dev.teacher_pred, dev.gold, len(label_names))["accuracy"]
    return teacher


def _measure(model, tokenizer, on: GoldSet, num_classes: int, rt: TrainConfig) -> dict:
    """Accuracy, macro F1, n and agreement with the teacher of ``model`` on one gold set."""
    res = evaluate_texts(unwrap_student(model), tokenizer, on.texts, on.gold, num_classes, rt.max_length,
                         rt.eval_batch_size)
    pred = res.pop("predictions")
    return {**res, "agreement": agreement(pred, on.teacher_pred)}


@dataclass
class _Distil:
    """What every fit of one train() call shares: the shards, the model the student is cut from, the
    label names and the selection set (task.dev, else task.eval; None: no selection)."""

    stream: ShardStream
    teacher_path: str
    label_names: list[str]
    seed: int
    trust_remote_code: bool
    resume: bool
    select: GoldSet | None


@dataclass
class _Fitted:
    accelerator: object
    model: object  # trained, unwrapped from Accelerate (maybe still a ReprDistiller / PEFT model)
    tokenizer: object
    counts: dict  # count_params of the student before training
    info: dict  # what fit returned


def _fit_student(d: _Distil, rt: TrainConfig, run_dir: Path, select: bool = True, **loop) -> _Fitted:
    """Build the student of recipe ``rt`` and distil it into ``run_dir``; ``loop`` overrides LoopSpec fields."""
    from accelerate.utils import set_seed

    set_seed(d.seed)  # the student's init does not depend on whether the teacher was evaluated
    model, tokenizer = build_student(rt.student, d.teacher_path, d.label_names, rt.max_length, d.trust_remote_code)
    if rt.freeze_embeddings:
        freeze_word_embeddings(model)
    model = apply_adapter(model, rt.adapter)
    counts = count_params(model)
    with_repr = rt.loss.repr_weight > 0
    if with_repr:  # the projection is trained alongside, and dropped below (never saved)
        model = ReprDistiller(model, d.stream.repr_dim)
    acc = make_accelerator(rt.optim.mixed_precision, run_dir)
    settings = {"eval_every": rt.eval_every, "checkpoint_every": rt.checkpoint_every,
                "keep_checkpoints": rt.keep_checkpoints, "patience": rt.early_stopping_patience,
                "metric": rt.metric, "resume": d.resume, "desc": "distil", **loop}
    spec = LoopSpec.from_optim(rt.optim, run_dir, **settings)
    evaluate = None
    if select and d.select is not None:
        evaluate = partial(_measure, tokenizer=tokenizer, on=d.select, num_classes=len(d.label_names), rt=rt)
    info = fit(acc, model, d.stream, partial(collate, tokenizer=tokenizer, max_length=rt.max_length),
               _loss_fn(rt.loss, d.stream.storage, d.stream.num_classes, with_repr), evaluate, spec)
    return _Fitted(acc, acc.unwrap_model(model), tokenizer, counts, info)


def _score_candidate(d: _Distil, cand: TrainConfig) -> dict:
    """One short search run of recipe ``cand`` (no checkpoints, no selection), scored on the selection set."""
    with tempfile.TemporaryDirectory(prefix="zx-search-") as tmp:
        run = _fit_student(d, cand, Path(tmp), select=False, max_steps=cand.search.max_steps, resume=False,
                           checkpoint_every=None, desc="search")
        run.accelerator.end_training()
        return _measure(run.model, run.tokenizer, d.select, len(d.label_names), cand)


def _search(d: _Distil, tc: TrainConfig) -> tuple[TrainConfig, dict]:
    """train.search: the best recipe on the selection set and the search report."""
    if d.select is None:
        raise ConfigError("train.search scores candidates on task.dev (else task.eval): set task.dev")
    best_tc, report = coordinate_search(tc, partial(_score_candidate, d), has_gold=d.stream.has_gold(),
                                        has_repr=d.stream.with_repr)
    log.info("search chose %s (dev %s %.4f); training it in full", report["best"], best_tc.metric,
             report["best_score"])
    return best_tc, report


def train(cfg: TrainView, shards_dir: Path, out_dir: Path, resume: bool = False) -> dict:
    """Distil, evaluate, save. Returns the metrics written to out_dir/metrics.json."""
    from accelerate.utils import set_seed

    t0 = time.time()
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    stream = ShardStream(shards_dir, cfg.train.optim.batch_size, cfg.seed, cfg.train.shuffle_buffer,
                         with_repr=_wants_repr(cfg.train, shards_dir))
    label_names = _check_labels(cfg, stream)
    teacher_path = stream.manifest.teacher.get("path")
    if not teacher_path:
        raise ConfigError(f"{shards_dir}/manifest.json names no teacher.path; relabel with this zuoxiao")
    out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)

    test, dev = _read_gold_sets(cfg, label_names)
    teacher = _measure_teacher(cfg, stream, label_names, test, dev)
    d = _Distil(stream, teacher_path, label_names, cfg.seed, cfg.teacher.trust_remote_code, resume,
                select=dev if dev is not None else test)
    search_report = None
    if cfg.train.search is not None:
        best_tc, search_report = _search(d, cfg.train)
        cfg = TrainView(task=cfg.task, train=best_tc, teacher=cfg.teacher, seed=cfg.seed)
    tc = cfg.train

    t_train = time.time()
    run = _fit_student(d, tc, out_dir)
    train_s = time.time() - t_train
    log.info("student: %s parameters, %s trainable", f"{run.counts['params']:,}", f"{run.counts['trainable']:,}")
    final = merged(unwrap_student(run.model))
    final.eval()
    student = count_params(final)
    student.pop("trainable")
    if test is not None:
        student.update(_measure(final, run.tokenizer, test, len(label_names), tc))
    else:
        student.update(accuracy=None, macro_f1=None, agreement=None)
    metrics = {
        "teacher": teacher,
        "student": student,
        "trainable_params": run.counts["trainable"],
        "train": {**run.info, "rows": stream.num_rows, "storage": stream.storage,
                  "train_seconds": round(train_s, 1), "seconds": round(time.time() - t0, 1)},
        "label_names": label_names,
        "selection": "task.dev" if dev is not None else ("task.eval" if test is not None else None),
        "shards": str(shards_dir),
        "loss": {**tc.loss.model_dump(mode="json"), "resolved_kind": resolve_kind(tc.loss.kind, len(label_names))},
        "lr": tc.optim.lr,
    }
    if search_report is not None:
        metrics["search"] = search_report
    if run.accelerator.is_main_process:
        save_model_dir(final, run.tokenizer, out_dir, label_names)
        save_resolved(cfg, out_dir)
        write_json_atomic(out_dir / "metrics.json", metrics)
    run.accelerator.wait_for_everyone()
    run.accelerator.end_training()
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
        fit(accelerator, model, stream, partial(collate, tokenizer=tokenizer, max_length=tc.max_length),
            _loss_fn(tc.loss, stream.storage, stream.num_classes), None, spec)
        out = accelerator.unwrap_model(model)
        accelerator.end_training()
    out.eval()
    return out
