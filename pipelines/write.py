"""Deterministic, roughly equal Parquet shards written by Beam workers into a work directory.

Beam's WriteToParquet shards per buffered table (3000/0/0 rows for small data) and names files by
runner internals. Here each row goes to shard ``sha256(id) mod n`` with n = ceil(rows / rows_per_shard)
(a side input), one GroupByKey per shard, and the shard is written sorted by id: the same input gives
byte-identical shards on every runner and worker count, and shard sizes differ only by hash noise.

Each writer also drops a small JSON sidecar with its counts (the launching process sums them into the
manifest) and, for the teacher cache, a Parquet part with the logits it had to infer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from zuoxiao.core.shards import REJECTED_SCHEMA, SHARD_SCHEMA

COMPRESSION = "zstd"


def shard_of(key: str, num_shards: int) -> int:
    # Python's hash() is salted per process: workers would disagree. sha256 is stable everywhere.
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % max(1, num_shards)


def num_shards_for(rows: int, rows_per_shard: int) -> int:
    return max(1, math.ceil(rows / rows_per_shard))


def write_table_atomic(table: pa.Table, path: Path, row_group_size: int) -> None:
    """Write to a dot-temp name then rename: a crash never leaves a half file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(
        table, tmp, compression=COMPRESSION, use_compliant_nested_type=True,
        row_group_size=row_group_size, write_statistics=True,
    )
    os.replace(tmp, path)


class WriteShard(beam.DoFn):
    """(shard index, soft-label records) -> writes part-i-of-n.parquet (+ sidecar, + cache part)."""

    def __init__(self, work_dir: str, schema: pa.Schema, row_group_size: int, cache_schema=None):
        self.work_dir = work_dir
        self.schema = schema
        self.row_group_size = row_group_size
        self.cache_schema = cache_schema

    def process(self, item, num_shards: int):
        index, records = item
        records = sorted(records, key=lambda r: r["id"])
        name = f"part-{index:05d}-of-{num_shards:05d}.parquet"
        cols = {f.name: [r[f.name] for r in records] for f in SHARD_SCHEMA}
        table = pa.Table.from_pydict(cols, schema=self.schema)
        work = Path(self.work_dir)
        write_table_atomic(table, work / "shards" / name, self.row_group_size)
        fresh = [r for r in records if r.get("_cache") == "miss"]
        stats = {
            "file": f"shards/{name}", "rows": len(records),
            "augmented": sum(r["augmented"] for r in records),
            "truncated": sum(r["truncated"] and not r["augmented"] for r in records),
            "truncated_augmented": sum(r["truncated"] and r["augmented"] for r in records),
            "cache_hits": sum(r.get("_cache") == "hit" for r in records),
            "cache_misses": len(fresh),
        }
        if self.cache_schema is not None and fresh:
            from zuoxiao.teacher.cache import cache_table

            seen, unique = set(), []
            for r in fresh:  # one cache row per distinct text
                if r["text_hash"] not in seen:
                    seen.add(r["text_hash"])
                    unique.append(r)
            write_table_atomic(cache_table(unique, self.cache_schema), work / "cache" / name, self.row_group_size)
            stats["cache_file"] = f"cache/{name}"
        (work / "stats").mkdir(parents=True, exist_ok=True)
        (work / "stats" / f"{name}.json").write_text(json.dumps(stats))
        yield stats


class WriteRejected(beam.DoFn):
    """(shard index, dead-letter rows) -> rejected/rejected-i-of-n.parquet (+ sidecar with reasons)."""

    def __init__(self, work_dir: str, row_group_size: int):
        self.work_dir = work_dir
        self.row_group_size = row_group_size

    def process(self, item, num_shards: int):
        index, rows = item
        rows = sorted(rows, key=lambda r: (r["source"], r["row"], r["reason"], r["detail"]))
        name = f"rejected-{index:05d}-of-{num_shards:05d}.parquet"
        table = pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA)
        work = Path(self.work_dir)
        write_table_atomic(table, work / "rejected" / name, self.row_group_size)
        reasons: dict[str, int] = {}
        for r in rows:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        stats = {"file": f"rejected/{name}", "rows": len(rows), "reasons": reasons}
        (work / "stats").mkdir(parents=True, exist_ok=True)
        (work / "stats" / f"{name}.json").write_text(json.dumps(stats))
        yield stats


class WriteSharded(beam.PTransform):
    """Records -> shards under work_dir. `kind` is 'shards' (soft labels) or 'rejected'."""

    def __init__(self, kind: str, work_dir: str, rows_per_shard: int, row_group_size: int,
                 schema: pa.Schema | None = None, cache_schema=None):
        super().__init__()
        self.kind = kind
        self.work_dir = work_dir
        self.rows_per_shard = rows_per_shard
        self.row_group_size = row_group_size
        self.schema = schema
        self.cache_schema = cache_schema

    def expand(self, records):
        rows_per_shard = self.rows_per_shard
        count = records | "Count" >> beam.combiners.Count.Globally()
        n = count | "NumShards" >> beam.Map(lambda c: num_shards_for(c, rows_per_shard))
        n_side = beam.pvalue.AsSingleton(n)
        if self.kind == "shards":
            key = lambda r, k: (shard_of(r["id"], k), r)  # noqa: E731
            writer = WriteShard(self.work_dir, self.schema, self.row_group_size, self.cache_schema)
        else:
            key = lambda r, k: (shard_of(r["source"] + "\0" + r["row"] + "\0" + r["reason"], k), r)  # noqa: E731
            writer = WriteRejected(self.work_dir, self.row_group_size)
        return (
            records
            | "AssignShard" >> beam.Map(key, k=n_side)
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteFiles" >> beam.ParDo(writer, num_shards=n_side)
        )
