"""Write and read a whole label output (shards + manifest) outside Beam, through the one format.

The label pipeline (pipelines/) writes the same thing at scale; this is for tests, tools and small
jobs, and it uses the same pieces: SHARD_SCHEMA, the soft-label codec (zuoxiao.core.softlabels) and the
typed Manifest, so a shard built here is byte-for-byte what the student's reader expects.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zuoxiao.core.manifest import Manifest, ShardFile, data_hash
from zuoxiao.core.shards import (
    MANIFEST,
    SCHEMA_VERSION,
    read_manifest,
    schema_with_metadata,
    sha256_file,
    shard_paths,
    write_json_atomic,
)
from zuoxiao.core.softlabels import soft_label_columns


def write_label_output(out_dir: str | Path, rows: list[dict], logits: np.ndarray, label_names: list[str], *,
                       storage: str = "full", top_k: int = 10, n_shards: int = 1, teacher: dict | None = None,
                       row_group_size: int | None = None, reprs: np.ndarray | None = None) -> Manifest:
    """rows: dicts with id, text, gold (index or None) and optionally augmented, num_tokens, truncated.
    logits: [N, C] teacher outputs, encoded as full logits or top-k log-probs (``storage``).
    reprs: [N, D] teacher representations for the optional teacher_repr column (a NaN row = null); without
    them the shards lack the column, as shards written before it existed do."""
    out = Path(out_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    logits = np.asarray(logits, dtype=np.float32)
    n, c = logits.shape
    soft = soft_label_columns(logits, max_full_classes=c if storage == "full" else 0, top_k=top_k)
    records = [{"id": str(r["id"]), "text": r["text"], "gold": r.get("gold"), "augmented": r.get("augmented", False),
                "num_tokens": r.get("num_tokens", len(r["text"].split()) + 2), "truncated": r.get("truncated", False),
                **s} for r, s in zip(rows, soft, strict=True)]
    teacher = dict(teacher or {"path": None, "fingerprint": None})
    if reprs is not None:
        reprs = np.asarray(reprs, dtype=np.float32)
        teacher["repr_dim"] = int(reprs.shape[1])
        for rec, v in zip(records, reprs, strict=True):
            rec["teacher_repr"] = None if np.isnan(v).any() else v.astype(np.float16).tolist()
    table = pa.Table.from_pylist(records, schema=schema_with_metadata(label_names, storage,
                                                                      optional_columns=reprs is not None))
    shards = []
    for k, part in enumerate(np.array_split(np.arange(n), n_shards)):
        name = f"shards/part-{k:05d}-of-{n_shards:05d}.parquet"
        pq.write_table(table.take(part), out / name, compression="zstd", row_group_size=row_group_size)
        shards.append(ShardFile(file=name, rows=len(part), sha256=sha256_file(out / name),
                                bytes=(out / name).stat().st_size))
    manifest = Manifest(
        schema_version=SCHEMA_VERSION, created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        label_names=list(label_names), label_source="given", num_classes=c, storage=storage,
        top_k=top_k if storage == "topk" else None,
        counts={"read": n, "labeled": n, "rejected": 0, "rejected_by_reason": {}, "augmented": 0,
                "rows_in_shards": n},
        shards=shards, teacher=teacher,
        data_hash=data_hash(shards))
    write_json_atomic(out / MANIFEST, manifest.to_json())
    return manifest


def read_rows(label_dir: str | Path, which: str = "shards") -> list[dict]:
    """Every row of a verified local label output: its soft-label shards, or ``which="rejected_files"``."""
    manifest = read_manifest(label_dir)
    files = shard_paths(label_dir, manifest) if which == "shards" else [
        Path(label_dir) / f.file for f in manifest.rejected_files]
    return [r for f in files for r in pq.read_table(f).to_pylist()]
