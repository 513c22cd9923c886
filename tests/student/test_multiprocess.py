"""`zuoxiao train` on 2 processes (CPU, gloo) against 1 process at the same global batch.

`accelerate launch --multi_gpu --num_processes 2` is Accelerate's torchrun launcher; on a machine without
GPUs its processes get a gloo process group (DistributedType.MULTI_CPU). (`accelerate launch --cpu
--num_processes 2` instead starts ONE process and expects mpirun for more.) Each rank reads its own
share of the shards (zuoxiao.core.loop.rank_batches: global batch g goes to rank g % 2) and DDP averages
the two ranks' gradients, so 2 processes x batch 8 is one optimizer step over the same 16 rows as
1 process x batch 8 x grad_accum 2, in the same order.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from tests.student.conftest import make_cfg, write_shards

pytestmark = pytest.mark.slow  # three CLI processes, each importing torch and transformers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(tmp_path, name: str, cfg, shards, launcher: list[str]) -> dict:
    cfg_path = tmp_path / f"{name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    out = tmp_path / name
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "-m", "zuoxiao.cli", "train", str(cfg_path), "--shards", str(shards),
                           "--output", str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return {"metrics": json.loads((out / "metrics.json").read_text()),
            "log": [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()], "out": out}


def _without_dropout(teacher, dst):
    """The tiny teacher with dropout 0: every rank seeds the same RNG, so with dropout the 2 ranks draw the
    masks that 1 process draws for one batch, not for two, and the runs would differ by more than noise."""
    import shutil

    shutil.copytree(teacher, dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_two_processes_match_one_process_at_the_same_global_batch(tmp_path, tiny_teacher, toy_data):
    import numpy as np

    tiny_teacher = _without_dropout(tiny_teacher, tmp_path / "teacher")  # the student copies its config
    rows = toy_data["rows"]
    logits = np.array([[-2.0, 2.0] if r["y"] else [2.0, -2.0] for r in rows])
    toy_shards = write_shards(tmp_path / "label", rows, logits, ["neg", "pos"], str(tiny_teacher), gold_every=2)
    common = {"checkpoint_every": 2, "eval_every": 2}
    one = make_cfg(tiny_teacher, toy_data, optim={"batch_size": 8, "grad_accum": 2, "max_steps": 4, "lr": 1e-3,
                                                  "warmup_ratio": 0.0}, **common)
    two = make_cfg(tiny_teacher, toy_data, optim={"batch_size": 8, "grad_accum": 1, "max_steps": 4, "lr": 1e-3,
                                                  "warmup_ratio": 0.0}, **common)
    a = _train(tmp_path, "one", one, toy_shards, [sys.executable])
    b = _train(tmp_path, "two", two, toy_shards,
               [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_ip", "127.0.0.1", "--main_process_port", str(_free_port())])
    assert a["metrics"]["train"]["processes"] == 1 and b["metrics"]["train"]["processes"] == 2
    assert a["metrics"]["train"]["steps"] == b["metrics"]["train"]["steps"] == 4
    # the same optimizer steps over the same rows: losses and held-out metrics agree to float noise
    # (gloo sums the two ranks' gradients in another order than one process accumulating them)
    losses_a = [r["loss"] for r in a["log"] if "loss" in r]
    losses_b = [r["loss"] for r in b["log"] if "loss" in r]
    assert len(losses_a) == len(losses_b) > 0
    for x, y in zip(losses_a, losses_b, strict=True):
        assert abs(x - y) <= 1e-4 * max(1.0, abs(x)), (losses_a, losses_b)
    for key in ("accuracy", "macro_f1", "agreement"):
        assert abs(a["metrics"]["student"][key] - b["metrics"]["student"][key]) <= 1e-6, key
    evals_a = [(r["step"], r["eval_accuracy"]) for r in a["log"] if "eval_accuracy" in r]
    assert evals_a == [(r["step"], r["eval_accuracy"]) for r in b["log"] if "eval_accuracy" in r]
    from safetensors.torch import load_file

    wa, wb = load_file(str(a["out"] / "model.safetensors")), load_file(str(b["out"] / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-5
    # one model and one set of checkpoints, written by rank 0
    ckpts = sorted(p.name for p in (b["out"] / "checkpoints").iterdir())
    assert ckpts == sorted(p.name for p in (a["out"] / "checkpoints").iterdir())
    assert (b["out"] / "model.safetensors").is_file()
