"""int8 quantisation: ONNX Runtime dynamic (the default the bundle ships) or static (QDQ, calibrated on
transfer rows), ONNX Runtime graph optimisation saved to disk, and torch.ao dynamic (for comparison).

Measured here (compress notes): ORT dynamic per-channel int8 was the smallest and fastest path for
MiniLM on a 2-core AVX2 CPU; static S8S8 was slower than fp32. On CPUs without VNNI the u8s8 int8
kernels can saturate int16 intermediate sums, so 7-bit weights (``reduce_range``) are used there.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from torch import nn

log = logging.getLogger(__name__)


def has_vnni() -> bool:
    """True when /proc/cpuinfo lists AVX512-VNNI, AVX-VNNI or AMX (int8 dot products without overflow)."""
    from zuoxiao.student.compress.latency import X86_INT8_DOT, cpu_info

    return any(f in cpu_info()["simd"] for f in X86_INT8_DOT)


def quantize_onnx(src: str | Path, dst: str | Path, per_channel: bool = True,
                  reduce_range: bool | str = "auto", embedding_bits: int = 8, vocab_size: int | None = None,
                  residual_sum: bool = True) -> dict:
    """Dynamic int8 (QInt8 weights, activations quantised at run time) of every MatMul/Gemm and of the
    embedding Gathers; with ``embedding_bits=4`` the word-embedding table (``vocab_size`` rows) is stored
    in 4 bits per value instead (nbit.py) and int8 leaves it alone. ``residual_sum``: see residual_adds_as_sum."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    rr = (not has_vnni()) if reduce_range == "auto" else bool(reduce_range)
    with tempfile.TemporaryDirectory() as tmp:
        model_in, info = _prepare(src, Path(tmp), embedding_bits, vocab_size)
        tmp_out = Path(tmp) / "q.onnx"
        quantize_dynamic(str(model_in), str(tmp_out), per_channel=per_channel, reduce_range=rr,
                         weight_type=QuantType.QInt8, nodes_to_exclude=info.pop("nodes", []))
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp_out), dst)
    if residual_sum:
        info["residual_sums"] = residual_adds_as_sum(dst)
    return {"mode": "dynamic", "per_channel": per_channel, "reduce_range": rr, "vnni": has_vnni(),
            "embedding_bits": embedding_bits, **info,
            "fp32_bytes": src.stat().st_size, "int8_bytes": dst.stat().st_size}


class _Calibration:
    """onnxruntime CalibrationDataReader over tokenised texts: one row per get_next() (feeds [1, L])."""

    def __init__(self, tokenizer, texts: list[str], names: list[str], max_length: int, pad: bool = False):
        import numpy as np

        self._feeds = []
        for t in texts:  # pad: the histogram calibrators stack every row's tensors, so lengths must match
            enc = tokenizer([t], truncation=True, max_length=max_length, return_tensors="np",
                            padding="max_length" if pad else False)
            self._feeds.append({n: enc[n].astype(np.int64) for n in names if n in enc})
        self._it = iter(self._feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._feeds)


