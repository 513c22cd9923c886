"""ONNX export of a sequence classifier, checked against PyTorch.

Graph contract (what Bundle, ONNX Runtime and Optimum's ORTModelForSequenceClassification expect):
inputs ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` for BERT), int64 [batch, sequence] with
dynamic batch and sequence; output ``logits`` float32 [batch, num_labels].
The TorchScript exporter (dynamo=False) is used: the dynamo one needs onnxscript, which is not installed.

The graph is traced with eager attention and an additive [batch, 1, 1, sequence] mask built from
``attention_mask`` in four ops. transformers' own mask builder (SDPA, bidirectional) exports as ~110
extra nodes (Range, And, IsNaN, Where over [batch, 1, seq, seq]) that every call then runs: on a 2-layer
student that is 288 -> 174 nodes and 4-9% of batch-1 latency (docs/compress.md). Models whose forward
does not take a 4-D mask fall back to the plain trace; both are checked against PyTorch.

A static student (student/static.py) has no attention: its plain trace is already the whole graph,
Gather (token table) -> Mul by the mask -> ReduceSum / token count -> the head's Gemm(s), with the same
inputs (token_type_ids taken and unused) and output as a transformer student's graph.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


class _LogitsOnly(nn.Module):
    """forward(input_ids, attention_mask[, token_type_ids]) -> logits, positional for the exporter.

    additive_mask: pass attention_mask [B, T] (1 = token) as the 4-D float mask [B, 1, 1, T] that eager
    attention adds to its scores (0 where attended, the dtype's minimum where padded).
    """

    def __init__(self, model, names: list[str], additive_mask: bool = False):
        super().__init__()
        self.model, self.names, self.additive_mask = model, names, additive_mask

    def forward(self, *tensors):
        kw = dict(zip(self.names, tensors, strict=True))
        if self.additive_mask:
            dtype = next(self.model.parameters()).dtype
            keep = kw["attention_mask"].unsqueeze(1).unsqueeze(2).to(dtype)  # [B, 1, 1, T]
            kw["attention_mask"] = (1.0 - keep) * torch.finfo(dtype).min
        return self.model(**kw).logits


def input_names(tokenizer, model) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names and getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


def export_onnx(model, tokenizer, path: str | Path, opset: int = 17) -> Path:
    """Write ``path`` (fp32): the short-mask eager graph when it matches PyTorch on a padded batch,
    else the plain trace. The model is left in eval mode with its attention implementation unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    names = input_names(tokenizer, model)
    enc = tokenizer(["a short example", "a somewhat longer example sentence"], padding="max_length",
                    max_length=16, truncation=True, return_tensors="pt")
    args = tuple(enc[n] for n in names)
    from zuoxiao.student.static import is_static

    if "attention_mask" in names and not is_static(model):
        try:
            with _eager_attention(model):
                _trace(_LogitsOnly(model, names, additive_mask=True), args, names, path, opset)
            with torch.no_grad():
                ref = _LogitsOnly(model, names)(*args).numpy()
            got = onnx_session(path).run(["logits"], {n: a.numpy() for n, a in zip(names, args, strict=True)})[0]
            diff = float(np.abs(ref - got).max())
            if diff < 1e-4:
                return path
            log.info("short-mask export differs from PyTorch by %.2e; using the plain trace", diff)
        except Exception as err:  # a forward that rejects a 4-D mask: the plain trace below still works
            log.info("short-mask export failed (%s); using the plain trace", err)
    _trace(_LogitsOnly(model, names), args, names, path, opset)
    _keep_unused_inputs(path, names)
    return path


def _keep_unused_inputs(path: Path, names: list[str]) -> None:
    """Put back graph inputs the tracer dropped because nothing reads them (a static student ignores
    token_type_ids): code that feeds a transformer bundle's three inputs then runs this graph unchanged."""
    import onnx

    model = onnx.load(str(path))
    present = {i.name for i in model.graph.input}
    missing = [n for n in names if n not in present]
    if not missing:
        return
    for name in missing:
        model.graph.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64,
                                                                    ["batch", "sequence"]))
    onnx.save(model, str(path))


@contextmanager
def _eager_attention(model):
    old = model.config._attn_implementation
    model.config._attn_implementation = "eager"
    try:
        yield
    finally:
        model.config._attn_implementation = old


def _trace(module: nn.Module, args: tuple, names: list[str], path: Path, opset: int) -> None:
    module.eval()  # the exporter restores the wrapper's mode afterwards: a fresh (training) one put the model in train()
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about python control flow on shapes
        torch.onnx.export(module, args, str(path), input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True)


def onnx_session(path: str | Path, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_logits(session, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Logits [N, C] from an ONNX Runtime session, tokenised like the PyTorch path."""
    wanted = {i.name for i in session.get_inputs()}
    out = []
    for s in range(0, len(texts), batch_size):
        enc = tokenizer(texts[s : s + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="np")
        feed = {k: v.astype(np.int64) for k, v in enc.items() if k in wanted}
        out.append(session.run(["logits"], feed)[0])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def max_abs_diff(model, tokenizer, onnx_path: str | Path, texts: list[str], max_length: int) -> float:
    """max |logit_onnx - logit_torch| over ``texts``: the export check."""
    from zuoxiao.core.evaluate import predict_logits

    ref = predict_logits(model, tokenizer, texts, max_length)
    got = onnx_logits(onnx_session(onnx_path), tokenizer, texts, max_length)
    return float(np.abs(ref - got).max())
