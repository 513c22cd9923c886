"""Checkpoints and the metrics log of the training loop (zuoxiao.core.loop).

`save_state` writes into `checkpoints/.step-N.tmp`; only after it and `trainer_state.json` are complete is
the directory renamed to `checkpoints/step-N`. `--resume` takes the newest `step-N` holding
`trainer_state.json`, so a crash mid-save never leaves a checkpoint that looks complete. A save that
runs out of disk removes its temp dir (the space goes back, the rerun starts clean) and raises DiskFull
naming the directory and the bytes the checkpoint needs: torch.save reports a full disk only as
"unexpected pos ..." or "file write failed", so a failed save is judged by the free space left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from zuoxiao.core.errors import disk_full, free_bytes, is_disk_full
from zuoxiao.core.shards import write_json_atomic

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"


def complete_checkpoints(root: Path) -> list[Path]:
    """step-N dirs with a trainer_state.json, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def state_bytes(*objects) -> int:
    """Bytes of the tensors a checkpoint of these (models, optimizers: anything with state_dict) holds."""
    import torch

    def walk(x) -> int:
        if isinstance(x, torch.Tensor):
            return x.numel() * x.element_size()
        if isinstance(x, dict):
            return sum(walk(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return sum(walk(v) for v in x)
        return 0

    return sum(walk(o.state_dict()) for o in objects if o is not None)


def _raise_if_disk_full(err: BaseException, path: Path, needed: int) -> None:
    """After a failed save into ``path`` (already removed): DiskFull when the disk is what failed it."""
    free = free_bytes(path)
    if is_disk_full(err) or (free is not None and free < needed):
        raise disk_full(path, needed) from err


def _save_weights(model, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    except Exception as err:
        tmp.unlink(missing_ok=True)
        _raise_if_disk_full(err, path, state_bytes(model))
        raise
    os.replace(tmp, path)


class Checkpointer:
    """Resumable checkpoints under <out_dir>/checkpoints and the best evaluated weights.

    save(): `save_state` into `.step-N.tmp`, then trainer_state.json, then rename to `step-N`; only the
    newest ``keep`` survive. restore(): the newest complete `step-N`, or a clean slate.
    """

    def __init__(self, accelerator, out_dir: Path, keep: int, model=None, optimizer=None):
        self.acc, self.root, self.keep = accelerator, out_dir / "checkpoints", keep
        self.best_path = self.root / "best.safetensors"
        self.sized = (model, optimizer)  # what a checkpoint holds: for the space a full disk lacked

    def restore(self, resume: bool, total: int, fresh_state: dict) -> dict:
        existing = complete_checkpoints(self.root)
        if resume and existing:
            self.acc.load_state(str(existing[-1]))
            state = json.loads((existing[-1] / STATE_FILE).read_text())
            log.info("resuming from %s (step %d of %d)", existing[-1], state["step"], total)
            return state
        if self.acc.is_main_process:
            if resume:
                log.warning("--resume: no complete checkpoint under %s; starting from the beginning", self.root)
            shutil.rmtree(self.root, ignore_errors=True)
        return fresh_state

    def save(self, state: dict, epoch: int, batch_in_epoch: int) -> None:
        tmp = self.root / f".step-{state['step']:08d}.tmp"
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        self.acc.wait_for_everyone()
        try:
            self.acc.save_state(str(tmp))
            if self.acc.is_main_process:
                write_json_atomic(tmp / STATE_FILE, {**state, "epoch": epoch, "batch_in_epoch": batch_in_epoch})
        except Exception as err:
            shutil.rmtree(tmp, ignore_errors=True)
            _raise_if_disk_full(err, tmp, state_bytes(*self.sized))
            raise
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            final = self.root / f"step-{state['step']:08d}"
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in complete_checkpoints(self.root)[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()

    def save_best(self, model) -> None:
        if self.acc.is_main_process:
            _save_weights(model, self.best_path)

    def load_best(self, model) -> None:
        from safetensors.torch import load_file

        if self.best_path.is_file():
            model.load_state_dict(load_file(str(self.best_path)))


class MetricsLog:
    """metrics.jsonl (one line per log step / evaluation) + the Accelerate trackers, main process only."""

    def __init__(self, accelerator, out_dir: Path, resumed_step: int):
        self.acc, self.path = accelerator, out_dir / "metrics.jsonl"
        if accelerator.is_main_process:  # keep only the lines up to the checkpoint we resumed from
            lines = self.path.read_text().splitlines() if self.path.is_file() and resumed_step else []
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(ln + "\n" for ln in lines if json.loads(ln)["step"] <= resumed_step))

    def emit(self, record: dict) -> None:
        if self.acc.is_main_process:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            self.acc.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])
