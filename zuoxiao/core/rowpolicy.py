"""One row policy for every reader: what makes an input row unusable, what counts as a duplicate, and
how a file that mostly does not parse is refused.

The label stage (pipelines/validate.py) turns bad rows into dead letters; the gold-set reader
(`zuoxiao.core.goldsets.read_labelled`, behind finetune.data, task.dev and task.eval) skips them and
counts them; `zuoxiao validate --data` (zuoxiao/core/datacheck.py) predicts both. All three name a bad
row with the same reasons, so a row that is a dead letter in one stage is skipped in the others:

    malformed_row, undecodable_bytes   the line does not parse / is not UTF-8 (parse_rows' errors)
    missing_text, null_text, non_string_text, empty_text   the text cell is absent, null, not text, blank
    missing_label                      gold sets only: the label cell is empty (the label stage keeps the
                                       row unlabelled; a gold set cannot use it)
    unknown_label                      a label outside task.label_names (label stage: a dead letter;
                                       gold sets: an error, it is a wrong config, not a bad row)
    duplicate_id                       the row's id was seen before: the id column's value, or with no
                                       id column the exact text (its hash is the label stage's default id);
                                       the FIRST row read (file order, then line) is kept
    conflicting_label                  gold sets only: a duplicate whose gold label differs from the kept
                                       row's. First wins here too (the same row the label stage keeps); it
                                       is counted apart so that `validate --data` can show the conflict

Task kinds other than single_label (docs/task_kinds.md) add, in `task_row`:

    missing_text_pair                  pair kinds: the second text is absent, null, not text or blank
    malformed_labels                   multi_label: a cell that starts with "[" but is no JSON list
    non_numeric_score                  regression: the score is not a finite number (the place says which)
    malformed_tokens, malformed_tags   token: the words / tags are not a list of strings (or hold blanks)
    tag_length_mismatch                token: not one tag per word
    invalid_bio                        token: an I-x after O, at the start, or after another type

Leakage between sources is compared on `normalise_text` (strip, casefold, collapse whitespace): a test
text that differs from a training text only in case or spacing still measures memorisation.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from zuoxiao.core.datasource import detect_format, iter_rows, resolve_files
from zuoxiao.core.errors import InputError
from zuoxiao.core.rows import (
    TaskRow,
    bio_problem,
    normalize_label,
    normalize_label_list,
    parse_score,
    parse_words,
    text_hash,
)

REASONS = ("malformed_row", "undecodable_bytes", "missing_text", "null_text", "non_string_text", "empty_text",
           "missing_label", "unknown_label", "duplicate_id", "conflicting_label",
           "missing_text_pair", "malformed_labels", "non_numeric_score", "malformed_tokens", "malformed_tags",
           "tag_length_mismatch", "invalid_bio")
UNPARSABLE = ("malformed_row", "undecodable_bytes")
#: A gold file with more than this share of rows that do not parse is refused (a wrong delimiter or format
#: must not be silently reduced to the few rows that happen to parse).
MAX_UNPARSABLE_FRACTION = 0.5
SHOWN = 5  # locations kept per reason
_SPACE = re.compile(r"\s+")


def _has_surrogates(s: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in s)  # undecodable bytes kept by surrogateescape


def row_text(r: dict, text_column: str) -> tuple[str | None, str | None]:
    """A `parse_rows` row dict -> (text, None) or (None, reason), by the label stage's rules."""
    if r["error"]:
        return None, r["error"]
    row = r["row"]
    if text_column not in row:
        return None, "missing_text"
    text = row[text_column]
    if text is None:
        return None, "null_text"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return None, "undecodable_bytes"
    if not isinstance(text, str):
        return None, "non_string_text"
    if _has_surrogates(text):
        return None, "undecodable_bytes"
    if not text.strip():
        return None, "empty_text"
    return text, None


