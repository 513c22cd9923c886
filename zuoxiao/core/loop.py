"""The Accelerate training loop shared by teacher fine-tuning and student distillation.

Shaped like Accelerate's nlp_example.py: Accelerator -> seed -> model -> data -> optimizer -> ONE
prepare() -> an explicit loop where the loss is visible. The data source is not prepared: it is a
deterministic stream of batches (see student/data.py) that each process splits by batch index, so a
resumed run skips exactly the batches it had consumed and `accelerate launch --num_processes 2` sees
the same batches in total as a plain run.

Checkpoints and the metrics log live in zuoxiao.core.checkpoint; ``rank_batches`` deals this process's
share of each epoch; ``LoopSpec.from_optim`` is the one place an optimiser config becomes a loop spec.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from zuoxiao.core.checkpoint import Checkpointer, MetricsLog
from zuoxiao.core.errors import ConfigError, InputError

log = logging.getLogger(__name__)


def resolve_precision(requested: str, cpu: bool) -> str:
    """'auto' -> bf16 on a CUDA device that supports it, else 'no'. fp16 needs CUDA."""
    cuda = torch.cuda.is_available() and not cpu
    if requested == "auto":
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    if requested == "fp16" and not cuda:
        raise ConfigError("optim.mixed_precision=fp16 needs a CUDA GPU; use 'bf16' or 'no' (or 'auto') on CPU")
    return requested


def make_accelerator(mixed_precision: str, out_dir: Path, cpu: bool = False):
    """One Accelerator; TensorBoard tracking only when tensorboard is installed.

    Under a multi-process launcher on a machine without CUDA (`accelerate launch --multi_gpu
    --num_processes 2`, or torchrun), Accelerate only forms the gloo process group when told cpu=True;
    otherwise every process would train alone. (`accelerate launch --cpu --num_processes 2` starts ONE
    process: Accelerate's simple launcher needs mpirun for several CPU processes.)
    """
    from accelerate import Accelerator

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        cpu = True

    try:
        import tensorboard  # noqa: F401

        log_with = "tensorboard"
    except ImportError:
        log_with = None
    return Accelerator(
        mixed_precision=resolve_precision(mixed_precision, cpu),
        cpu=cpu,
        log_with=log_with,
        project_dir=str(out_dir / "logs"),
        # The schedule is counted in this process's optimizer steps: step it once per step.
        step_scheduler_with_optimizer=False,
    )


@dataclass
class LoopSpec:
    out_dir: Path
    lr: float
    weight_decay: float
    epochs: float
    max_steps: int | None
    grad_accum: int
    warmup_ratio: float
    schedule: str
    max_grad_norm: float | None
    eval_every: int | None  # None = once per epoch
    checkpoint_every: int | None
    keep_checkpoints: int = 2
    patience: int | None = None
    metric: str = "accuracy"
    resume: bool = False
    desc: str = "train"
    log_every: int = 10
    head_params: frozenset[str] = frozenset()  # parameter names trained at head_lr (e.g. a new classifier)
    head_lr: float | None = None  # None = lr for every parameter

    @classmethod
    def from_optim(cls, optim, out_dir: Path, **loop) -> LoopSpec:
        """The one place an OptimConfig becomes a LoopSpec; ``loop`` sets the loop-only fields and may
        override optimiser ones (e.g. the recover step's lr, a fine-tune's derived epochs)."""
        fields = {"lr": optim.lr, "weight_decay": optim.weight_decay, "epochs": optim.epochs,
                  "max_steps": optim.max_steps, "grad_accum": optim.grad_accum, "warmup_ratio": optim.warmup_ratio,
                  "schedule": optim.schedule, "max_grad_norm": optim.max_grad_norm,
                  "head_lr": getattr(optim, "head_lr", None), "eval_every": None, "checkpoint_every": None}
        return cls(out_dir=Path(out_dir), **{**fields, **loop})


def param_groups(model, weight_decay: float, lr: float | None = None, head_params: frozenset[str] = frozenset(),
                 head_lr: float | None = None) -> list[dict]:
    """AdamW groups: no decay on biases and LayerNorm weights (as BERT does); ``head_params`` at ``head_lr``."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decays = not (p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name)
            groups.setdefault((decays, head_lr is not None and name in head_params), []).append(p)
    out = []
    for (decays, head), params in sorted(groups.items()):
        g = {"params": params, "weight_decay": weight_decay if decays else 0.0}
        if lr is not None:
            g["lr"] = head_lr if head else lr
        out.append(g)
    return out


def rank_batches(source, epoch: int, world: int, rank: int, usable: int, skip: int):
    """This process's micro-batches of one epoch: (local index, raw batch).

    Global batch gi goes to process gi % world as its local batch gi // world; the first ``skip`` local
    batches (consumed before a resume) and any beyond ``usable`` (a ragged tail no step could use) are
    left out, so every process takes the same number of optimizer steps.
    """
    for gi, raw in enumerate(source.epoch(epoch)):
        local = gi // world
        if local >= usable:
            return
        if gi % world == rank and local >= skip:
            yield local, raw


def _mean_over_ranks(accelerator, window: list[float]) -> float:
    """The training loss since the last log line, over every process's micro-batches (each rank holds only
    its own share; every rank reaches the same log steps with as many micro-batches, so this is the mean
    one process would have logged)."""
    mean = sum(window) / len(window)
    if accelerator.num_processes == 1:
        return mean
    return float(accelerator.reduce(torch.tensor(mean, device=accelerator.device), reduction="mean"))


def _check_finite(loss: torch.Tensor, step: int, parts: dict) -> None:
    """A NaN/inf loss would silently turn every weight into NaN: stop with the cause instead."""
    if not torch.isfinite(loss.detach()).all():
        raise InputError(
            f"the training loss became {float(loss.detach())} at optimizer step {step + 1} (parts {parts}): the "
            "weights would turn to NaN. Lower optim.lr, keep max_grad_norm on, or check the inputs (a shard "
            "with non-finite teacher values is refused when read; rerun the label stage)")


def fit(accelerator, model, source, collate: Callable, loss_fn: Callable, evaluate: Callable | None,
        spec: LoopSpec) -> dict:
    """Train ``model`` in place; returns training info. The best evaluated weights are loaded at the end.

    source: len() = batches per epoch (all processes), .epoch(e) -> iterator of raw batches.
    collate(raw) -> dict of tensors; loss_fn(model, batch) -> (loss, parts dict);
    evaluate(unwrapped_model) -> metrics dict (must hold spec.metric) or None.
    """
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    # Schedule: optimizer steps per process and epoch decide the total and the warmup.
    world, rank = accelerator.num_processes, accelerator.process_index
    steps_per_epoch = len(source) // world // spec.grad_accum
    if steps_per_epoch < 1:
        raise InputError(
            f"{len(source)} batches per epoch cannot make one optimizer step on each of {world} process(es) "
            f"with grad_accum={spec.grad_accum}; give more rows or lower batch_size/grad_accum"
        )
    total = spec.max_steps or max(1, math.ceil(spec.epochs * steps_per_epoch))
    eval_every = spec.eval_every or steps_per_epoch

    # Optimizer + scheduler, ONE prepare().
    optimizer = torch.optim.AdamW(
        param_groups(model, spec.weight_decay, spec.lr, spec.head_params, spec.head_lr), lr=spec.lr)
    scheduler = get_scheduler(
        {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[spec.schedule],
        optimizer, num_warmup_steps=int(spec.warmup_ratio * total), num_training_steps=total,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    # Resume (or start clean), then the metrics log.
    ckpt = Checkpointer(accelerator, spec.out_dir, spec.keep_checkpoints, model, optimizer)
    state = ckpt.restore(spec.resume, total, {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None,
                                              "best_step": None, "bad_evals": 0, "history": []})
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.root.mkdir(parents=True, exist_ok=True)
    metrics_log = MetricsLog(accelerator, spec.out_dir, state["step"])
    accelerator.init_trackers(spec.desc)
    resumed_from = state["step"] or None

    # The loop: micro-batches -> loss -> backward; every grad_accum of them one optimizer step.
    model.train()
    bar = tqdm(total=total, initial=state["step"], desc=spec.desc, unit="step",
               disable=not accelerator.is_local_main_process)
    epoch, skip, stop = state["epoch"], state["batch_in_epoch"], False
    window, parts = [], {}
    while state["step"] < total and not stop:
        for local, raw in rank_batches(source, epoch, world, rank, steps_per_epoch * spec.grad_accum, skip):
            batch = {k: v.to(accelerator.device) for k, v in collate(raw).items()}
            sync = (local + 1) % spec.grad_accum == 0
            # Between optimizer steps DDP need not all-reduce gradients.
            with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                loss, parts = loss_fn(model, batch)
                _check_finite(loss, state["step"], parts)
                accelerator.backward(loss / spec.grad_accum)
            window.append(float(loss.detach()))
            if not sync:
                continue
            if spec.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            step = state["step"]
            bar.update(1)
            bar.set_postfix(loss=f"{window[-1]:.4f}")
            if step % spec.log_every == 0 or step == total:
                metrics_log.emit({"step": step, "epoch": epoch, "loss": _mean_over_ranks(accelerator, window),
                                  "lr": scheduler.get_last_lr()[0], **{k: v for k, v in parts.items() if v == v}})
                window = []
            if evaluate is not None and (step % eval_every == 0 or step == total):
                stop = _evaluate(accelerator, model, evaluate, spec, state, ckpt, metrics_log)
            if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < total and not stop:
                ckpt.save(state, epoch, local + 1)
            if step >= total or stop:
                break
        epoch, skip = epoch + 1, 0
    bar.close()

    # The best evaluated weights win over the last ones.
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    if state["best_step"] is not None:
        ckpt.load_best(unwrapped)
    unwrapped.eval()  # the caller ends training (end_training also tears down the process group)
    return {"steps": state["step"], "total_steps": total, "steps_per_epoch": steps_per_epoch,
            "epochs_run": round(state["step"] / steps_per_epoch, 3), "best_step": state["best_step"],
            "best": state["best"], "stopped_early": stop, "history": state["history"], "resumed_from": resumed_from,
            "processes": world, "mixed_precision": accelerator.mixed_precision}


def _evaluate(accelerator, model, evaluate, spec, state, ckpt: Checkpointer, metrics_log: MetricsLog) -> bool:
    """Evaluate (every process, same result), keep the best weights; True when patience runs out."""
    unwrapped = accelerator.unwrap_model(model)
    metrics = evaluate(unwrapped)
    value = metrics[spec.metric]
    improved = state["best"] is None or value > state["best"]
    if improved:
        state.update(best=value, best_step=state["step"], bad_evals=0)
        ckpt.save_best(unwrapped)
    else:
        state["bad_evals"] += 1
    record = {"step": state["step"], **{f"eval_{k}": v for k, v in metrics.items()}}
    if accelerator.is_main_process:  # on the console as training goes, not only in metrics.jsonl
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        log.info("%s step %d: held-out %s (best %s %.4f at step %s)", spec.desc, state["step"], shown,
                 spec.metric, state["best"], state["best_step"])
    state["history"].append(record)
    metrics_log.emit(record)
    accelerator.wait_for_everyone()
    model.train()
    return bool(spec.patience and state["bad_evals"] >= spec.patience)
