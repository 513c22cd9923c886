"""`zuoxiao validate --data` and the first step of `zuoxiao run`: read every configured source once and
report every data problem at once, before any model loads.

Sources: finetune.data, label.input (and label.extra_inputs), task.dev, task.eval. Each is parsed by the same parser as the stages
(`zuoxiao.core.datasource`) and judged by the same row policy (`zuoxiao.core.rowpolicy`), so what the
report says a stage will do with a row is what the stage does. The report holds rows per source, parse
errors with file and line, label coverage and class balance, duplicates within a source and texts shared
across sources (task.dev / task.eval texts in finetune.data or label.input: train/test leakage), text
lengths against the teacher's and the student's max_length, and per stage what it will skip or
dead-letter. No tokenizer is loaded: token counts are estimated from whitespace words (x1.3, about
WordPiece's rate on English) and are marked as estimates.

`errors` stop `zuoxiao run` (exit 2) unless run.data_check is warn/off; `warnings` are printed.
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from dataclasses import dataclass, field

from zuoxiao.core.datasource import detect_format, iter_rows, resolve_files
from zuoxiao.core.errors import InputError
from zuoxiao.core.rowpolicy import (
    MAX_UNPARSABLE_FRACTION,
    UNPARSABLE,
    Dedup,
    Skips,
    kind_columns,
    missing_gold,
    normalise_text,
    row_key,
    short_hash,
    task_row,
    unknown_names,
)
from zuoxiao.core.rows import PAIR_JOIN, normalize_label

GOLD = ("finetune.data", "task.dev", "task.eval")
TRAIN_SIDE, TEST_SIDE = ("finetune.data", "label.input"), ("task.dev", "task.eval")
USED_BY = {"finetune.data": "finetune", "label.input": "label", "task.dev": "finetune/train (model selection)",
           "task.eval": "train/compress/ship (evaluation)"}
TOKENS_PER_WORD = 1.3
IMBALANCE_WARN = 10.0  # largest / smallest class
LENGTH_SHIFT_WARN = 2.0  # task.eval's median words over task.dev's / label.input's (or the reverse)
LENGTH_SHIFT_MIN_WORDS = 6  # ... when the longer median has at least this many words
SHOWN = 5


@dataclass
class SourceScan:
    name: str
    paths: list[str]
    gold: bool
    files: int = 0
    rows: int = 0
    skips: Skips = field(default_factory=Skips)
    parse_errors: list[str] = field(default_factory=list)
    labels: Counter = field(default_factory=Counter)
    unknown: Counter = field(default_factory=Counter)
    words: array = field(default_factory=lambda: array("I"))
    normalised: dict = field(default_factory=dict)  # short hash -> first text (test side) or None
    near_duplicates: int = 0
    missing_columns: list[str] = field(default_factory=list)
    fatal: str | None = None
    kind: str = "single_label"
    scores: array = field(default_factory=lambda: array("d"))  # regression: the gold scores
    empty_label_sets: int = 0  # multi_label: rows whose gold is an explicit empty list
    entities: Counter = field(default_factory=Counter)  # token: gold entities per type
    sentence_labels: Counter = field(default_factory=Counter)  # token: the joint sentence labels

    @property
    def usable(self) -> int:
        return len(self.words)

    def lengths(self) -> dict:
        if not self.words:
            return {}
        w = sorted(self.words)
        pick = {"p50": w[len(w) // 2], "p95": w[min(len(w) - 1, math.ceil(0.95 * len(w)) - 1)], "max": w[-1]}
        return {"words": pick, "tokens_estimated": {k: math.ceil(v * TOKENS_PER_WORD) for k, v in pick.items()}}

    def to_json(self) -> dict:
        counts = [n for n in self.labels.values() if n]
        return {"paths": self.paths, "files": self.files, "rows": self.rows, "usable": self.usable,
                "skipped": dict(self.skips.counts), "skipped_where": dict(self.skips.where),
                "parse_errors": self.parse_errors, "labels": dict(sorted(self.labels.items())),
                "unknown_labels": dict(self.unknown),
                "imbalance": round(max(counts) / min(counts), 2) if counts and self.kind != "token" else None,
                "near_duplicates": self.near_duplicates, "missing_columns": self.missing_columns,
                "length": self.lengths(), "fatal": self.fatal, **self.kind_json()}

    def kind_json(self) -> dict:
        """What a task kind adds to the report (nothing for single_label, so its report is as before)."""
        if self.kind == "regression":
            sc = self.scores
            return {"scores": {"n": len(sc), "min": min(sc), "max": max(sc), "mean": round(sum(sc) / len(sc), 4)}
                    if sc else {"n": 0}}
        if self.kind == "multi_label":
            return {"empty_label_sets": self.empty_label_sets}
        if self.kind == "token":
            return {"entities": dict(sorted(self.entities.items())),
                    "sentence_labels": dict(sorted(self.sentence_labels.items()))}
        return {}


@dataclass
class DataReport:
    sources: dict[str, dict]
    overlaps: dict[str, int]
    actions: list[str]
    errors: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict:
        """The headline numbers (the `data_checked` event)."""
        return {"rows": {k: v["rows"] for k, v in self.sources.items()},
                "usable": {k: v["usable"] for k, v in self.sources.items()},
                "skipped": {k: sum(v["skipped"].values()) for k, v in self.sources.items()},
                "overlaps": self.overlaps, "errors": len(self.errors), "warnings": len(self.warnings)}

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "errors": self.errors, "warnings": self.warnings, "actions": self.actions,
                           "overlaps": self.overlaps, "sources": self.sources}, indent=2, ensure_ascii=False)

    def lines(self) -> list[tuple[str, str]]:
        """(style, text) lines: the plain rendering, and the rich one with the styles."""
        out = [("bold", "data check (token counts are estimates: 1.3 x whitespace words)")]
        for name, s in self.sources.items():
            ln = s["length"].get("tokens_estimated", {})
            what = (f"scores {s['scores']['min']:g}..{s['scores']['max']:g}" if s.get("scores", {}).get("n")
                    else f"{len(s['labels'])} {'tags' if 'entities' in s else 'classes'}")
            out.append(("", f"  {name}: {s['rows']} rows, {s['usable']} usable, {what}"
                        + (f", imbalance {s['imbalance']}x" if s["imbalance"] else "")
                        + (f", ~tokens p50/p95/max {ln['p50']}/{ln['p95']}/{ln['max']}" if ln else "")))
        out += [("", f"  will do: {a}") for a in self.actions]
        out += [("yellow", f"  warning: {w}") for w in self.warnings]
        out += [("red", f"  ERROR: {e}") for e in self.errors]
        verdict = (f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)" if self.errors or self.warnings
                   else "no problems found")
        out.append(("red" if self.errors else "green", f"data check: {verdict}"))
        return out

    def to_text(self) -> str:
        return "\n".join(text for _, text in self.lines())

    def print_to(self, console) -> None:
        for style, text in self.lines():
            console.print(text, style=style or None, markup=False, highlight=False)


def _sources(cfg) -> dict:
    found = {"finetune.data": cfg.finetune.data if cfg.finetune is not None else None,
             "label.input": cfg.label.input, "task.dev": cfg.task.dev, "task.eval": cfg.task.eval}
    found.update({f"label.extra_inputs[{i}]": src for i, src in enumerate(cfg.label.extra_inputs or [])})
    return {k: v for k, v in found.items() if v is not None}


def _labelled_by_label_stage(name: str) -> bool:
    """label.input and every label.extra_inputs[i]: read by the Beam stage (bad rows -> dead letters)."""
    return name.startswith("label.")


def _scan(name: str, src, label_set: set[str] | None, kind: str = "single_label") -> SourceScan:
    """One pass over one source, by the row policy. Never raises: problems go into the scan."""
    gold = name in GOLD
    s = SourceScan(name, src.paths, gold, kind=kind)
    try:
        files = resolve_files(src)
    except InputError as err:
        s.fatal = str(err)
        return s
    s.files, dedup = len(files), Dedup()
    for path in files:
        columns: set[str] = set()
        try:
            for r in iter_rows(path, detect_format(path, src.format)):
                if src.limit and (s.usable if gold else s.rows) >= src.limit:
                    break  # the stages read no further (gold sets: usable rows; label: rows read)
                s.rows += 1
                place = f"{path.name} line {r['line']}"
                row = r["row"] if not r["error"] else {}
                columns.update(row)
                task, reason, why = task_row(r, src, kind)
                place += f" ({why})" if why else ""
                if reason is None and gold and missing_gold(task, src):
                    reason = "missing_label"
                unknown = unknown_names(task, label_set) if reason is None and label_set is not None else []
                if unknown:
                    s.unknown.update(unknown)
                    reason = None if gold else "unknown_label"  # gold: an error below, not a skipped row
                if reason is None:
                    key = row_key(row, task.key_text, src.id_column)
                    reason, first = ("missing_id", "") if key is None else dedup.check(key, task.gold, place)
                    if reason == "conflicting_label" and not gold:
                        reason = "duplicate_id"  # the label stage drops a repeated id whatever its label
                    place += f" (first: {first})" if first else ""
                if reason is not None:
                    s.skips.add(reason, place)
                    if reason in UNPARSABLE and len(s.parse_errors) < SHOWN:
                        s.parse_errors.append(f"{path.name}: {r['detail']}")
                    continue
                _count(s, task, name)
        except InputError as err:
            s.fatal = str(err)
            return s
        s.missing_columns += [f"{path.name}: no column {c!r} (columns: {sorted(columns)})"
                              for c in kind_columns(src, kind, gold) if columns and c not in columns]
    return s


def _count(s: SourceScan, task, name: str) -> None:
    """One usable row into the scan: its length, gold and compared form (near duplicates, leakage)."""
    s.words.append(len(task.tokens) if task.tokens is not None else len(task.key_text.split()))
    if task.tags is not None:
        s.labels.update(task.tags)
        s.entities.update(t[2:] for t in task.tags if t.startswith("B-"))
    elif task.labels is not None:
        s.labels.update(task.labels)
        s.empty_label_sets += not task.labels
    elif task.score is not None:
        s.scores.append(task.score)
    if task.label is not None:
        (s.sentence_labels if task.tokens is not None else s.labels)[task.label] += 1
    form = normalise_text(task.text) + ("" if task.text_pair is None else "\0" + normalise_text(task.text_pair))
    h = short_hash(form)
    if h in s.normalised:
        s.near_duplicates += 1  # same text up to case and spacing, not the same id
    else:  # test side keeps the text, for the examples of a leak
        s.normalised[h] = task.key_text.replace(PAIR_JOIN, " || ") if name in TEST_SIDE else None


def _universe(cfg, scans: dict) -> tuple[set[str] | None, str]:
    if cfg.task.label_names:
        return {normalize_label(x) for x in cfg.task.label_names}, "task.label_names"
    for name in ("finetune.data", "label.input"):
        if name in scans and scans[name].labels:
            return set(scans[name].labels), f"the labels of {name} (task.label_names is null)"
    return None, ""


def check_data(cfg) -> DataReport:
    """Read every configured source once and report rows, parse errors, coverage, balance, duplicates,
    leakage, lengths and what each stage will do. Loads no model."""
    srcs = _sources(cfg)
    named = {normalize_label(x) for x in cfg.task.label_names} if cfg.task.label_names else None
    scans = {name: _scan(name, src, named, cfg.task.kind) for name, src in srcs.items()}
    universe, where = _universe(cfg, scans)
    errors, warnings, actions = [], [], []
    strict = named is not None
    bound = cfg.label.max_rejected_fraction
    for name, s in scans.items():
        verb = "-> dead letters (label/rejected/)" if _labelled_by_label_stage(name) else "skipped"
        if s.fatal:
            errors.append(f"{name}: {s.fatal}")
            continue
        errors += [f"{name}: {m}; set text_column / label_column in the data source" for m in s.missing_columns]
        bad = sum(s.skips.counts.get(r, 0) for r in UNPARSABLE)
        if bad:
            more = f" (+{bad - len(s.parse_errors)} more)" if bad > len(s.parse_errors) else ""
            line = f"{name}: {bad} of {s.rows} rows do not parse: " + "; ".join(s.parse_errors) + more
            share = bound if _labelled_by_label_stage(name) else MAX_UNPARSABLE_FRACTION
            if bad / max(s.rows, 1) > share:
                errors.append(line + "; check the format and delimiter of the file (format: csv|tsv|jsonl|parquet)")
            else:
                warnings.append(line)
        if s.unknown and s.gold:
            errors.append(f"{name}: labels {sorted(s.unknown)[:SHOWN]} ({sum(s.unknown.values())} rows) are not in "
                          f"task.label_names {cfg.task.label_names}; fix task.label_names or the data")
        if not s.usable and not s.missing_columns:
            errors.append(f"{name}: no usable rows in {s.paths} (read {s.rows}; skipped: {s.skips.counts})")
        if s.skips.total:
            actions.append(f"{USED_BY.get(name, 'label')}: {name} {s.skips.total} rows {verb}: {s.skips.summary()}")
        if _labelled_by_label_stage(name) and s.rows and s.skips.total / s.rows > bound:
            errors.append(f"{name}: {s.skips.total} of {s.rows} rows would be rejected, more than "
                          f"label.max_rejected_fraction={bound}: the label stage would fail; fix the rows above")
        dups = s.skips.counts.get("duplicate_id", 0)
        if dups or s.near_duplicates:
            warnings.append(f"{name}: {dups} duplicate rows (same id or exact text: first wins, the others {verb})"
                            + (f"; {s.near_duplicates} more rows repeat a text up to case/spacing under another "
                               "id (kept)" if s.near_duplicates else ""))
        if s.skips.counts.get("conflicting_label"):
            warnings.append(f"{name}: {s.skips.counts['conflicting_label']} texts repeat with a different gold label "
                            f"(first kept): {', '.join(s.skips.where['conflicting_label'][:3])}")
        counts = [n for n in s.labels.values() if n]
        _kind_checks(name, s, errors, warnings)
        if s.gold and counts and s.kind != "token" and max(counts) / min(counts) > IMBALANCE_WARN:
            top, low = s.labels.most_common()[0], s.labels.most_common()[-1]
            warnings.append(f"{name}: classes are imbalanced {max(counts) / min(counts):.0f}x ({top[0]!r}: {top[1]} "
                            f"rows, {low[0]!r}: {low[1]}); accuracy hides the small classes")
        _lengths(cfg, name, s, warnings)
    for name in TEST_SIDE + ("finetune.data",):
        s = scans.get(name)
        if universe is None or s is None or s.fatal or not s.usable:
            continue
        missing = sorted(universe - set(s.labels))
        # A class with under 3 labelled rows in all sources cannot give one to train, dev and test (task.split
        # keeps it in train): a warning, not an error that would stop every run of a long-tailed task.
        distinct = {tuple(x.paths): x for x in scans.values()}.values()  # a file read as two sources counts once
        tiny = [c for c in missing if sum(x.labels.get(c, 0) for x in distinct) < 3]
        for group, fatal in ((sorted(set(missing) - set(tiny)), True), (tiny, False)):
            if not group:
                continue
            msg = (f"{name}: {len(group)} of {len(universe)} classes of {where} have no row: {group[:10]}"
                   + (" ..." if len(group) > 10 else "") + "; the model is never measured (or trained) on them: "
                   + ("add rows of these classes, or split the labelled data stratified by class" if fatal else
                      "they have fewer than 3 gold rows in all the data, too few to hold one out; add rows"))
            # token: a rare tag missing from a held-out set is usual (SNIPS: 72 tags), so never an error
            (errors if fatal and strict and name in TEST_SIDE and cfg.task.kind != "token" else warnings).append(msg)
        extra = sorted(set(s.labels) - universe) if not strict and name in TEST_SIDE else []
        if extra and "finetune.data" in scans:  # finetune reads dev/eval with finetune.data's label map
            errors.append(f"{name}: labels {extra[:SHOWN]} do not occur in finetune.data, whose labels are the "
                          "task's (task.label_names is null); set task.label_names or fix the data")
    _length_shift(scans, warnings)
    overlaps = _overlaps(scans, warnings)
    return DataReport({k: v.to_json() for k, v in scans.items()}, overlaps, actions, errors, warnings)


def _kind_checks(name: str, s: SourceScan, errors: list, warnings: list) -> None:
    """What only some task kinds can get wrong: a constant score, empty label sets, no entity at all."""
    if not s.gold or not s.usable:
        return
    if s.kind == "regression" and s.scores and min(s.scores) == max(s.scores):
        errors.append(f"{name}: every gold score is {s.scores[0]:g}; a regression needs scores that vary (is "
                      "label_column the score column?)")
    if s.kind == "multi_label" and s.empty_label_sets:
        warnings.append(f"{name}: {s.empty_label_sets} rows carry an explicit empty label list ([]): kept as 'none of "
                        "the labels'; if they are unlabelled, leave the cell empty instead")
    if s.kind == "token" and not s.entities:
        errors.append(f"{name}: no row has an entity (every tag is O); is tags_column the tag column?")


def _lengths(cfg, name: str, s: SourceScan, warnings: list) -> None:
    limits = {"student (train.max_length)": cfg.train.max_length,
              "teacher (label.teacher.max_length)": cfg.label.teacher.max_length}
    if name == "finetune.data":
        limits = {"teacher (finetune.teacher.max_length)": cfg.finetune.teacher.max_length}
    for who, limit in limits.items():
        over = sum(1 for w in s.words if math.ceil(w * TOKENS_PER_WORD) > limit)
        if over and over / s.usable > 0.05:
            warnings.append(f"{name}: ~{over / s.usable:.0%} of texts exceed the {who} of {limit} tokens (estimated) "
                            "and are truncated; raise max_length if the end of a text matters")


def _length_shift(scans: dict, warnings: list) -> None:
    """task.eval much longer (or shorter) than the text that chooses (task.dev) or teaches (label.input).

    SST-2 is the case in point: dev and transfer rows are phrases (median 7 words), test rows sentences
    (median 19), and every dev-chosen knob measured there moved dev and test apart (docs/train.md).
    """
    def median_words(s: SourceScan | None) -> int | None:
        return s.lengths()["words"]["p50"] if s is not None and not s.fatal and s.usable else None

    ev = median_words(scans.get("task.eval"))
    consequence = {"task.dev": "checkpoints, the blend and searches are chosen on text unlike the evaluation's: "
                               "give a dev set drawn like task.eval (or task.split)",
                   "label.input": "the student is distilled on text unlike what it is measured on, and loses "
                                  "most where the lengths differ: add transfer text like task.eval's"}
    for name, why in consequence.items():
        other = median_words(scans.get(name))
        if not ev or not other:
            continue
        ratio = max(ev, other) / min(ev, other)
        if ratio >= LENGTH_SHIFT_WARN and max(ev, other) >= LENGTH_SHIFT_MIN_WORDS:
            warnings.append(f"task.eval texts are {'longer' if ev > other else 'shorter'} than {name}'s (median "
                            f"{ev} vs {other} words, {ratio:.1f}x): {why}")


def _overlaps(scans: dict, warnings: list) -> dict[str, int]:
    """Texts of task.dev / task.eval also in a training source (and dev in eval), compared normalised."""
    out = {}
    train_side = [*TRAIN_SIDE, *(n for n in scans if n.startswith("label.extra_inputs"))]
    pairs = [(t, r) for t in TEST_SIDE for r in train_side] + [("task.eval", "task.dev")]
    for test, train in pairs:
        a, b = scans.get(test), scans.get(train)
        if a is None or b is None or a.fatal or b.fatal:
            continue
        shared = [h for h in a.normalised if h in b.normalised]
        if not shared:
            continue
        out[f"{test} & {train}"] = len(shared)
        shown = ", ".join(repr(a.normalised[h][:60]) for h in shared[:3])
        warnings.append(f"train/test leakage: {len(shared)} of {len(a.normalised)} distinct {test} texts also occur in "
                        f"{train} (compared case- and space-insensitively), e.g. {shown}; {test} accuracy then "
                        f"measures memory: remove them from {train} or from {test}")
    return out


def check_before_run(cfg, console, emit) -> DataReport | None:
    """`zuoxiao run`'s first step (run.data_check): print the report, log `data_checked`, stop on errors."""
    mode = cfg.run.data_check
    if mode == "off":
        return None
    report = check_data(cfg)
    report.print_to(console)
    emit("data_checked", **report.counts())
    if report.errors and mode == "error":
        raise InputError(f"data check: {len(report.errors)} error(s), nothing was computed: "
                         + " | ".join(report.errors[:SHOWN]) + " (run `zuoxiao validate CONFIG --data` for the "
                         "full report; set run.data_check: warn to run anyway)")
    return report
