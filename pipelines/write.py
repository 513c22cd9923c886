"""Deterministic, roughly equal Parquet shards, written by Beam workers through Beam's FileSystems.

Beam's WriteToParquet shards per buffered table (3000/0/0 rows for small data) and names files by
runner internals. Here each row goes to shard ``sha256(id) mod n`` with n = ceil(rows / rows_per_shard)
(a side input), one GroupByKey per shard, and the shard is written sorted by id: the same input gives
byte-identical shards on every runner and worker count, and shard sizes differ only by hash noise.

Like Beam's file-based sinks, workers write into a temporary directory (``<output>/.work-<id>/``, on
any Beam filesystem: local, gs://, s3://) and the launching process renames the files into place
after the pipeline succeeded (pipelines/commit.py). A retried bundle rewrites the same name with the
same bytes, so retries are harmless.

Each writer yields its counts as a pipeline element; ``WriteSummary`` collects them, with the number
of rows read, into ``summary.json`` in the same temporary directory. That file is the only way counts
reach the launcher: nothing is read from a worker's local disk.
"""

from __future__ import annotations

import hashlib
import json
import math

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from zuoxiao.core import fsio
from zuoxiao.core.shards import REJECTED_SCHEMA, SHARD_SCHEMA

COMPRESSION = "zstd"
SUMMARY = "summary.json"


def shard_of(key: str, num_shards: int) -> int:
    # Python's hash() is salted per process: workers would disagree. sha256 is stable everywhere.
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % max(1, num_shards)


def num_shards_for(rows: int, rows_per_shard: int) -> int:
    return max(1, math.ceil(rows / rows_per_shard))


def write_table(table: pa.Table, path: str, row_group_size: int) -> None:
    """One Parquet file through FileSystems; the bytes depend only on the table (no paths, no times).

    Encoded in memory first (a shard is rows_per_shard rows), so a full disk is reported with the exact
    bytes the file needed (fsio.write_bytes raises DiskFull) and leaves no partial file behind."""
    buf = pa.BufferOutputStream()
    pq.write_table(
        table, buf, compression=COMPRESSION, use_compliant_nested_type=True,
        row_group_size=row_group_size, write_statistics=True,
    )
    fsio.write_bytes(path, buf.getvalue().to_pybytes())


def _argmax_counts(indices) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in indices:
        counts[str(i)] = counts.get(str(i), 0) + 1  # str keys: the summary travels as JSON
    return counts


class WriteShard(beam.DoFn):
    """(shard index, soft-label records) -> <temp>/shards/part-i-of-n.parquet (+ cache part); yields counts."""

    def __init__(self, temp_dir: str, schema: pa.Schema, row_group_size: int, cache_schema=None):
        self.temp_dir = temp_dir
        self.schema = schema
        self.row_group_size = row_group_size
        self.cache_schema = cache_schema
        self.fs_options = fsio.options_for_workers()  # the launcher's: a bare SDK harness has none

    def setup(self):
        fsio.configure_worker(self.fs_options)
        fsio.check_store(self.temp_dir)  # an unreachable object store: a StorageError in bounded time

    def process(self, item, num_shards: int):
        index, records = item
        records = sorted(records, key=lambda r: r["id"])
        name = f"part-{index:05d}-of-{num_shards:05d}.parquet"
        cols = {f.name: [r[f.name] for r in records] for f in SHARD_SCHEMA}
        write_table(pa.Table.from_pydict(cols, schema=self.schema), fsio.join(self.temp_dir, "shards", name),
                    self.row_group_size)
        fresh = [r for r in records if r.get("_cache") == "miss"]
        inferred = [r for r in records if r.get("_cache") != "hit"]
        stats = {
            "kind": "shards", "file": f"shards/{name}", "rows": len(records),
            "augmented": sum(r["augmented"] for r in records),
            "truncated": sum(r["truncated"] and not r["augmented"] for r in records),
            "truncated_augmented": sum(r["truncated"] and r["augmented"] for r in records),
            "cache_hits": len(records) - len(inferred),
            "cache_misses": len(fresh),
            # rows and tokens the teacher ran (its input was cut at max_length)
            "teacher_rows": len(inferred),
            "teacher_tokens": sum(min(r["num_tokens"], r["max_length"]) for r in inferred),
            # soft-label quality, over the labelled (not augmented) rows: summed here, averaged by the commit
            "entropy_sum": float(sum(r["entropy"] for r in records if not r["augmented"])),
            "argmax_counts": _argmax_counts(r["teacher_argmax"] for r in records if not r["augmented"]),
        }
        if self.cache_schema is not None and fresh:
            from zuoxiao.pipelines.cache import cache_table

            seen, unique = set(), []
            for r in fresh:  # one cache row per distinct text
                if r["text_hash"] not in seen:
                    seen.add(r["text_hash"])
                    unique.append(r)
            write_table(cache_table(unique, self.cache_schema), fsio.join(self.temp_dir, "cache", name),
                        self.row_group_size)
            stats["cache_file"] = f"cache/{name}"
        yield stats


