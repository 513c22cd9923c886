"""Read task data outside Beam (fine-tuning, evaluation sets): Parquet, JSONL, CSV, TSV.

The label pipeline reads with Beam IO (pipelines/); the small gold sets that training, compression and
the model card evaluate on are read here with pyarrow, through the same `DataSource` config.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from zuoxiao.core.config.base import DataSource
from zuoxiao.core.errors import InputError

SUFFIX_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
                  ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}


def resolve_files(source: DataSource) -> list[Path]:
    """Expand files, directories and globs, sorted, de-duplicated. Raises InputError if nothing matches."""
    files: list[Path] = []
    for pattern in source.paths:
        p = Path(pattern).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix in SUFFIX_FORMATS)
        elif p.is_file():
            found = [p]
        else:
            found = sorted(Path(q) for q in glob.glob(str(p), recursive=True) if Path(q).is_file())
        if not found:
            raise InputError(f"input path {pattern!r} matches no file; check the path or glob (cwd: {Path.cwd()})")
        files.extend(found)
    return sorted(dict.fromkeys(files))


def detect_format(path: Path, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {path} from its suffix {path.suffix!r}; "
            "set format: parquet|jsonl|csv|tsv in the data source"
        )
    return fmt


def read_file(path: Path, fmt: str) -> pa.Table:
    """One file as an Arrow table (all columns; CSV/TSV values as strings so nothing is coerced)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "jsonl":
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return pa.Table.from_pylist(rows)
        opts = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",",
                                  quote_char=False if fmt == "tsv" else '"')
        header = pacsv.open_csv(path, parse_options=opts).schema.names
        return pacsv.read_csv(
            path, parse_options=opts,
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in header}),
        )
    except (pa.ArrowInvalid, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path} as {fmt}: {err}") from None


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[int]
    label_names: list[str]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows left out


def read_labelled(source: DataSource, label_names: list[str] | None = None) -> LabelledData:
    """Texts and gold label indices. Rows with empty text or no label are skipped and counted.

    Labels are matched as strings against ``label_names``; with none given, the map is the sorted set
    of labels seen. A label outside the given names is an error (a wrong config, not bad rows).
    """
    if source.label_column is None:
        raise InputError("this data source needs gold labels: set label_column")
    texts, raw_labels, skipped = [], [], {"empty_text": 0, "missing_label": 0}
    for path in resolve_files(source):
        table = read_file(path, detect_format(path, source.format))
        if table.num_rows == 0:  # an empty file adds nothing (and has no columns to check)
            continue
        for col in (source.text_column, source.label_column):
            if col not in table.column_names:
                raise InputError(f"{path} has no column {col!r}; its columns are {table.column_names}")
        for text, label in zip(table.column(source.text_column).to_pylist(),
                               table.column(source.label_column).to_pylist(), strict=True):
            if not isinstance(text, str) or not text.strip():
                skipped["empty_text"] += 1
            elif label is None or str(label).strip() == "":
                skipped["missing_label"] += 1
            else:
                texts.append(text)
                raw_labels.append(str(label).strip())
            if source.limit and len(texts) >= source.limit:
                break
        if source.limit and len(texts) >= source.limit:
            break
    if not texts:
        raise InputError(f"no usable labelled rows in {source.paths} (skipped: {skipped})")
    names = list(label_names) if label_names else sorted(set(raw_labels))
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(raw_labels) - set(index))
    if unknown:
        raise InputError(
            f"labels {unknown[:5]} in {source.paths} are not in label_names {names}; "
            "fix task.label_names or the data"
        )
    return LabelledData(texts, [index[x] for x in raw_labels], names, {k: v for k, v in skipped.items() if v})
