"""Incremental teacher cache: logits already computed by the same teacher are not computed again.

Layout (safe to delete at any time; a missing or corrupt cache only means misses):

    <cache_dir>/<teacher fingerprint>/<UTC time>-<run tag>-part-*.parquet
        text_hash: sha256 of the text   max_length: tokens the teacher saw
        logits: list<float32> [C]       num_tokens: untruncated token count   truncated: bool

A row is reused only when fingerprint (directory), max_length and text hash all match. Files are
written by the label pipeline's workers into its temp dir and moved here only after the run
succeeded, each with a rename. The cache is bounded by ``max_rows``: the oldest files are evicted first.

All I/O goes through Beam's FileSystems (zuoxiao.core.fsio): the workers read the cache files, so on a
runner whose workers do not share the launcher's disk the cache dir must be a path they can reach
(gs://, s3://); for the DirectRunner a local dir is enough.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from zuoxiao.core import fsio

log = logging.getLogger(__name__)

CACHE_SCHEMA = pa.schema([
    pa.field("text_hash", pa.string(), nullable=False),
    pa.field("max_length", pa.int32(), nullable=False),
    pa.field("logits", pa.list_(pa.field("element", pa.float32(), nullable=False)), nullable=False),
    pa.field("num_tokens", pa.int32(), nullable=False),
    pa.field("truncated", pa.bool_(), nullable=False),
])


def cache_table(records: list[dict], schema: pa.Schema = CACHE_SCHEMA) -> pa.Table:
    """Inferred records (with `logits` [C], `max_length`) -> a cache table."""
    return pa.Table.from_pydict({
        "text_hash": [r["text_hash"] for r in records],
        "max_length": [r["max_length"] for r in records],
        # `_logits_full` is set by the label pipeline: in top-k storage the shard row has no logits.
        "logits": [[float(x) for x in r.get("_logits_full", r["logits"])] for r in records],
        "num_tokens": [r["num_tokens"] for r in records],
        "truncated": [r["truncated"] for r in records],
    }, schema=schema)


class TeacherCache:
    def __init__(self, root: str | Path, fingerprint: str, max_length: int):
        self.root = fsio.norm(root)  # a local path or a Beam URI
        self.fingerprint = fingerprint
        self.max_length = max_length

    @property
    def dir(self) -> str:
        return fsio.join(self.root, self.fingerprint)

    def _files(self) -> list[str]:
        # Names start with a UTC timestamp, so name order is age order.
        return fsio.list_files(fsio.join(self.dir, "*.parquet"))

    def valid_files(self) -> list[str]:
        """Cache files that open as Parquet with the cache schema, oldest first. Others: warned, skipped."""
        good = []
        for p in self._files():
            try:
                with fsio.open_read(p) as f:
                    schema = pq.read_schema(f)
                if not schema.remove_metadata().equals(CACHE_SCHEMA):
                    raise ValueError(f"schema {schema.names} is not the cache schema")
            except Exception as err:  # noqa: BLE001 - any unreadable file is just a miss
                log.warning("teacher cache: ignoring unreadable file %s (%s); delete it to silence this", p, err)
                continue
            good.append(p)
        return good

    def commit(self, parts: list[str]) -> list[str]:
        """Move finished cache parts (written by a successful run) into the cache, one rename each."""
        tag = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
        added = []
        for part in sorted(parts):
            final = fsio.join(self.dir, f"{tag}-{part.rsplit('/', 1)[-1]}")
            try:
                fsio.move(part, final)
            except Exception as err:  # noqa: BLE001 - Beam wraps filesystem errors in BeamIOError
                raise OSError(f"could not move {part} to {final}: {err}") from err
            added.append(final)
        return added

    def evict(self, max_rows: int) -> dict:
        """Delete the oldest cache files until at most ``max_rows`` rows remain."""
        files = []
        for p in self._files():
            try:
                with fsio.open_read(p) as f:
                    files.append((p, pq.read_metadata(f).num_rows))
            except Exception:  # noqa: BLE001 - unreadable: evict it first
                files.append((p, max_rows + 1))
        total = sum(n for _, n in files)
        evicted, doomed = 0, []
        while files and total > max_rows:
            p, n = files.pop(0)
            doomed.append(p)
            total -= n
            evicted += n
        fsio.delete_files(doomed)
        return {"rows": total, "files": len(files), "evicted_rows": evicted}


def _read_cache_file(path: str, max_length: int):
    """One cache file -> (text_hash, (logits, num_tokens, truncated)) for rows of this max_length."""
    try:
        with fsio.open_read(path) as f:
            table = pq.read_table(f)
    except Exception as err:  # noqa: BLE001 - deleted or corrupted since the run started: misses
        log.warning("teacher cache: cannot read %s (%s); its rows count as misses", path, err)
        return
    for row in table.to_pylist():
        if row["max_length"] == max_length:
            yield row["text_hash"], (row["logits"], row["num_tokens"], row["truncated"])


def _join(item, max_length: int):
    """(text_hash, {records, cache}) -> records marked hit (cached logits) or miss (tagged 'miss')."""
    _, grouped = item
    cached = sorted(grouped["cache"], key=lambda c: (c[1], list(c[0])))[:1]
    for rec in grouped["records"]:
        rec = dict(rec)
        if cached:
            logits, num_tokens, truncated = cached[0]
            import numpy as np

            rec.update(logits=np.asarray(logits, dtype=np.float32), num_tokens=num_tokens,
                       truncated=truncated, _cache="hit")
            yield rec
        else:
            rec["_cache"] = "miss"
            yield beam.pvalue.TaggedOutput("miss", rec)


class CacheLookup(beam.PTransform):
    """Records -> outputs (hits with logits, misses) by joining on text hash with the cache files."""

    def __init__(self, files: list[str], max_length: int):
        super().__init__()
        self.files = files
        self.max_length = max_length

    def expand(self, records):
        max_length = self.max_length
        cached = (
            records.pipeline
            | "CacheFiles" >> beam.Create(self.files)
            | "ReadCache" >> beam.FlatMap(_read_cache_file, max_length=max_length)
        )
        keyed = records | "KeyByTextHash" >> beam.Map(lambda r: (r["text_hash"], r))
        return (
            {"records": keyed, "cache": cached}
            | "JoinCache" >> beam.CoGroupByKey()
            | "HitOrMiss" >> beam.FlatMap(_join, max_length=max_length).with_outputs("miss", main="hit")
        )