class WriteRejected(beam.DoFn):
    """(shard index, dead-letter rows) -> <temp>/rejected/rejected-i-of-n.parquet; yields counts by reason."""

    def __init__(self, temp_dir: str, row_group_size: int):
        self.temp_dir = temp_dir
        self.row_group_size = row_group_size
        self.fs_options = fsio.options_for_workers()

    def setup(self):
        fsio.configure_worker(self.fs_options)
        fsio.check_store(self.temp_dir)

    def process(self, item, num_shards: int):
        index, rows = item
        rows = sorted(rows, key=lambda r: (r["source"], r["row"], r["reason"], r["detail"]))
        name = f"rejected-{index:05d}-of-{num_shards:05d}.parquet"
        write_table(pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA),
                    fsio.join(self.temp_dir, "rejected", name), self.row_group_size)
        reasons: dict[str, int] = {}
        for r in rows:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        yield {"kind": "rejected", "file": f"rejected/{name}", "rows": len(rows), "reasons": reasons}


class WriteSharded(beam.PTransform):
    """Records -> shard files under temp_dir; returns one counts dict per file.

    ``kind`` is 'shards' (soft labels) or 'rejected'.
    """

    def __init__(self, kind: str, temp_dir: str, rows_per_shard: int, row_group_size: int,
                 schema: pa.Schema | None = None, cache_schema=None):
        super().__init__()
        self.kind = kind
        self.temp_dir = temp_dir
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
            writer = WriteShard(self.temp_dir, self.schema, self.row_group_size, self.cache_schema)
        else:
            key = lambda r, k: (shard_of(r["source"] + "\0" + r["row"] + "\0" + r["reason"], k), r)  # noqa: E731
            writer = WriteRejected(self.temp_dir, self.row_group_size)
        return (
            records
            | "AssignShard" >> beam.Map(key, k=n_side)
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteFiles" >> beam.ParDo(writer, num_shards=n_side)
        )


def _write_summary(stats: list[dict], read: int, temp_dir: str) -> str:
    path = fsio.join(temp_dir, SUMMARY)
    summary = {"read": read, "files": sorted(stats, key=lambda s: s["file"])}
    fsio.write_bytes_atomic(path, json.dumps(summary, sort_keys=True).encode())
    return path


class WriteSummary(beam.PTransform):
    """(rows read: a one-element PCollection, [file counts PCollections]) -> <temp>/summary.json.

    Count.Globally and ToList give exactly one element even for empty inputs, so the summary is
    always written when the pipeline succeeds.
    """

    def __init__(self, temp_dir: str, read_count):
        super().__init__()
        self.temp_dir = temp_dir
        self.read_count = read_count

    def expand(self, file_stats):
        return (
            file_stats
            | "AllFiles" >> beam.Flatten()
            | "ToList" >> beam.combiners.ToList()
            | "Write" >> beam.Map(fsio.InWorker(_write_summary), read=beam.pvalue.AsSingleton(self.read_count),
                                  temp_dir=self.temp_dir)
        )
