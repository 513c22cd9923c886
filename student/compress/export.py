"""ONNX export of a sequence classifier, checked against PyTorch.

Graph contract (what Bundle, ONNX Runtime and Optimum's ORTModelForSequenceClassification expect):
inputs ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` for BERT), int64 [batch, sequence] with
dynamic batch and sequence; output ``logits`` float32 [batch, num_labels].
The TorchScript exporter (dynamo=False) is used: the dynamo one needs onnxscript, which is not installed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


class _LogitsOnly(nn.Module):
    """forward(input_ids, attention_mask[, token_type_ids]) -> logits, positional for the exporter."""

    def __init__(self, model, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors):
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits


def input_names(tokenizer, model) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names and getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


def export_onnx(model, tokenizer, path: str | Path, opset: int = 17) -> Path:
    """Write ``path`` (fp32). The model is left in eval mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    names = input_names(tokenizer, model)
    enc = tokenizer(["a short example", "a somewhat longer example sentence"], padding="max_length",
                    max_length=16, truncation=True, return_tensors="pt")
    args = tuple(enc[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about python control flow on shapes
        torch.onnx.export(_LogitsOnly(model, names), args, str(path), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    return path


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
