"""Per-element validation, ids and de-duplication: bad rows go to the dead letter, never to the teacher.

Validation happens *before* batching: one bad text inside a RunInference batch would otherwise send the
whole batch to RunInference's own failure output.

Output records (one per good row):
    {"id": str, "text": str, "text_hash": str, "gold": int | None, "augmented": False,
     "source": str, "pos": int}
Dead-letter records (REJECTED_SCHEMA): {"source", "row" (original row as JSON), "reason", "detail"}.

Reasons: malformed_row, undecodable_bytes, missing_text, null_text, non_string_text, empty_text,
missing_id, unknown_label, duplicate_id (before the teacher) and non_finite_teacher_output (after it).

After the pipeline, `check_rejected_fraction` fails the stage (exit 2) when nothing was labeled or more
than `label.max_rejected_fraction` of the rows read were rejected, naming the top reasons and the fix:
a wrong column name rejects every row, and that must not end as an empty "successful" label output.
"""

from __future__ import annotations

import json
import logging

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from zuoxiao.core.errors import InputError
from zuoxiao.core.rows import label_index as label_index_of
from zuoxiao.core.rows import normalize_label, text_hash

log = logging.getLogger(__name__)

REJECTED = "rejected"
REASONS = ("malformed_row", "undecodable_bytes", "missing_text", "null_text", "non_string_text",
           "empty_text", "missing_id", "unknown_label", "duplicate_id", "non_finite_teacher_output",
           "endpoint_error")


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
    # "input" (which label input) is for the per-input counts only; REJECTED_SCHEMA does not store it
    return {"source": raw.get("source", ""), "row": row_json(raw.get("row")), "reason": reason,
            "detail": detail, "input": raw.get("input", 0)}


class ValidateRow(beam.DoFn):
    """raw row -> record, or (tagged REJECTED) a dead-letter row naming the reason."""

    def __init__(self, text_column: str, label_column: str | None, id_column: str | None,
                 label_index: dict[str, int] | None):
        self.text_column = text_column
        self.label_column = label_column
        self.id_column = id_column
        # Gold values and label names are both compared normalised (1 = 1.0 = " 1 ", True = true), by
        # the same function as every other reader; names that collide are a ConfigError here.
        self.label_index = (None if label_index is None
                            else label_index_of(sorted(label_index, key=label_index.__getitem__)))

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
               "source": raw["source"], "pos": raw["pos"], "input": raw.get("input", 0), "row": row}