def quantize_onnx_static(src: str | Path, dst: str | Path, tokenizer, texts: list[str], names: list[str],
                         max_length: int, per_channel: bool = True, reduce_range: bool | str = "auto",
                         method: str = "minmax", activation_type: str = "uint8", embedding_bits: int = 8,
                         vocab_size: int | None = None, residual_sum: bool = True) -> dict:
    """Static int8 in QDQ format: weights per channel, activation ranges calibrated on ``texts``.

    Only MatMul/Gemm (and the embedding Gather) are quantised: they hold the weights; quantising
    LayerNorm/Softmax/Add inputs costs accuracy and buys nothing on CPU.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not texts:
        raise ValueError("static quantisation needs calibration texts; the transfer set is empty")
    src, dst = Path(src), Path(dst)
    rr = (not has_vnni()) if reduce_range == "auto" else bool(reduce_range)
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    act = QuantType.QUInt8 if activation_type == "uint8" else QuantType.QInt8
    with tempfile.TemporaryDirectory() as tmp:
        model_in, info = _prepare(src, Path(tmp), embedding_bits, vocab_size)
        tmp_out = Path(tmp) / "q.onnx"
        reader = _Calibration(tokenizer, texts, names, max_length, pad=method != "minmax")
        quantize_static(str(model_in), str(tmp_out), reader,
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul", "Gemm", "Gather"],
                        per_channel=per_channel, reduce_range=rr, activation_type=act,
                        weight_type=QuantType.QInt8, calibrate_method=calib, nodes_to_exclude=info.pop("nodes", []),
                        extra_options={"CalibTensorRangeSymmetric": activation_type == "int8"})
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp_out), dst)
    if residual_sum:
        info["residual_sums"] = residual_adds_as_sum(dst)
    return {"mode": "static", "format": "QDQ", "per_channel": per_channel, "reduce_range": rr, "vnni": has_vnni(),
            "calibration_rows": len(texts), "calibration_method": method, "activation_type": activation_type,
            "embedding_bits": embedding_bits, **info, "fp32_bytes": src.stat().st_size, "int8_bytes": dst.stat().st_size}


def residual_adds_as_sum(path: str | Path) -> int:
    """Rewrite, in place, every Add of two computed tensors that feeds a LayerNormalization (the residual
    connection before each LayerNorm) as Sum, the standard op that adds the same values. Returns how many.

    Why: ONNX Runtime fuses Add + LayerNormalization into com.microsoft SkipLayerNormalization when it
    loads a graph. On an AVX2 CPU (ORT 1.32) that kernel took ~170 us where Add + LayerNormalization took
    ~35 us at 64 tokens x 384, so the int8 student ran 16% faster at 64 tokens (12% at 16) with the
    fusion prevented (docs/compress.md). The fusion only matches an Add, so a Sum keeps the two ops apart
    in every runtime, with no session option for app teams to set. Adds with a constant input (biases)
    are left alone.
    """
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    constants = {i.name for i in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    count = 0
    for ln in graph.node:
        if ln.op_type != "LayerNormalization":
            continue
        add = producer.get(ln.input[0])
        if add is not None and add.op_type == "Add" and not constants & set(add.input):
            add.op_type = "Sum"
            count += 1
    if count:
        onnx.save(model, str(path))
    return count


def optimize_onnx(src: str | Path, dst: str | Path, level: str = "extended") -> dict:
    """Save ONNX Runtime's optimised graph (constant folding, fusions) to ``dst``.

    ONNX Runtime applies the same optimisations when it opens a graph, so the saved graph mostly saves
    session start-up; "extended" fuses into com.microsoft contrib ops, which only ONNX Runtime runs.
    """
    import time

    import onnxruntime as ort

    src, dst = Path(src), Path(dst)
    lv = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = lv
    opts.log_severity_level = 3
    tmp = dst.with_suffix(".opt.onnx") if src == dst else dst
    opts.optimized_model_filepath = str(tmp)
    t = time.perf_counter()
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t
    before = src.stat().st_size
    if tmp != dst:
        shutil.move(str(tmp), dst)
    return {"optimize": level, "bytes_before": before, "bytes_after": dst.stat().st_size,
            "optimizing_load_s": round(load_s, 3)}


def _prepare(src: Path, tmp: Path, embedding_bits: int, vocab_size: int | None) -> tuple[Path, dict]:
    """(graph to quantise, what the 4-bit rewrite did): the 4-bit word table first when asked (nbit.py;
    its "nodes" are the ones int8 must leave alone), then ORT's pre-processing."""
    info = {}
    if embedding_bits == 4:
        from zuoxiao.student.compress.nbit import quantize_embeddings_4bit

        info = quantize_embeddings_4bit(src, tmp / "q4.onnx", vocab_size)
        src = tmp / "q4.onnx"
    return _pre_process(src, tmp), info


def _pre_process(src: Path, tmp: Path) -> Path:
    try:  # shape inference + constant folding first, as ORT recommends; symbolic shapes fail on this graph
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = tmp / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        return pre
    except Exception as err:  # pre-processing is an optimisation; quantising the raw graph still works
        log.warning("quant_pre_process failed (%s); quantising the exported graph as is", err)
        return src


def quantize_torch(model: nn.Module) -> nn.Module:
    """torch.ao dynamic int8 of every nn.Linear (deprecated in torch 2.13 but working; CPU only)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8)
