"""Read the label shards as plain arrays for compression: texts and teacher probabilities.

Compression needs the transfer set three ways: every text (vocabulary statistics), a sample with the
teacher's soft targets (importance scores) and batches for recovery. The manifest and its checksums are
verified first (zuoxiao.shards.read_manifest), so a corrupt shard fails with exit code 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.shards import read_manifest, shard_paths
from zuoxiao.core.softlabels import table_logprobs


@dataclass
class TransferSet:
    texts: list[str]
    probs: np.ndarray  # [N, C] teacher probabilities (softmax of logits, or rebuilt from top-k)


def _probs(table, num_classes: int) -> np.ndarray:
    return np.exp(table_logprobs(table, num_classes)).astype(np.float32)


def read_transfer(label_dir: str | Path, limit: int | None = None, seed: int = 0) -> TransferSet:
    """Up to ``limit`` rows (a seeded random sample when the set is larger), in a fixed order."""
    label_dir = Path(label_dir)
    manifest = read_manifest(label_dir)
    num_classes = manifest.num_classes
    texts: list[str] = []
    probs: list[np.ndarray] = []
    for path in shard_paths(label_dir, manifest):
        table = pq.read_table(path, columns=["text", "logits", "topk_indices", "topk_logprobs", "residual_mass"])
        if table.num_rows == 0:
            continue
        texts.extend(table.column("text").to_pylist())
        probs.append(_probs(table, num_classes or len(table.column("logits")[0].as_py() or [])))
    if not texts:
        raise IntegrityError(f"{label_dir}: the shards hold no rows; rerun `zuoxiao label`")
    p = np.concatenate(probs)
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