def task_row(r: dict, source, kind: str) -> tuple[TaskRow | None, str | None, str]:
    """A `parse_rows` row dict -> (TaskRow, None, "") or (None, reason, why) for ``kind`` (task.kind), by the
    rules of the module docstring. A row without gold is usable (TaskRow.gold is None): whether a source
    needs gold (missing_label) and which names it knows (unknown_label) is the caller's to judge.

    ``source`` is the DataSource (text_column, text_pair_column, label_column, label_separator,
    tokens_column, tags_column).
    """
    if kind == "token":
        return _token_row(r, source)
    text, reason = row_text(r, source.text_column)
    if reason is not None:
        return None, reason, ""
    row, pair = r["row"], None
    if source.text_pair_column is not None:
        pair, reason = row_text(r, source.text_pair_column)
        if reason is not None:
            return None, "undecodable_bytes" if reason == "undecodable_bytes" else "missing_text_pair", ""
    cell = row.get(source.label_column) if source.label_column else None
    if kind == "multi_label":
        try:
            return TaskRow(text, pair, labels=normalize_label_list(cell, source.label_separator)), None, ""
        except ValueError as err:
            return None, "malformed_labels", str(err)
    if kind == "regression":
        score, why = parse_score(cell)
        return (None, "non_numeric_score", why) if why else (TaskRow(text, pair, score=score), None, "")
    return TaskRow(text, pair, label=normalize_label(cell)), None, ""


def _token_row(r: dict, source) -> tuple[TaskRow | None, str | None, str]:
    if r["error"]:
        return None, r["error"], ""
    row = r["row"]
    if row.get(source.tokens_column) is None:
        return None, "missing_text" if source.tokens_column not in row else "null_text", ""
    tokens, why = parse_words(row[source.tokens_column], f"{source.tokens_column!r}")
    if tokens is None:
        return None, "malformed_tokens", why
    if not tokens:
        return None, "empty_text", ""
    text = " ".join(tokens)
    if _has_surrogates(text):
        return None, "undecodable_bytes", ""
    tags, why = parse_words(row.get(source.tags_column), f"{source.tags_column!r}")
    if why:
        return None, "malformed_tags", why
    if tags is not None and len(tags) != len(tokens):
        return None, "tag_length_mismatch", f"{len(tokens)} words but {len(tags)} tags"
    if tags is not None and (why := bio_problem(tags)):
        return None, "invalid_bio", why
    label = normalize_label(row.get(source.label_column)) if source.label_column else None
    return TaskRow(text, tokens=tokens, tags=tags, label=label), None, ""


def missing_gold(row: TaskRow, source) -> bool:
    """True when a gold set could not use the row: no class / label list / score; token: no tags, or no
    sentence label where the source has a label_column."""
    if row.tokens is not None:
        return row.tags is None or (source.label_column is not None and row.label is None)
    if source.label_column is None:
        return True
    return row.gold is None


def unknown_names(row: TaskRow, names: set[str]) -> list[str]:
    """The row's gold names (class, labels or tags; not a token row's sentence label) outside ``names``."""
    if row.tokens is not None:
        return sorted(set(row.tags or ()) - names)
    if row.labels is not None:
        return [x for x in row.labels if x not in names]
    return [row.label] if row.label is not None and row.label not in names else []


def row_key(row: dict, text: str, id_column: str | None) -> str | None:
    """The row's id as the label stage derives it (None: the id column is empty, `missing_id`)."""
    if id_column is None:
        return text_hash(text)[:32]
    return normalize_label(row.get(id_column))


def normalise_text(text: str) -> str:
    """Strip, casefold, collapse whitespace: the form texts are compared in across sources."""
    return _SPACE.sub(" ", text.strip().casefold())


