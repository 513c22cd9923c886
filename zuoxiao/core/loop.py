"""The Accelerate training loop shared by teacher fine-tuning and student distillation.

Shaped like Accelerate's nlp_example.py: Accelerator -> seed -> model -> data -> optimizer -> ONE
prepare() -> an explicit loop where the loss is visible. The data source is not prepared: it is a
deterministic stream of batches (see student/data.py) that each process splits by batch index, so a
resumed run skips exactly the batches it had consumed and `accelerate launch --num_processes 2` sees
the same batches in total as a plain run.

Checkpoints: `save_state` writes into `checkpoints/.step-N.tmp`; only after it and `trainer_state.json`
are complete is the directory renamed to `checkpoints/step-N`. `--resume` takes the newest `step-N`
holding `trainer_state.json`, so a crash mid-save never leaves a checkpoint that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.shards import write_json_atomic

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"


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


def complete_checkpoints(root: Path) -> list[Path]:
    """step-N dirs with a trainer_state.json, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _save_weights(model, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)


def fit(accelerator, model, source, collate: Callable, loss_fn: Callable, evaluate: Callable | None,
        spec: LoopSpec) -> dict:
    """Train ``model`` in place; returns training info. The best evaluated weights are loaded at the end.

    source: len() = batches per epoch (all processes), .epoch(e) -> iterator of raw batches.
    collate(raw) -> dict of tensors; loss_fn(model, batch) -> (loss, parts dict);
    evaluate(unwrapped_model) -> metrics dict (must hold spec.metric) or None.
    """
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    world, rank = accelerator.num_processes, accelerator.process_index
    per_proc = len(source) // world
    steps_per_epoch = per_proc // spec.grad_accum
    if steps_per_epoch < 1:
        raise InputError(
            f"{len(source)} batches per epoch cannot make one optimizer step on each of {world} process(es) "
            f"with grad_accum={spec.grad_accum}; give more rows or lower batch_size/grad_accum"
        )
    total = spec.max_steps or max(1, math.ceil(spec.epochs * steps_per_epoch))
    eval_every = spec.eval_every or steps_per_epoch
    optimizer = torch.optim.AdamW(
        param_groups(model, spec.weight_decay, spec.lr, spec.head_params, spec.head_lr), lr=spec.lr)
    scheduler = get_scheduler(
        {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[spec.schedule],
        optimizer, num_warmup_steps=int(spec.warmup_ratio * total), num_training_steps=total,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    ckpt_root = spec.out_dir / "checkpoints"
    best_path = ckpt_root / "best.safetensors"
    jsonl = spec.out_dir / "metrics.jsonl"
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "best_step": None, "bad_evals": 0,
             "history": []}
    existing = complete_checkpoints(ckpt_root)
    if spec.resume and existing:
        accelerator.load_state(str(existing[-1]))
        state = json.loads((existing[-1] / STATE_FILE).read_text())
        log.info("resuming from %s (step %d of %d)", existing[-1], state["step"], total)
    elif accelerator.is_main_process:
        if spec.resume:
            log.warning("--resume: no complete checkpoint under %s; starting from the beginning", ckpt_root)
        shutil.rmtree(ckpt_root, ignore_errors=True)
        jsonl.unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        # Keep only the log lines up to the checkpoint we resumed from.
        lines = jsonl.read_text().splitlines() if jsonl.is_file() else []
        jsonl.write_text("".join(ln + "\n" for ln in lines if json.loads(ln)["step"] <= state["step"]))
    accelerator.init_trackers(spec.desc)

    def emit(record: dict) -> None:
        if accelerator.is_main_process:
            with open(jsonl, "a") as f:
                f.write(json.dumps(record) + "\n")
            accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])

    def checkpoint(epoch: int, batch_in_epoch: int) -> None:
        tmp = ckpt_root / f".step-{state['step']:08d}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_json_atomic(tmp / STATE_FILE, {**state, "epoch": epoch, "batch_in_epoch": batch_in_epoch})
            final = ckpt_root / f"step-{state['step']:08d}"
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in complete_checkpoints(ckpt_root)[: -spec.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    resumed_from = state["step"] or None
    model.train()
    bar = tqdm(total=total, initial=state["step"], desc=spec.desc, unit="step",
               disable=not accelerator.is_local_main_process)
    epoch, skip, stop = state["epoch"], state["batch_in_epoch"], False
    window, parts = [], {}
    while state["step"] < total and not stop:
        usable = steps_per_epoch * spec.grad_accum  # micro-batches this process runs per epoch
        for gi, raw in enumerate(source.epoch(epoch)):
            local = gi // world
            if local >= usable:
                break
            if gi % world != rank or local < skip:
                continue
            batch = {k: v.to(accelerator.device) for k, v in collate(raw).items()}
            sync = (local + 1) % spec.grad_accum == 0
            # Between optimizer steps DDP need not all-reduce gradients.
            with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                loss, parts = loss_fn(model, batch)
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
            bar.update(1)
            bar.set_postfix(loss=f"{window[-1]:.4f}")
            step = state["step"]
            if step % spec.log_every == 0 or step == total:
                emit({"step": step, "epoch": epoch, "loss": sum(window) / len(window),
                      "lr": scheduler.get_last_lr()[0], **{k: v for k, v in parts.items() if v == v}})
                window = []
            if evaluate is not None and (step % eval_every == 0 or step == total):
                stop = _evaluate(accelerator, model, evaluate, spec, state, best_path, emit)
            if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < total and not stop:
                checkpoint(epoch, local + 1)
            if step >= total or stop:
                break
        epoch, skip = epoch + 1, 0
    bar.close()
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    if state["best_step"] is not None and best_path.is_file():
        from safetensors.torch import load_file

        unwrapped.load_state_dict(load_file(str(best_path)))
    unwrapped.eval()  # the caller ends training (end_training also tears down the process group)
    return {"steps": state["step"], "total_steps": total, "steps_per_epoch": steps_per_epoch,
            "epochs_run": round(state["step"] / steps_per_epoch, 3), "best_step": state["best_step"],
            "best": state["best"], "stopped_early": stop, "history": state["history"], "resumed_from": resumed_from,
            "processes": world, "mixed_precision": accelerator.mixed_precision}


def _evaluate(accelerator, model, evaluate, spec, state, best_path, emit) -> bool:
    """Evaluate (every process, same result), keep the best weights; True when patience runs out."""
    unwrapped = accelerator.unwrap_model(model)
    metrics = evaluate(unwrapped)
    value = metrics[spec.metric]
    improved = state["best"] is None or value > state["best"]
    if improved:
        state.update(best=value, best_step=state["step"], bad_evals=0)
        if accelerator.is_main_process:
            _save_weights(unwrapped, best_path)
    else:
        state["bad_evals"] += 1
    record = {"step": state["step"], **{f"eval_{k}": v for k, v in metrics.items()}}
    state["history"].append(record)
    emit(record)
    accelerator.wait_for_everyone()
    model.train()
    return bool(spec.patience and state["bad_evals"] >= spec.patience)
