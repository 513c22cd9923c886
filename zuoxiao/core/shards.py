"""The soft-label shard format: one pyarrow schema, the manifest, and their checks.

Written by the label pipeline (pipelines/label.py) and read by the student (student/data.py); both
import SHARD_SCHEMA from here so the two sides cannot drift.

A label output directory holds:
    shards/part-00000-of-00003.parquet ...   soft labels (zstd, compliant nested lists)
    rejected/rejected-*.parquet               dead-letter rows: original row (JSON) + reason
    manifest.json                             written LAST: its presence marks the output complete
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from zuoxiao.core.errors import IntegrityError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

#: Per-row soft labels. For C <= max_full_classes, `logits` holds all C raw teacher logits (float32) and
#: the top-k columns are null. Above it, `logits` is null and `topk_indices` / `topk_logprobs` hold the k
#: most likely classes (log-softmax at T=1) with `residual_mass` = 1 - sum(exp(topk_logprobs)).
SHARD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("gold", pa.int32(), nullable=True),  # gold label index, null when unlabelled
        pa.field("augmented", pa.bool_(), nullable=False),  # true for rows made by augmentation
        pa.field("teacher_argmax", pa.int32(), nullable=False),
        pa.field("confidence", pa.float32(), nullable=False),  # max softmax probability
        pa.field("entropy", pa.float32(), nullable=False),  # nats, of the teacher softmax
        pa.field("num_tokens", pa.int32(), nullable=False),  # teacher tokens before truncation
        pa.field("truncated", pa.bool_(), nullable=False),
        pa.field("logits", pa.list_(pa.field("element", pa.float32(), nullable=False)), nullable=True),
        pa.field("topk_indices", pa.list_(pa.field("element", pa.int32(), nullable=False)), nullable=True),
        pa.field("topk_logprobs", pa.list_(pa.field("element", pa.float32(), nullable=False)), nullable=True),
        pa.field("residual_mass", pa.float32(), nullable=False),
    ]
)

#: Dead-letter rows: nothing read is ever dropped silently.
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),  # file the row came from
        pa.field("row", pa.string()),  # the original row as JSON (bytes shown as latin-1 repr)
        pa.field("reason", pa.string()),  # machine-friendly code, e.g. "empty_text"
        pa.field("detail", pa.string()),  # human message
    ]
)


def schema_with_metadata(label_names: list[str], storage: str) -> pa.Schema:
    """SHARD_SCHEMA plus metadata that readers need: label names, schema version, storage kind."""
    return SHARD_SCHEMA.with_metadata(
        {
            b"zuoxiao.schema_version": str(SCHEMA_VERSION).encode(),
            b"zuoxiao.label_names": json.dumps(label_names).encode(),
            b"zuoxiao.storage": storage.encode(),  # "full" or "topk"
        }
    )


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str | Path, obj: dict) -> None:
    """Write to a temp file, fsync, rename: a reader sees the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(label_dir: str | Path, verify_checksums: bool = True) -> dict:
    """Load and check a label output. Raises IntegrityError naming the problem and the fix."""
    label_dir = Path(label_dir)
    mpath = label_dir / MANIFEST
    if not mpath.is_file():
        raise IntegrityError(
            f"{label_dir} has no {MANIFEST}: the label stage did not finish there (or this is not a label "
            "output directory); rerun `zuoxiao label` or point at a completed output"
        )
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as err:
        raise IntegrityError(f"{mpath} is not valid JSON ({err}); rerun the label stage") from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise IntegrityError(
            f"{mpath}: shard schema_version {version!r} but this zuoxiao reads version {SCHEMA_VERSION}; "
            "relabel with this version of zuoxiao"
        )
    for shard in manifest.get("shards", []):
        p = label_dir / shard["file"]
        if not p.is_file():
            raise IntegrityError(f"shard {p} listed in the manifest is missing; relabel or restore it")
        if verify_checksums and sha256_file(p) != shard["sha256"]:
            raise IntegrityError(
                f"shard {p} does not match the sha256 in {mpath} (corrupt or modified); relabel or restore it"
            )
    return manifest


def shard_paths(label_dir: str | Path, manifest: dict) -> list[Path]:
    return [Path(label_dir) / s["file"] for s in manifest["shards"]]


# --- decoding soft labels: the one place that turns stored columns back into distributions ---

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