def short_hash(text: str) -> bytes:
    """8 bytes standing for a text in the sets a data check keeps (millions of rows stay small)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


@dataclass
class Skips:
    """Rows left out, by reason, with the first few places ("g.csv line 3") of each."""

    counts: dict[str, int] = field(default_factory=dict)
    where: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, place: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        shown = self.where.setdefault(reason, [])
        if len(shown) < SHOWN:
            shown.append(place)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """'malformed_row 2 (g.csv line 3, g.csv line 7), duplicate_id 1 (g.csv line 9)'."""
        parts = []
        for reason, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            more = f", +{n - len(self.where[reason])} more" if n > len(self.where[reason]) else ""
            parts.append(f"{reason} {n} ({', '.join(self.where[reason])}{more})")
        return ", ".join(parts)


def gold_text(gold) -> str:
    """A TaskRow.gold as a report shows it: 'a' (a class), 'joy,love' (labels), 'O B-city | GetWeather' (tags and
    the sentence label), 4.2 (a score)."""
    if isinstance(gold, tuple) and len(gold) == 2 and isinstance(gold[0], tuple):
        tags, label = gold
        return repr(" ".join(tags) + (f" | {label}" if label is not None else ""))
    if isinstance(gold, tuple):
        return repr(",".join(gold))
    return repr(gold)


class Dedup:
    """First wins: remembers each id with its gold label and where it was first read."""

    def __init__(self):
        self.seen: dict[str, tuple[str | None, str]] = {}

    def check(self, key: str, label: str | None, place: str) -> tuple[str | None, str]:
        """-> (None, "") for a new id, else ("duplicate_id" | "conflicting_label", where the first was)."""
        first = self.seen.get(key)
        if first is None:
            self.seen[key] = (label, place)
            return None, ""
        if label is not None and first[0] is not None and label != first[0]:
            return "conflicting_label", f"{first[1]} (label {gold_text(first[0])}, kept)"
        return "duplicate_id", first[1]


def refuse_unparsable(path, bad: int, rows: int, first: str, bound: float = MAX_UNPARSABLE_FRACTION) -> None:
    """InputError when more than ``bound`` of a file's rows do not parse: the file, not rows, is wrong."""
    if rows and bad / rows > bound:
        raise InputError(
            f"{path}: {bad} of {rows} rows do not parse (first: {first}); the whole file is read wrongly, not a "
            "few rows: check its format (set format: csv|tsv|jsonl|parquet in the data source), its delimiter "
            "(csv = commas, tsv = tabs) and its quoting"
        )


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[int]
    label_names: list[str]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows left out
    skipped_where: dict[str, list[str]] = field(default_factory=dict)  # reason -> first few "file line N"


def kind_columns(source, kind: str, gold: bool) -> list[str]:
    """The columns a source must have for task.kind (a gold source its gold columns too)."""
    if kind == "token":
        return [source.tokens_column] + ([source.tags_column] if gold else []) + (
            [source.label_column] if gold and source.label_column else [])
    pair = [source.text_pair_column] if source.text_pair_column else []
    return [source.text_column, *pair] + ([source.label_column] if gold and source.label_column else [])


def read_task_rows(source, kind: str, where: str = "") -> tuple[list[TaskRow], Skips]:
    """The usable gold rows of a source for ``kind``, by this policy (for single_label the rows
    `zuoxiao.core.goldsets.policy_rows` yields): rows without gold, with a kind's problem (reasons above) or a
    repeated id (first wins) go into the Skips; a file that mostly does not parse, or lacks a column the kind
    needs, is an InputError (prefixed with ``where``). Stops after ``source.limit`` usable rows. Unknown
    names are not judged here (the caller has the label names: `unknown_names`)."""
    skips, dedup, out = Skips(), Dedup(), []
    for path in resolve_files(source):
        columns: set[str] = set()
        read, bad, first_bad = 0, 0, ""
        for r in iter_rows(path, detect_format(path, source.format)):
            read, place = read + 1, f"{path.name} line {r['line']}"
            row, reason, why = task_row(r, source, kind)
            columns.update(r["row"] if not r["error"] else {})
            if reason is None and missing_gold(row, source):
                reason = "missing_label"
            if reason is None:
                key = row_key(r["row"], row.key_text, source.id_column)
                reason, first = ("missing_id", "") if key is None else dedup.check(key, row.gold, place)
                why = f"first: {first}" if first else why
            if reason is not None:
                skips.add(reason, place + (f" ({why})" if why else ""))
                bad += reason in UNPARSABLE
                first_bad = first_bad or r["detail"]
                continue
            out.append(row)
            if source.limit and len(out) >= source.limit:
                break
        refuse_unparsable(path, bad, read, first_bad)
        missing = [c for c in kind_columns(source, kind, gold=True) if columns and c not in columns]
        if missing:
            raise InputError(f"{where}{path} has no column {missing[0]!r} (task.kind {kind}); its columns are "
                             f"{sorted(columns)}; set the columns of the data source (docs/task_kinds.md)")
        if source.limit and len(out) >= source.limit:
            break
    return out, skips
