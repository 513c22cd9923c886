"""The label stage's inputs: `label.input` plus any `label.extra_inputs`, read and validated as one set.

A bigger transfer set helps a student most when the extra text is unlabelled text of the task's kind
(Mukherjee & Awadallah 2020), and such text often lives elsewhere than the task rows, in another format
with other columns. So every input is read with its own format and limit (io.ReadTaskRows tags each raw
row with the input's index: 0 = label.input, i = label.extra_inputs[i-1]) and validated with its own
text / label / id columns (label_column: null = unlabelled); the records are then flattened into the one
Dedupe -> [Augment] -> teacher path of the graph (pipelines/label.py). Ids share one space: with text-hash
ids a text in two inputs is labelled once, and label.input's row wins (validate._first_wins sorts by input
first), the other one is dead-lettered as duplicate_id.

Counts per input: CountByInput writes ``<temp>/inputs.json`` (read, labeled, rejected by reason, per
input) next to the pipeline's summary; by_input_counts() turns it into the manifest's ``counts.by_input``
and checks read = labeled + rejected for every input, as the commit checks it for the whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam

from zuoxiao.core import fsio
from zuoxiao.core.config.base import DataSource
from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.shards import sha256_file
from zuoxiao.pipelines.io import ReadTaskRows, check_columns, input_files
from zuoxiao.pipelines.validate import REJECTED, ValidateRow

INPUT_COUNTS = "inputs.json"


@dataclass(frozen=True)
class LabelInput:
    """One input of the label stage: its config key, its source and the (path, format) files it reads."""

    name: str  # "label.input" or "label.extra_inputs[i]"
    source: DataSource
    files: list[tuple[str, str]]


def plan_inputs(label_cfg) -> list[LabelInput]:
    """label.input, then every label.extra_inputs entry, each resolved to files and checked for its text
    column before any compute (InputError naming the file and the columns it has)."""
    out = []
    for i, src in enumerate([label_cfg.input, *label_cfg.extra_inputs]):
        files = input_files(src)
        check_columns(files, src)
        out.append(LabelInput("label.input" if i == 0 else f"label.extra_inputs[{i - 1}]", src, files))
    return out


def read_and_validate(p, inputs: list[LabelInput], label_index: dict[str, int]):
    """Add Read -> [LimitRows] -> Validate per input to pipeline ``p``.

    Returns (raw rows, valid records, rejected rows), each flattened over the inputs. label.input keeps
    the step names it always had (Read, Validate); extra input i gets ReadExtra<i>, ValidateExtra<i>.
    """
    raws, records, rejects = [], [], []
    for i, inp in enumerate(inputs):
        sfx, src = ("" if i == 0 else f"Extra{i}"), inp.source
        raw = p | f"Read{sfx}" >> ReadTaskRows(inp.files, src.limit, i)
        if src.limit and len(inp.files) > 1:  # per-file limits above; here the input's global one
            raw = (raw
                   | f"LimitRows{sfx}" >> beam.combiners.Top.Smallest(src.limit, key=lambda r: (r["source"], r["pos"]))
                   | f"Unlist{sfx}" >> beam.FlatMap(lambda rows: rows))
        checked = raw | f"Validate{sfx}" >> beam.ParDo(
            ValidateRow(src.text_column, src.label_column, src.id_column, label_index)
        ).with_outputs(REJECTED, main="records")
        raws.append(raw)
        records.append(checked.records)
        rejects.append(checked[REJECTED])
    if len(inputs) == 1:
        return raws[0], records[0], rejects[0]
    return (tuple(raws) | "AllInputsRead" >> beam.Flatten(),
            tuple(records) | "AllInputsValid" >> beam.Flatten(),
            tuple(rejects) | "AllInputsInvalid" >> beam.Flatten())


def _count_key(kind: str):
    def key(r: dict) -> list[str]:
        if kind == "labeled" and r.get("augmented"):
            return []  # augmented copies are not input rows
        reason = f"\t{r['reason']}" if kind == "rejected" else ""
        return [f"{r.get('input', 0)}\t{kind}{reason}"]
    return key


def _write_counts(pairs: list, temp_dir: str) -> None:
    fsio.write_bytes_atomic(fsio.join(temp_dir, INPUT_COUNTS), json.dumps(sorted(pairs)).encode())


class CountByInput(beam.PTransform):
    """(raw rows, shard records, rejected rows) -> <temp>/inputs.json: [[\"<input>\\t<kind>[\\t<reason>]\", n]].

    Count.PerElement + ToList give one element even when nothing was read, so the file always exists
    after a successful pipeline.
    """

    def __init__(self, temp_dir: str):
        super().__init__()
        self.temp_dir = temp_dir

    def expand(self, pcolls):
        raw, records, rejected = pcolls
        return (
            (raw | "ReadKeys" >> beam.FlatMap(_count_key("read")),
             records | "LabeledKeys" >> beam.FlatMap(_count_key("labeled")),
             rejected | "RejectedKeys" >> beam.FlatMap(_count_key("rejected")))
            | "AllKeys" >> beam.Flatten()
            | "CountKeys" >> beam.combiners.Count.PerElement()
            | "ToList" >> beam.combiners.ToList()
            | "Write" >> beam.Map(fsio.InWorker(_write_counts), temp_dir=self.temp_dir)
        )


def by_input_counts(temp_dir: str, inputs: list[LabelInput]) -> list[dict]:
    """inputs.json -> [{input, paths, read, labeled, rejected, rejected_by_reason}] in config order."""
    out = [{"input": inp.name, "paths": inp.source.paths, "read": 0, "labeled": 0, "rejected": 0,
            "rejected_by_reason": {}} for inp in inputs]
    for key, n in json.loads(fsio.read_bytes(fsio.join(temp_dir, INPUT_COUNTS))):
        index, kind, *reason = key.split("\t")
        entry = out[int(index)]
        entry[kind] += n
        if reason:
            entry["rejected_by_reason"][reason[0]] = n
    for e in out:
        e["rejected_by_reason"] = dict(sorted(e["rejected_by_reason"].items()))
        if e["read"] != e["labeled"] + e["rejected"]:
            raise IntegrityError(f"label pipeline lost rows of {e['input']}: read {e['read']} but labeled "
                                 f"{e['labeled']} + rejected {e['rejected']}; this is a bug, please report it")
    return out


def input_fingerprints(inputs: list[LabelInput]) -> list[dict]:
    """The manifest's `inputs`: every file read, with its input, and (local files) size, mtime, sha256."""
    out = []
    for inp in inputs:
        for path, fmt in inp.files:
            if "://" in path:
                out.append({"path": path, "format": fmt, "input": inp.name})
                continue
            st = os.stat(path)
            out.append({"path": str(Path(path).resolve()), "format": fmt, "bytes": st.st_size,
                        "mtime": st.st_mtime, "sha256": sha256_file(path), "input": inp.name})
    return out
