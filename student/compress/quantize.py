"""int8 quantisation: ONNX Runtime dynamic (what the bundle ships) and torch.ao dynamic (for comparison).

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
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize_onnx(src: str | Path, dst: str | Path, per_channel: bool = True,
                  reduce_range: bool | str = "auto") -> dict:
    """Dynamic int8 (QInt8 weights, activations quantised at run time) of every MatMul/Gemm."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    rr = (not has_vnni()) if reduce_range == "auto" else bool(reduce_range)
    with tempfile.TemporaryDirectory() as tmp:
        model_in = src
        try:  # shape inference + constant folding first, as ORT recommends; symbolic shapes fail on this graph
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            model_in = pre
        except Exception as err:  # pre-processing is an optimisation; quantising the raw graph still works
            log.warning("quant_pre_process failed (%s); quantising the exported graph as is", err)
        tmp_out = Path(tmp) / "q.onnx"
        quantize_dynamic(str(model_in), str(tmp_out), per_channel=per_channel, reduce_range=rr,
                         weight_type=QuantType.QInt8)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp_out), dst)
    return {"per_channel": per_channel, "reduce_range": rr, "vnni": has_vnni(),
            "fp32_bytes": src.stat().st_size, "int8_bytes": dst.stat().st_size}


def quantize_torch(model: nn.Module) -> nn.Module:
    """torch.ao dynamic int8 of every nn.Linear (deprecated in torch 2.13 but working; CPU only)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8)