def _first_wins(item):
    """(id, [records]) -> the record read first (by input: label.input before label.extra_inputs, then file,
    then row), the others as duplicates."""
    rid, recs = item
    recs = sorted(recs, key=lambda r: (r.get("input", 0), r["source"], r["pos"]))
    keep = dict(recs[0])
    keep.pop("row", None)
    yield keep
    for dup in recs[1:]:
        yield pvalue.TaggedOutput(REJECTED, {
            "source": dup["source"], "row": row_json(dup["row"]), "reason": "duplicate_id",
            "input": dup.get("input", 0),
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
            # the main output's type said outright: Beam >= 2.78 infers Union[TaggedOutput, dict] from the
            # generator, and a typed step downstream (label.augment's Perturb) then fails its type check
            | "FirstWins" >> beam.FlatMap(_first_wins).with_output_types(dict).with_outputs(REJECTED, main="records")
        )


class RejectNonFinite(beam.DoFn):
    """Labeled records -> the same records, or (tagged REJECTED) a dead letter when the teacher's
    logits [C] hold NaN or inf: such a row would train a NaN student, so it never reaches a shard.

    Augmented copies are not input rows (they are not counted in `read`): a non-finite one is dropped
    and counted in the `augmented_non_finite` metric instead of being dead-lettered.
    """

    def process(self, rec: dict):
        if rec.get("teacher_error"):  # a row the teacher could not label (a served teacher's refused request)
            err = rec["teacher_error"]
            if rec.get("augmented"):  # not an input row: dropped, like a non-finite augmented copy
                return
            yield pvalue.TaggedOutput(REJECTED, {
                "source": rec.get("source", ""), "row": row_json({"id": rec["id"], "text": rec["text"]}),
                "reason": err["reason"], "detail": err["detail"], "input": rec.get("input", 0)})
            return
        logits = np.asarray(rec["logits"], dtype=np.float32)
        if np.isfinite(logits).all():
            yield rec
            return
        beam.metrics.Metrics.counter("zuoxiao", "non_finite_teacher_output").inc()
        if rec.get("augmented"):
            beam.metrics.Metrics.counter("zuoxiao", "augmented_non_finite").inc()
            return
        shown = ", ".join(f"{v:.4g}" for v in logits[:8]) + (", ..." if logits.size > 8 else "")
        yield pvalue.TaggedOutput(REJECTED, {
            "source": rec.get("source", ""), "row": row_json({"id": rec["id"], "text": rec["text"]}),
            "reason": "non_finite_teacher_output", "input": rec.get("input", 0),
            "detail": f"teacher logits [{shown}] are not finite (row {rec.get('pos', '?')}); the teacher "
                      "(label.teacher.path) produces NaN/inf for this text: check its weights and precision",
        })


# ---------------------------------------------------------------- the bound on rejected rows
_FIXES = {
    "missing_text": "set label.input.text_column to the column that holds the text",
    "null_text": "the text column is null in these rows: check label.input.text_column",
    "non_string_text": "the text column is not text in these rows: check label.input.text_column",
    "empty_text": "the text column is empty in these rows: check label.input.text_column",
    "missing_id": "set label.input.id_column to a column every row has, or null to use text hashes",
    "duplicate_id": "label.input.id_column values repeat: choose a unique id column, or null",
    "unknown_label": "gold labels are outside the label set: fix task.label_names or label.input.label_column",
    "malformed_row": "rows do not parse: check label.input.format and the file (line numbers: run with a higher "
                     "label.max_rejected_fraction and read rejected/)",
    "undecodable_bytes": "the input is not UTF-8: re-save it as UTF-8",
    "non_finite_teacher_output": "the teacher outputs NaN/inf: check label.teacher.path (weights, dtype)",
    "endpoint_error": "the teacher endpoint refused these rows (status in rejected/ detail): check the server's log",
}


def _column_hint(text_column: str, files) -> str:
    """'text_column 'text' not found; a.jsonl has columns ['body', 'id']' for the first such file."""
    from zuoxiao.pipelines.io import file_columns

    for path, fmt in files or []:
        try:
            cols = file_columns(path, fmt)
        except InputError:
            continue
        if cols is not None and text_column not in cols:
            return f"text_column {text_column!r} not found; {path} has columns {cols}"
    return ""


def check_rejected_fraction(counts: dict, label_cfg, files=None) -> None:
    """Fail the label stage (InputError, exit 2) when it labeled nothing or rejected more than
    ``label_cfg.max_rejected_fraction`` of the rows it read.

    counts: the manifest counts (`read`, `labeled`, `rejected`, `rejected_by_reason`).
    files: the (path, format) inputs, used to name the columns a wrong text_column missed.
    """
    read, labeled, rejected = int(counts["read"]), int(counts["labeled"]), int(counts["rejected"])
    bound = label_cfg.max_rejected_fraction
    src = label_cfg.input
    paths = src.paths if src is not None else []
    if read == 0:
        raise InputError(f"the label input {paths} holds no rows (0 read); check label.input.path and the files")
    fraction = rejected / read
    if labeled > 0 and fraction <= bound:
        if rejected:
            log.info("rejected %d of %d rows (%.1f%%, bound %.0f%%)", rejected, read, 100 * fraction, 100 * bound)
        return
    reasons = sorted((counts.get("rejected_by_reason") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    top = ", ".join(f"{r}: {n}" for r, n in reasons[:3]) or "none recorded"
    fixes = []
    for reason, _ in reasons[:3]:
        hint = _column_hint(src.text_column, files) if reason == "missing_text" and src is not None else ""
        fixes.append(f"{reason}: {hint + '; ' if hint else ''}{_FIXES.get(reason, 'see the detail column')}")
    what = ("no row was labeled" if labeled == 0 else
            f"{fraction:.0%} of the rows were rejected, more than label.max_rejected_fraction={bound}")
    raise InputError(
        f"label stage failed: {what} (read {read}, labeled {labeled}, rejected {rejected}; top reasons: {top}). "
        "Fix: " + " | ".join(fixes) + ". Nothing was written; if this share of bad rows is expected, raise "
        "label.max_rejected_fraction"
    )
