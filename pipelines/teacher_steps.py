"""Per-element steps of the label graph between validation and the writer: tokenise, batch by token
length, turn teacher logits into a shard row. Used by pipelines/label.py (build_graph)."""

from __future__ import annotations

import apache_beam as beam

from zuoxiao.core.softlabels import soft_label_columns
from zuoxiao.pipelines.handler import tokenize_texts


class TokenizeBatch(beam.DoFn):
    """[records] -> records with input_ids (truncated), num_tokens (untruncated), truncated, max_length.

    Tokenised with the tokenizer at the teacher source's path (an ensemble's: its first member's)."""

    def __init__(self, source):
        self.path, self.max_length, self.trust_remote_code = source.path, source.max_length, source.trust_remote_code

    def setup(self):
        from zuoxiao.teacher.classifier import load_tokenizer

        self.tokenizer = load_tokenizer(self.path, self.trust_remote_code)

    def process(self, batch):
        ids, lengths, truncated = tokenize_texts(self.tokenizer, [r["text"] for r in batch], self.max_length)
        for rec, i, n, t in zip(batch, ids, lengths, truncated, strict=True):
            yield {**rec, "input_ids": i, "num_tokens": n, "truncated": t, "max_length": self.max_length}


def length_batches(item, batch_size: int, max_batch_tokens: int | None):
    """(token length, records) -> lists of records sorted by id: fixed composition, zero padding."""
    length, recs = item
    recs = sorted(recs, key=lambda r: r["id"])
    n = batch_size if not max_batch_tokens else max(1, min(batch_size, max_batch_tokens // max(1, length)))
    for i in range(0, len(recs), n):
        yield recs[i:i + n]


def to_shard_row(rec: dict, max_full_classes: int, top_k: int) -> dict:
    """Record with teacher logits [C] -> a SHARD_SCHEMA row (+ private keys for the writer/cache)."""
    import numpy as np

    logits = np.asarray(rec["logits"], dtype=np.float32)
    soft = soft_label_columns(logits[None, :], max_full_classes, top_k)[0]
    return {
        "id": rec["id"], "text": rec["text"], "gold": rec["gold"], "augmented": rec["augmented"],
        "num_tokens": int(rec["num_tokens"]), "truncated": bool(rec["truncated"]), **soft,
        # private: used by the writer (cache parts, counts), not written to shards
        "_cache": rec.get("_cache"), "text_hash": rec["text_hash"], "max_length": rec.get("max_length"),
        "_logits_full": logits,
        "teacher_repr": _repr_column(rec.get("teacher_repr")),
    }


def _repr_column(rep):
    """teacher_repr [D] -> fp16 values for the shard, or null (off, or a value fp16 cannot hold: the row
    keeps its soft labels and only loses the representation term)."""
    import numpy as np

    if rep is None:
        return None
    half = np.asarray(rep, dtype=np.float32).astype(np.float16)
    return half if np.isfinite(half).all() else None
