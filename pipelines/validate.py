"""Per-element validation, ids and de-duplication: bad rows go to the dead letter, never to the teacher.

Validation happens *before* batching: one bad text inside a RunInference batch would otherwise send the
whole batch to RunInference's own failure output.

Output records (one per good row):
    {"id": str, "text": str, "text_hash": str, "gold": int | None, "augmented": False,
     "source": str, "pos": int}
Dead-letter records (REJECTED_SCHEMA): {"source", "row" (original row as JSON), "reason", "detail"}.

Reasons: malformed_row, undecodable_bytes, missing_text, null_text, non_string_text, empty_text,
missing_id, unknown_label, duplicate_id.
"""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam import pvalue

from zuoxiao.core.rows import normalize_label, text_hash

REJECTED = "rejected"
REASONS = ("malformed_row", "undecodable_bytes", "missing_text", "null_text", "non_string_text",
           "empty_text", "missing_id", "unknown_label", "duplicate_id")


def _has_surrogates(s: str) -> bool:
    # Lone surrogates only appear when undecodable bytes were kept with errors="surrogateescape".
    return any("\udc80" <= ch <= "\udcff" for ch in s)


def _jsonable(v):
    if isinstance(v, bytes):
        return repr(v)
    if isinstance(v, str) and _has_surrogates(v):
        return repr(v.encode("utf-8", "surrogateescape"))
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def row_json(row) -> str:
    """The original row as JSON (bytes and undecodable text shown as Python bytes reprs)."""
    return json.dumps(_jsonable(row), ensure_ascii=False, default=str, sort_keys=True)


def rejected(raw: dict, reason: str, detail: str) -> dict:
    return {"source": raw.get("source", ""), "row": row_json(raw.get("row")), "reason": reason,
            "detail": detail}


class ValidateRow(beam.DoFn):
    """raw row -> record, or (tagged REJECTED) a dead-letter row naming the reason."""

    def __init__(self, text_column: str, label_column: str | None, id_column: str | None,
                 label_index: dict[str, int] | None):
        self.text_column = text_column
        self.label_column = label_column
        self.id_column = id_column
        self.label_index = label_index

    def process(self, raw: dict):
        if raw.get("error"):
            yield pvalue.TaggedOutput(REJECTED, rejected(raw, raw["error"], raw.get("detail", "")))
            return
        row = raw["row"]
        col = self.text_column
        if col not in row:
            yield pvalue.TaggedOutput(REJECTED, rejected(
                raw, "missing_text", f"row has no column {col!r} (columns: {sorted(row)})"))
            return
        text = row[col]
        if text is None:
            yield pvalue.TaggedOutput(REJECTED, rejected(raw, "null_text", f"{col!r} is null"))
            return
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as err:
                yield pvalue.TaggedOutput(REJECTED, rejected(raw, "undecodable_bytes", f"{col!r}: {err}"))
                return
        if not isinstance(text, str):
            yield pvalue.TaggedOutput(REJECTED, rejected(
                raw, "non_string_text", f"{col!r} is a {type(text).__name__} ({text!r:.40}), not a string"))
            return
        if _has_surrogates(text):
            yield pvalue.TaggedOutput(REJECTED, rejected(raw, "undecodable_bytes", f"{col!r} is not valid UTF-8"))
            return
        if not text.strip():
            yield pvalue.TaggedOutput(REJECTED, rejected(raw, "empty_text", f"{col!r} is empty or blank"))
            return
        gold = None
        if self.label_column is not None:
            label = normalize_label(row.get(self.label_column))
            if label is not None and self.label_index is not None:
                if label not in self.label_index:
                    yield pvalue.TaggedOutput(REJECTED, rejected(
                        raw, "unknown_label",
                        f"label {label!r} is not in the label set {sorted(self.label_index)}"))
                    return
                gold = self.label_index[label]
        th = text_hash(text)
        if self.id_column is not None:
            rid = row.get(self.id_column)
            rid = normalize_label(rid)  # same string normalisation: 7, 7.0 and "7" are one id
            if rid is None:
                yield pvalue.TaggedOutput(REJECTED, rejected(
                    raw, "missing_id", f"id column {self.id_column!r} is missing or empty"))
                return
        else:
            rid = th[:32]
        yield {"id": rid, "text": text, "text_hash": th, "gold": gold, "augmented": False,
               "source": raw["source"], "pos": raw["pos"], "row": row}


def _first_wins(item):
    """(id, [records]) -> the record read first (by file, then row), the others as duplicates."""
    rid, recs = item
    recs = sorted(recs, key=lambda r: (r["source"], r["pos"]))
    keep = dict(recs[0])
    keep.pop("row", None)
    yield keep
    for dup in recs[1:]:
        yield pvalue.TaggedOutput(REJECTED, {
            "source": dup["source"], "row": row_json(dup["row"]), "reason": "duplicate_id",
            "detail": f"id {rid!r} already seen at {recs[0]['source']} row {recs[0]['pos']}",
        })


class DropDuplicateIds(beam.PTransform):
    """Records -> (unique records, duplicates as dead letters). The survivor is chosen by position,
    not by arrival order, so every runner keeps the same row."""

    def expand(self, records):
        return (
            records
            | "KeyById" >> beam.Map(lambda r: (r["id"], r))
            | "GroupById" >> beam.GroupByKey()
            | "FirstWins" >> beam.FlatMap(_first_wins).with_outputs(REJECTED, main="records")
        )
