"""The soft-label codec of SHARD_SCHEMA: teacher logits -> stored columns (encode) and back (decode).

For C <= max_full_classes every raw logit is kept (float32), so the student can use any temperature.
Above it only the top-k classes are kept as log-probabilities at T=1 plus the residual mass
1 - sum(p_topk): many-class tasks stay small and the dropped tail is still accounted for.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.shards import SHARD_SCHEMA


def storage_kind(num_classes: int, max_full_classes: int) -> str:
    """'full' (all logits) or 'topk' (top-k log-probs + residual)."""
    return "full" if num_classes <= max_full_classes else "topk"


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (stable: subtract the row max). [B, C] -> [B, C]."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def soft_label_columns(logits: np.ndarray, max_full_classes: int, top_k: int) -> list[dict]:
    """One dict per row with teacher_argmax, confidence, entropy, residual_mass and either `logits`
    (full storage) or `topk_indices` / `topk_logprobs` (top-k storage; the other columns are None).

    logits: [B, C] float32 raw teacher outputs.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [batch, classes], got shape {logits.shape}")
    if not np.isfinite(logits).all():
        # The label pipeline dead-letters such rows first (pipelines.validate.RejectNonFinite); a NaN
        # that got here would become a NaN soft label, so refuse it loudly rather than store it.
        bad = np.flatnonzero(~np.isfinite(logits).all(axis=-1)).tolist()
        raise ValueError(f"teacher logits of rows {bad[:10]} are not finite (NaN/inf); they cannot be soft labels")
    batch, num_classes = logits.shape
    logp = log_softmax(logits)  # [B, C] float64
    probs = np.exp(logp)
    argmax = logits.argmax(axis=-1)  # ties -> lowest index, same as torch
    confidence = probs.max(axis=-1)
    # H = -sum p log p; p log p -> 0 as p -> 0, and exp(logp) underflows to exactly 0 there.
    entropy = -(probs * logp).sum(axis=-1)
    full = storage_kind(num_classes, max_full_classes) == "full"
    rows = []
    if full:
        for i in range(batch):
            rows.append({
                "teacher_argmax": int(argmax[i]),
                "confidence": float(np.float32(confidence[i])),
                "entropy": float(np.float32(entropy[i])),
                "logits": [float(v) for v in logits[i]],
                "topk_indices": None,
                "topk_logprobs": None,
                "residual_mass": 0.0,
            })
        return rows
    k = min(top_k, num_classes)
    # argsort on -logp with a stable sort: equal probabilities keep index order (deterministic).
    order = np.argsort(-logp, axis=-1, kind="stable")[:, :k]  # [B, k]
    top_logp = np.take_along_axis(logp, order, axis=-1)  # [B, k]
    residual = np.clip(1.0 - np.exp(top_logp).sum(axis=-1), 0.0, 1.0)
    for i in range(batch):
        rows.append({
            "teacher_argmax": int(argmax[i]),
            "confidence": float(np.float32(confidence[i])),
            "entropy": float(np.float32(entropy[i])),
            "logits": None,
            "topk_indices": [int(v) for v in order[i]],
            "topk_logprobs": [float(np.float32(v)) for v in top_logp[i]],
            "residual_mass": float(np.float32(residual[i])),
        })
    return rows


_SOFT_COLUMNS = ("logits", "topk_indices", "topk_logprobs", "residual_mass")


def probs_from_row(row: dict, num_classes: int) -> np.ndarray:
    """The teacher distribution [C] of one stored row, decoded by the shard format (zuoxiao.core.shards)."""
    table = pa.Table.from_pylist([{k: row.get(k) for k in _SOFT_COLUMNS}],
                                 schema=pa.schema([SHARD_SCHEMA.field(n) for n in _SOFT_COLUMNS]))
    return np.exp(table_logprobs(table, num_classes)[0].astype(np.float64))


# --- decode: the one place that turns stored columns back into distributions ---

#: Floor on the residual probability mass so log() stays finite when top-k covered everything.
MIN_RESIDUAL = 1e-12


def dense_from_topk(indices: np.ndarray, logprobs: np.ndarray, residual: np.ndarray, num_classes: int) -> np.ndarray:
    """Rebuild full teacher log-probabilities [B, C] from top-k storage.

    indices [B, k] int, logprobs [B, k] (log-softmax at T=1), residual [B] = 1 - sum(exp(logprobs)).
    The shard does not say how the residual mass is spread over the C-k classes outside the top k, so it
    is spread UNIFORMLY: each of them gets log(residual / (C - k)). The result is a proper log
    distribution (it sums to 1), so it can stand in for logits: softmax(logprobs / T) equals the
    teacher's tempered distribution exactly on the top-k classes' relative odds.
    """
    b, k = indices.shape
    if k > num_classes:
        raise IntegrityError(f"top-k storage with k={k} > num_classes={num_classes}; the shards do not match "
                             "the task's label names (relabel)")
    fill = np.log(np.maximum(residual.astype(np.float64), MIN_RESIDUAL) / max(num_classes - k, 1))
    out = np.repeat(fill[:, None], num_classes, axis=1)
    np.put_along_axis(out, indices.astype(np.int64), logprobs.astype(np.float64), axis=1)
    return out.astype(np.float32)


def table_logprobs(table: pa.Table, num_classes: int) -> np.ndarray:
    """Teacher log-probabilities [N, C] (float32) of a shard table, full or top-k storage alike.

    Full storage: log_softmax(logits). Top-k: dense_from_topk (the residual spread uniformly).
    """
    n = table.num_rows
    logits = table.column("logits").to_pylist() if "logits" in table.column_names else [None] * n
    if n and all(row is not None for row in logits):
        z = np.asarray(logits, np.float64).reshape(n, -1)
        z = z - z.max(-1, keepdims=True)
        return (z - np.log(np.exp(z).sum(-1, keepdims=True))).astype(np.float32)
    idx, lp = table.column("topk_indices").to_pylist(), table.column("topk_logprobs").to_pylist()
    if any(i is None for i in idx) or any(v is None for v in lp):
        raise IntegrityError("a shard row has neither logits nor top-k columns; relabel")
    if not n:
        return np.zeros((0, num_classes), np.float32)
    return dense_from_topk(np.asarray(idx), np.asarray(lp), table.column("residual_mass").to_numpy(), num_classes)
