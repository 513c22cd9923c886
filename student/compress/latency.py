"""CPU latency: p50/p95 milliseconds of one forward pass, PyTorch or ONNX Runtime, fixed thread count.

Inputs are synthetic rows of exactly ``seq_len`` tokens (random in-vocabulary ids, no padding), so every
model is timed on the same work. With a tokenizer and sample texts, batch 1 is also timed end to end
(``b1_with_tokenizer``): a real text cut to exactly ``seq_len`` tokens is tokenised and run, and the
model-only part of the same runs is reported next to it, so the tokenizer's share is visible. Threads are pinned (default 1) because the machine is shared and
multi-thread timings there are mostly noise.
"""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

# what decides int8/fp32 kernel speed on x86 and Arm; a latency number is only comparable with its CPU
_SIMD = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512f", "avx2", "asimddp", "asimd")
# x86 int8 dot-product instructions: without them ORT's u8s8 kernels need 7-bit weights (quantize.has_vnni)
X86_INT8_DOT = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_info(cpuinfo: str | None = None) -> dict:
    """{"cpu", "arch", "cores", "simd": [...], "int8_dot_product": bool}: the machine a latency was measured on.

    ``int8_dot_product`` (VNNI/AMX on x86, dot-product on Arm) is what separates fast int8 CPUs: without it
    ONNX Runtime's u8s8 kernels use 7-bit weights (reduce_range) and run slower (docs/compress.md).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                 if line.lower().startswith(("model name", "hardware"))), platform.processor() or "unknown")
    flags = set()
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.split(":", 1)[1].split())
    simd = [f for f in _SIMD if f in flags]
    return {"cpu": name, "arch": platform.machine(), "cores": os.cpu_count(), "simd": simd,
            "int8_dot_product": any(f in flags for f in (*X86_INT8_DOT, "asimddp"))}


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


def text_of_length(tokenizer, texts: list[str], seq_len: int) -> str:
    """Sample texts joined until they tokenise to >= seq_len tokens (cut to seq_len when timed)."""
    if not texts:
        raise ValueError("timing with the tokenizer needs at least one sample text")
    parts, i = [], 0
    while len(tokenizer(" ".join(parts))["input_ids"]) < seq_len and i < 10 * seq_len:
        parts.append(texts[i % len(texts)])
        i += 1
    return " ".join(parts)


def time_with_tokenizer(run_model, tokenizer, text: str, seq_len: int, names: list[str], runs: int,
                        warmup: int = 3) -> dict:
    """Tokenise one text (truncated to seq_len) then run the model, timing both halves of every run.

    ``run_model(feed)`` takes int64 numpy arrays [1, seq_len]. Total and model-only percentiles come from
    the same runs, so total >= model holds run by run (the tokenizer's cost is what separates them).
    """
    total, model = [], []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        enc = tokenizer([text], truncation=True, max_length=seq_len, return_tensors="np")
        feed = {n: enc[n].astype(np.int64) if n in enc else np.zeros_like(enc["input_ids"], np.int64)
                for n in names}
        t1 = time.perf_counter()
        run_model(feed)
        t2 = time.perf_counter()
        if i >= warmup:
            total.append(t2 - t0)
            model.append(t2 - t1)
    out = percentiles(total)
    out["model_p50"] = percentiles(model)["p50"]
    out["tokens"] = int(enc["input_ids"].shape[1])
    return out


def measure(kind: str, model_or_path, vocab_size: int, names: list[str], *, seq_len: int = 64,
            batches=(1, 32), runs: int = 30, threads: int = 1, tokenizer=None, texts: list[str] | None = None) -> dict:
    """{"b1": {"p50", "p95"}, "b32": {...}} for a torch model (kind="torch") or an ONNX file ("onnx");
    plus "b1_with_tokenizer" {"p50", "p95", "model_p50", "tokens"} when ``tokenizer`` and ``texts`` are given."""
    out = {}
    text = text_of_length(tokenizer, texts, seq_len) if tokenizer is not None and texts else None
    if kind == "onnx":
        from zuoxiao.student.compress.export import onnx_session

        session = onnx_session(model_or_path, threads=threads)
        for b in batches:
            out[f"b{b}"] = time_fn(onnx_runner(session, synthetic_inputs(vocab_size, b, seq_len, names)),
                                   runs=runs if b == 1 else max(3, runs // 3))
        if text is not None:
            out["b1_with_tokenizer"] = time_with_tokenizer(lambda f: session.run(["logits"], f), tokenizer, text,
                                                           seq_len, names, runs)
        return out
    model_or_path.eval()
    with torch_threads(threads):
        for b in batches:
            out[f"b{b}"] = time_fn(torch_runner(model_or_path, synthetic_inputs(vocab_size, b, seq_len, names)),
                                   runs=runs if b == 1 else max(3, runs // 3))
        if text is not None:
            def run(feed):
                with torch.inference_mode():
                    model_or_path(**{k: torch.from_numpy(v) for k, v in feed.items()})
            out["b1_with_tokenizer"] = time_with_tokenizer(run, tokenizer, text, seq_len, names, runs)
    return out
