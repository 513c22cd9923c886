"""CPU latency: p50/p95 milliseconds of one forward pass, PyTorch or ONNX Runtime, fixed thread count.

Inputs are synthetic rows of exactly ``seq_len`` tokens (random in-vocabulary ids, no padding), so every
model is timed on the same work. Threads are pinned (default 1) because the machine is shared and
multi-thread timings there are mostly noise.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch


def percentiles(times_s: list[float]) -> dict:
    ms = np.asarray(times_s) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3)}


def time_fn(fn, runs: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return percentiles(times)


def synthetic_inputs(vocab_size: int, batch: int, seq_len: int, names: list[str], seed: int = 0) -> dict:
    """int64 numpy arrays [batch, seq_len]; ids avoid the first 100 (special tokens live there)."""
    rng = np.random.default_rng(seed)
    lo = min(100, vocab_size - 1)
    feed = {"input_ids": rng.integers(lo, vocab_size, (batch, seq_len), dtype=np.int64),
            "attention_mask": np.ones((batch, seq_len), np.int64),
            "token_type_ids": np.zeros((batch, seq_len), np.int64)}
    return {n: feed[n] for n in names}


@contextmanager
def torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def torch_runner(model, feed: dict):
    tensors = {k: torch.from_numpy(v) for k, v in feed.items()}

    def run():
        with torch.inference_mode():
            model(**tensors)
    return run


def onnx_runner(session, feed: dict):
    return lambda: session.run(["logits"], feed)


def measure(kind: str, model_or_path, vocab_size: int, names: list[str], *, seq_len: int = 64,
            batches=(1, 32), runs: int = 30, threads: int = 1) -> dict:
    """{"b1": {"p50", "p95"}, "b32": {...}} for a torch model (kind="torch") or an ONNX file ("onnx")."""
    out = {}
    if kind == "onnx":
        from zuoxiao.student.compress.export import onnx_session

        session = onnx_session(model_or_path, threads=threads)
        for b in batches:
            out[f"b{b}"] = time_fn(onnx_runner(session, synthetic_inputs(vocab_size, b, seq_len, names)),
                                   runs=runs if b == 1 else max(3, runs // 3))
        return out
    model_or_path.eval()
    with torch_threads(threads):
        for b in batches:
            out[f"b{b}"] = time_fn(torch_runner(model_or_path, synthetic_inputs(vocab_size, b, seq_len, names)),
                                   runs=runs if b == 1 else max(3, runs // 3))
    return out
