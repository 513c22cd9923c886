"""Stream soft-label shards into tokenised, length-bucketed batches.

Memory is bounded by ``buffer_rows``: pyarrow reads record batches lazily, a row group at a time; rows collect in a
buffer that is shuffled, sorted by length (so a batch pads to similar lengths) and cut into batches
whose order is shuffled again. The batch order depends only on (seed, epoch), so a resumed run sees
exactly the batches an uninterrupted one would, and processes under `accelerate launch` can split
the same stream by batch index.

Texts are tokenised here, with the student's tokenizer: the shards hold text, not token ids, so the
student's vocabulary may differ from the teacher's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.shards import (
    SCHEMA_VERSION,
    SHARD_SCHEMA,
    is_uri,
    open_shard,
    read_manifest,
    required_schema,
    shard_paths,
)
from zuoxiao.core.softlabels import dense_from_topk
from zuoxiao.student.losses import NO_GOLD

COLUMNS = ["text", "gold", "logits", "topk_indices", "topk_logprobs", "residual_mass"]


@dataclass
class RawBatch:
    """Untokenised rows: texts (B), teacher [B, C] float32, gold [B] int64 (NO_GOLD = none).

    With representations (ShardStream(with_repr=True)): teacher_repr [B, D] float32 (zeros where the row
    has none) and has_repr [B] bool.
    """

    texts: list[str]
    teacher: np.ndarray
    gold: np.ndarray
    teacher_repr: np.ndarray | None = None
    has_repr: np.ndarray | None = None


def check_shard_schema(path: Path) -> str:
    """Refuse a shard whose columns or schema version differ from SHARD_SCHEMA; return its storage.

    A shard may lack OPTIONAL_COLUMNS (written before they existed); the others must match exactly.
    """
    try:
        schema = pq.read_schema(open_shard(path))
    except (pa.ArrowInvalid, OSError) as err:
        raise IntegrityError(f"shard {path} is not a readable Parquet file ({err}); relabel or restore it") from None
    meta = schema.metadata or {}
    version = meta.get(b"zuoxiao.schema_version", b"?").decode()
    if version != str(SCHEMA_VERSION):
        raise IntegrityError(
            f"shard {path} has schema version {version!r}, this zuoxiao reads {SCHEMA_VERSION}; "
            "relabel with this version of zuoxiao"
        )
    bare = schema.remove_metadata()
    if not (bare.equals(SHARD_SCHEMA) or bare.equals(required_schema())):
        got = {f.name: str(f.type) for f in bare}
        want = {f.name: str(f.type) for f in SHARD_SCHEMA}
        diff = sorted(set(got.items()) ^ set(want.items()))
        raise IntegrityError(
            f"shard {path} does not have the soft-label schema (differences: {diff[:6]}); "
            "it was not written by this version of the label stage: relabel"
        )
    return meta.get(b"zuoxiao.storage", b"full").decode()


def check_finite(path: Path, storage: str, with_repr: bool = False) -> None:
    """Refuse a shard whose teacher columns hold NaN or inf: one such row turns every student weight into
    NaN (the loss goes NaN and stays there). Reads only those columns, a record batch at a time."""
    columns = ["logits"] if storage == "full" else ["topk_logprobs", "residual_mass"]
    columns += ["teacher_repr"] if with_repr else []
    start = 0
    for rb in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=8192, columns=columns):
        for name in columns:
            col = rb.column(name)
            if isinstance(col.type, pa.ListType):
                lengths = col.value_lengths().fill_null(0).to_numpy()
                values = col.flatten().to_numpy(zero_copy_only=False)
                row_of = np.repeat(np.arange(rb.num_rows), lengths)
            else:
                values = col.fill_null(0).to_numpy(zero_copy_only=False)
                row_of = np.arange(rb.num_rows)
            bad = ~np.isfinite(values.astype(np.float64, copy=False))
            if bad.any():
                row = start + int(row_of[np.argmax(bad)])
                raise IntegrityError(
                    f"shard {path} holds a non-finite teacher value ({name} of row {row} is NaN or inf); "
                    "training on it would make the student NaN. Relabel (the label stage now dead-letters "
                    "such rows as non_finite_teacher_output) or restore the shard"
                )
        start += rb.num_rows


class ShardStream:
    """The one reader of a label output: an epoch-wise stream of RawBatch (not yet tokenised), or every
    row once in order (``rows_in_order``, the sampling mode behind student/transfer.py).

    Checks the manifest (schema version, sha256 of every shard), every shard's schema and that its
    teacher values are finite, on open.
    """

    def __init__(self, label_dir: str | Path, batch_size: int, seed: int = 0, buffer_rows: int = 4096,
                 verify_checksums: bool = True, with_repr: bool = False):
        self.label_dir = label_dir if is_uri(label_dir) else Path(label_dir)  # s3://... stays a URI
        self.manifest = read_manifest(self.label_dir, verify_checksums=verify_checksums)
        self.files = shard_paths(self.label_dir, self.manifest)
        if not self.files:
            raise IntegrityError(f"{self.label_dir}/manifest.json lists no shards; the label stage wrote no rows")
        self.label_names = list(self.manifest.label_names)
        self.num_classes = self.manifest.num_classes
        if self.num_classes != len(self.label_names):
            raise IntegrityError(
                f"manifest num_classes={self.num_classes} but {len(self.label_names)} label_names; relabel"
            )
        self.storage = self.manifest.storage
        # teacher_repr [D] per row (label.store_representation); D from the manifest, None = not stored
        self.repr_dim = self.manifest.teacher.get("repr_dim")
        self.with_repr = with_repr
        if with_repr and not self.repr_dim:
            raise IntegrityError(
                f"{self.label_dir} holds no teacher representations (manifest teacher.repr_dim is unset) but "
                "train.loss.repr_weight > 0 needs them: relabel with label.store_representation: true, or set "
                "train.loss.repr_weight: 0")
        self._has_repr_col = {}
        for f in self.files:
            storage = check_shard_schema(f)
            names = json.loads((pq.read_schema(open_shard(f)).metadata or {}).get(b"zuoxiao.label_names", b"null"))
            if storage != self.storage or (names is not None and names != self.label_names):
                raise IntegrityError(
                    f"shard {f} (storage {storage!r}, labels {names}) does not match the manifest "
                    f"(storage {self.storage!r}, labels {self.label_names}); relabel"
                )
            self._has_repr_col[str(f)] = "teacher_repr" in pq.read_schema(open_shard(f)).names
            check_finite(f, storage, with_repr and self._has_repr_col[str(f)])
        self.num_rows = self.manifest.num_rows
        self.batch_size = batch_size
        # A whole number of batches per buffer, so the batch count follows from num_rows alone.
        self.buffer_rows = max(1, math.ceil(buffer_rows / batch_size)) * batch_size
        self.seed = seed

    def has_gold(self) -> bool:
        """Whether any row of the shards carries a gold label (reads only the gold column)."""
        for f in self.files:
            col = pq.read_table(open_shard(f), columns=["gold"]).column("gold")
            if col.null_count < len(col):
                return True
        return False

    def __len__(self) -> int:
        """Batches per epoch (all processes together)."""
        full, rest = divmod(self.num_rows, self.buffer_rows)
        return full * (self.buffer_rows // self.batch_size) + math.ceil(rest / self.batch_size)

    def _teacher(self, rb: pa.RecordBatch) -> np.ndarray:
        """Teacher logits [n, C] (full storage) or log-probs rebuilt from top-k [n, C]."""
        n, c = rb.num_rows, self.num_classes
        if self.storage == "topk":
            idx, lp = rb.column("topk_indices"), rb.column("topk_logprobs")
            if idx.null_count or lp.null_count:
                raise IntegrityError(f"top-k shard in {self.label_dir} has rows without topk columns; relabel")
            k = len(idx[0]) if n else 0
            indices = idx.flatten().to_numpy().reshape(n, k)
            logprobs = lp.flatten().to_numpy().reshape(n, k)
            residual = rb.column("residual_mass").to_numpy()
            return dense_from_topk(indices, logprobs, residual, c)
        col = rb.column("logits")
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if col.null_count or flat.size != n * c:
            raise IntegrityError(
                f"a shard in {self.label_dir} has logits rows that are null or not {c} long; relabel"
            )
        return flat.reshape(n, c).astype(np.float32)

    def rows_in_order(self) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
        """Sampling mode: every row once, shards in manifest order: (texts, teacher [n, C], gold [n]).

        The teacher values are logits (full storage) or rebuilt log-probs (top-k); softmax of either is the
        teacher's distribution. The compress stage samples its calibration/importance rows from this.
        """
        for f in self.files:
            reader = pq.ParquetFile(open_shard(f), pre_buffer=False)
            for rb in reader.iter_batches(batch_size=1024, columns=COLUMNS, use_threads=False):
                if rb.num_rows:
                    gold = rb.column("gold").fill_null(NO_GOLD).to_numpy().astype(np.int64)
                    yield rb.column("text").to_pylist(), self._teacher(rb), gold

    def _repr(self, rb: pa.RecordBatch, has_col: bool) -> np.ndarray:
        """teacher_repr [n, D + 1] float32: D values then a 1/0 flag (row has one); null rows are zeros."""
        n, d = rb.num_rows, int(self.repr_dim)
        out = np.zeros((n, d + 1), np.float32)
        if not has_col:
            return out
        col = rb.column("teacher_repr")
        present = ~col.is_null().to_numpy(zero_copy_only=False)
        values = col.drop_null().flatten().to_numpy(zero_copy_only=False)
        if values.size != int(present.sum()) * d:
            raise IntegrityError(f"a shard in {self.label_dir} has teacher_repr rows not {d} long (manifest "
                                 "teacher.repr_dim); relabel")
        out[present, :d] = values.reshape(-1, d)
        out[present, d] = 1.0
        return out

    def _rows(self, epoch: int) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
        rng = np.random.default_rng([self.seed, epoch, 1])
        order = rng.permutation(len(self.files))
        # One row group at a time per file. (pyarrow.dataset's scanner was measured here to hold about a
        # whole file in memory even with read-ahead turned down; ParquetFile.iter_batches stays flat.)
        for i in order:
            reader = pq.ParquetFile(open_shard(self.files[i]), pre_buffer=False)
            has_col = self.with_repr and self._has_repr_col[str(self.files[i])]
            columns = COLUMNS + ["teacher_repr"] if has_col else COLUMNS
            for rb in reader.iter_batches(batch_size=1024, columns=columns, use_threads=False):
                if rb.num_rows:
                    gold = rb.column("gold").fill_null(NO_GOLD).to_numpy().astype(np.int64)
                    teacher = self._teacher(rb)
                    if self.with_repr:  # carried beside the teacher columns: [n, C + D + 1]
                        teacher = np.concatenate([teacher, self._repr(rb, has_col)], axis=1)
                    yield rb.column("text").to_pylist(), teacher, gold

    def epoch(self, epoch: int) -> Iterator[RawBatch]:
        """All batches of one epoch in their deterministic order (the same with or without representations)."""
        rng = np.random.default_rng([self.seed, epoch, 2])
        texts: list[str] = []
        teacher: list[np.ndarray] = []
        gold: list[np.ndarray] = []
        for t, tl, g in self._rows(epoch):
            texts.extend(t)
            teacher.append(tl)
            gold.append(g)
            while len(texts) >= self.buffer_rows:
                tl_all, g_all = np.concatenate(teacher), np.concatenate(gold)
                yield from self._flush(rng, texts[: self.buffer_rows], tl_all[: self.buffer_rows],
                                       g_all[: self.buffer_rows])
                texts, teacher, gold = texts[self.buffer_rows:], [tl_all[self.buffer_rows:]], [g_all[self.buffer_rows:]]
        if texts:
            yield from self._flush(rng, texts, np.concatenate(teacher), np.concatenate(gold))

    def _flush(self, rng, texts, teacher, gold) -> Iterator[RawBatch]:
        # Shuffle, then a stable sort by length: similar lengths share a batch, ties stay random.
        perm = rng.permutation(len(texts))
        lengths = np.array([len(texts[i]) for i in perm])
        perm = perm[np.argsort(lengths, kind="stable")]
        chunks = [perm[i: i + self.batch_size] for i in range(0, len(perm), self.batch_size)]
        c_ = self.num_classes
        for j in rng.permutation(len(chunks)):
            c = chunks[j]
            if self.with_repr:
                rest = teacher[c, c_:]
                yield RawBatch([texts[i] for i in c], teacher[c, :c_], gold[c], rest[:, :-1], rest[:, -1] > 0)
            else:
                yield RawBatch([texts[i] for i in c], teacher[c], gold[c])


def tokenize(tokenizer, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask (/ token_type_ids) [B, L], padded to the batch's longest text."""
    return dict(tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"))


def collate(raw: RawBatch, tokenizer, max_length: int) -> dict[str, torch.Tensor]:
    batch = tokenize(tokenizer, raw.texts, max_length)
    batch["teacher"] = torch.from_numpy(raw.teacher)  # [B, C]
    batch["gold"] = torch.from_numpy(raw.gold)  # [B]
    if raw.teacher_repr is not None:
        batch["teacher_repr"] = torch.from_numpy(np.ascontiguousarray(raw.teacher_repr))  # [B, D]
        batch["has_repr"] = torch.from_numpy(raw.has_repr)  # [B] bool
    return batch
