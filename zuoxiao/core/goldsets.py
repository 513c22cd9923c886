"""Gold-labelled sets and the row policy applied to a data source.

`policy_rows` reads a source with the parsers of `zuoxiao.core.datasource` and applies the row policy
every stage shares (`zuoxiao.core.rowpolicy`): the label stage's dead letters, `read_labelled` (the small
gold sets that fine-tuning, training, compression and the model card evaluate on) and `task.split` skip
the same rows for the same reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from zuoxiao.core.config.base import DataSource
from zuoxiao.core.datasource import detect_format, iter_rows, resolve_files
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.rowpolicy import (
    UNPARSABLE,
    Dedup,
    LabelledData,
    Skips,
    refuse_unparsable,
    row_key,
    row_text,
)
from zuoxiao.core.rows import label_index, normalize_label

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the row policy, applied
#: How a library caller draws `sample:` / `task.split` before reading (teacher/finetune/goldsplit.py says it too).
PREPARE_HINT = ("In library use run `cfg, _ = zuoxiao.core.split.prepare_data(cfg)` first (the zuoxiao CLI and "
                "`zuoxiao run` do)")


def require_prepared(source: DataSource, key: str = "this data source") -> None:
    """Refuse a source whose `sample: N` was not drawn yet: reading it as is would silently use every row.

    zuoxiao.core.split.prepare_data draws the sample into a file (the CLI and `zuoxiao run` call it before any
    stage); library callers that load a config themselves must call it too.
    """
    if source.sample is not None:
        raise ConfigError(
            f"{key} ({', '.join(source.paths)}) has sample: {source.sample}, which is drawn before any stage reads "
            f"data; this call got the config as loaded, so it would read every row. {PREPARE_HINT}"
        )


def policy_rows(source: DataSource, skips: Skips, where: str = "") -> Iterator[tuple[dict, str, str | None]]:
    """The usable rows of a source by the row policy every stage shares (zuoxiao/core/rowpolicy.py):
    (row, text, normalised gold label or None without a label_column), in file order.

    Rows that do not parse, have no usable text, no label (when the source has a label_column) or a
    repeated id (the exact text, or the id column; the first row read wins) go into ``skips`` with their
    places. Stops after ``source.limit`` usable rows. A file where most rows do not parse, or that lacks a
    configured column, is an InputError (prefixed with ``where``, e.g. "task.split: ").
    """
    labelled = source.label_column is not None
    dedup, kept = Dedup(), 0
    for path in resolve_files(source):
        columns: set[str] = set()
        read, bad, first_bad = 0, 0, ""
        for r in iter_rows(path, detect_format(path, source.format)):
            read, place = read + 1, f"{path.name} line {r['line']}"
            text, reason = row_text(r, source.text_column)
            row = r["row"] if not r["error"] else {}
            columns.update(row)
            label = normalize_label(row.get(source.label_column)) if labelled else None
            if reason is None and labelled and label is None:
                reason = "missing_label"
            if reason is None:
                key = row_key(row, text, source.id_column)
                reason, first = ("missing_id", "") if key is None else dedup.check(key, label, place)
                place += f" (first: {first})" if first else ""
            if reason is not None:
                skips.add(reason, place)
                bad += reason in UNPARSABLE
                first_bad = first_bad or r["detail"]
                continue
            kept += 1
            yield row, text, label
            if source.limit and kept >= source.limit:  # limit: the first N usable rows, as everywhere
                break
        refuse_unparsable(path, bad, read, first_bad)
        for col in (source.text_column, source.label_column):
            if col and columns and col not in columns:  # an empty file adds nothing and has no columns to check
                raise InputError(f"{where}{path} has no column {col!r}; its columns are {sorted(columns)}; "
                                 "set text_column / label_column in the data source")
        if source.limit and kept >= source.limit:
            break


# ---------------------------------------------------------------- gold-labelled sets
def read_labelled(source: DataSource, label_names: list[str] | None = None, key: str = "this data source") -> LabelledData:
    """Texts and gold label indices, by the row policy every stage shares (`policy_rows`).

    Skipped rows are counted in `skipped` (reason -> rows) with their first places in `skipped_where`,
    and logged in one line. A file where most rows do not parse is an error (a wrong format or delimiter,
    not bad rows), and so is a missing column.

    Labels are matched with `normalize_label` against ``label_names``; with none given, the map is the
    sorted set of (normalised) labels seen. A label outside the given names is an error (a wrong config,
    not bad rows).
    """
    if source.label_column is None:
        raise InputError("this data source needs gold labels: set label_column")
    require_prepared(source, key)  # `key` (e.g. "task.dev") names the source in that error
    skips = Skips()
    texts, raw_labels = [], []
    for _, text, label in policy_rows(source, skips):
        texts.append(text)
        raw_labels.append(label)
    if skips.total:
        log.warning("%s: skipped %d rows (the label stage dead-letters the same rows): %s",
                    ", ".join(source.paths), skips.total, skips.summary())
    if not texts:
        raise InputError(f"no usable labelled rows in {source.paths} (skipped: {skips.counts})")
    names = list(label_names) if label_names else sorted(set(raw_labels))
    index = label_index(names)
    unknown = sorted(set(raw_labels) - set(index))
    if unknown:
        if source.limit:  # the usual cause on a file sorted by class (issue 13)
            why = (f"; this source has limit: {source.limit}, which keeps the first {source.limit} rows in file "
                   f"order (on a file sorted by class, only the first classes): for a representative subset set "
                   f"sample: {source.limit} instead, a stratified sample that keeps every class")
        else:
            why = ("; if label_names came from another source read with limit (it keeps the first N rows in file "
                   "order, so a file sorted by class loses classes), use sample: N there, a stratified sample")
        raise InputError(
            f"labels {unknown[:5]} in {source.paths} are not in label_names {names}; "
            "fix task.label_names or the data" + why
        )
    return LabelledData(texts, [index[x] for x in raw_labels], names, dict(skips.counts), dict(skips.where))
