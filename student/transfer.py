"""Read the label shards as plain arrays for compression: texts and teacher probabilities.

Compression needs the transfer set three ways: every text (vocabulary statistics), a sample with the
teacher's soft targets (importance scores) and batches for recovery. Rows come from the one reader,
student.data.ShardStream (its sampling mode), so a corrupt or non-finite shard fails with exit code 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zuoxiao.core.errors import IntegrityError
from zuoxiao.student.data import ShardStream


@dataclass
class TransferSet:
    texts: list[str]
    probs: np.ndarray  # [N, C] teacher probabilities (softmax of logits, or rebuilt from top-k)


def read_transfer(label_dir: str | Path, limit: int | None = None, seed: int = 0) -> TransferSet:
    """Up to ``limit`` rows (a seeded random sample when the set is larger), in a fixed order.

    Read through ShardStream, so the same checks apply as for training: manifest checksums, every shard's
    schema, finite teacher values.
    """
    stream = ShardStream(label_dir, batch_size=1)
    texts: list[str] = []
    logits: list[np.ndarray] = []
    for t, teacher, _gold in stream.rows_in_order():
        texts.extend(t)
        logits.append(teacher)
    if not texts:
        raise IntegrityError(f"{label_dir}: the shards hold no rows; rerun `zuoxiao label`")
    z = np.concatenate(logits).astype(np.float64)
    z -= z.max(-1, keepdims=True)
    p = np.exp(z)
    p = (p / p.sum(-1, keepdims=True)).astype(np.float32)  # [N, C] teacher probabilities
    if limit is not None and len(texts) > limit:
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), limit, replace=False))
        return TransferSet([texts[i] for i in pick], p[pick])
    return TransferSet(texts, p)


def batches(ts: TransferSet, tokenizer, max_length: int, batch_size: int = 32):
    """(encoding dict of tensors [B, L], soft targets [B, C]) in order."""
    import torch

    for s in range(0, len(ts.texts), batch_size):
        enc = tokenizer(ts.texts[s : s + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        yield dict(enc), torch.from_numpy(ts.probs[s : s + batch_size])
