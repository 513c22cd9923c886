"""Beam readers for task data: Parquet, JSONL, CSV and no-quote TSV, from files, dirs or globs.

Every physical row becomes one *raw row* element, good or bad, so that nothing read is lost:

    {"input": int,                            # which input: 0 = label.input, i = label.extra_inputs[i-1]
     "source": str, "pos": int, "line": int,  # file, 0-based row number, 1-based line (for dead letters)
     "row": dict | None,                      # column -> value as read (undecodable text kept as bytes)
     "error": str | None, "detail": str}      # set when the row could not even be parsed

Files are matched with Beam's `fileio` (so gs://, s3:// ... patterns work on remote runners) and each
file is parsed by one DoFn call, streaming, with `zuoxiao.core.datasource.parse_rows` (the parser the
gold-set readers use too): JSONL/TSV line by line, CSV with strict quoting (quoted fields may span lines;
a quote that never closes costs its own line, never the rows after it), Parquet a record batch at a time.
A leading UTF-8 BOM is dropped. Before any compute, local inputs are checked here: the files exist,
their header is readable and holds the text column, and the output directory is writable.
"""

from __future__ import annotations

import logging
from pathlib import Path

import apache_beam as beam
from apache_beam.io import fileio

from zuoxiao.core.config.base import DataSource
from zuoxiao.core.datasource import SUFFIX_FORMATS, detect_format, header_columns, parse_rows, resolve_files
from zuoxiao.core.errors import InputError

log = logging.getLogger(__name__)


def _is_remote(pattern: str) -> bool:
    return "://" in pattern


def input_files(source: DataSource) -> list[tuple[str, str]]:
    """(path or remote pattern, format) for every input; local patterns are expanded and checked here,
    before any compute, so a typo is an InputError naming the pattern."""
    local = [p for p in source.paths if not _is_remote(p)]
    out: list[tuple[str, str]] = []
    if local:
        sub = source.model_copy(update={"path": local})
        out += [(str(p), detect_format(p, source.format)) for p in resolve_files(sub)]
    for pattern in source.paths:
        if _is_remote(pattern):
            fmt = source.format if source.format != "auto" else SUFFIX_FORMATS.get(Path(pattern).suffix.lower())
            if fmt is None:
                raise InputError(f"cannot tell the format of {pattern!r}; set format: parquet|jsonl|csv|tsv")
            out.append((pattern, fmt))
    return out


def file_columns(path: str, fmt: str) -> list[str] | None:
    """The columns of a local file as the pipeline's parser sees them (CSV/TSV header without BOM,
    Parquet schema, keys of the first JSONL object); None for remote files or an empty JSONL file.
    Raises InputError for a header that cannot be read (not UTF-8, broken quoting, not Parquet)."""
    import pyarrow.parquet as pq

    if _is_remote(path):
        return None
    if fmt == "parquet":
        try:
            return pq.read_schema(path).names
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for non-Parquet files
            raise InputError(f"cannot read {path} as Parquet ({err}); check the file or set format") from None
    with open(path, "rb") as f:
        if fmt in ("csv", "tsv"):
            return header_columns(f, fmt, path)
        for r in parse_rows(f, fmt, path):
            if not r["error"]:
                return list(r["row"])
    return None


def check_columns(files: list[tuple[str, str]], source: DataSource) -> None:
    """Fail fast when a local CSV/TSV/Parquet file lacks the text column (a config error, not bad rows)."""
    for path, fmt in files:
        names = file_columns(path, fmt)
        if names is None or fmt == "jsonl":  # JSONL keys may differ per row: judged per row (missing_text)
            continue
        if source.text_column not in names:
            raise InputError(
                f"{path} has no text column {source.text_column!r}; its columns are {names}. "
                "Set text_column in the data source"
            )
        if source.label_column and source.label_column not in names:
            log.warning("%s has no label column %r (columns %s): its rows are unlabelled (gold null); set "
                        "label_column: null to silence this", path, source.label_column, names)


def check_output_dir(out_dir) -> None:
    """Fail before any compute when the output directory cannot be created or written: a file in its
    place, a file among its parents, no permission, a read-only file system. Remote URIs are left to
    the filesystem that writes them."""
    import os
    import tempfile

    out = Path(out_dir)
    if _is_remote(str(out_dir)):
        return
    for p in [out, *out.parents]:
        if p.exists() and not p.is_dir():
            where = "the output directory" if p == out else f"a parent of the output directory {out}"
            raise InputError(f"{p} is a file, not a directory, but it is {where}; choose another output "
                             "(--output or output_dir) or move the file away")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".zuoxiao-write-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"cannot write to the output directory {out}: {err.strerror or err}; choose a "
                         "writable --output / output_dir or fix its permissions") from None


def _beam_safe(value):
    """Strings holding surrogate escapes (undecodable input bytes) cannot cross a Beam coder: keep them
    as the original bytes; the validator rejects them per row as undecodable_bytes."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


class ParseFile(beam.DoFn):
    """ReadableFile -> raw rows (see module docstring), parsed by zuoxiao.core.datasource.parse_rows:
    the same parser the gold-set readers use. Parse errors become raw rows with `error`."""

    def __init__(self, formats: dict[str, str], limit: int | None = None, input_index: int = 0):
        self.formats = formats  # path -> format; remote matches fall back to their suffix
        self.limit = limit
        self.input_index = input_index

    def _format(self, path: str) -> str:
        if path in self.formats:
            return self.formats[path]
        fmt = SUFFIX_FORMATS.get(Path(path).suffix.lower())
        return fmt or next(iter(self.formats.values()))

    def process(self, readable):
        path = readable.metadata.path
        fmt = self._format(path)
        with readable.open() as f:
            for n, raw in enumerate(parse_rows(f, fmt, path)):
                if self.limit is not None and n >= self.limit:
                    break
                row = raw["row"]
                if row is not None and fmt != "parquet":
                    row = {k: _beam_safe(v) for k, v in row.items()}
                yield {"input": self.input_index, "source": path, "pos": raw["pos"], "line": raw["line"], "row": row,
                       "error": raw["error"], "detail": raw["detail"]}


class ReadTaskRows(beam.PTransform):
    """PBegin -> raw rows of every file of a DataSource (see module docstring), tagged with ``input_index``."""

    def __init__(self, files: list[tuple[str, str]], limit: int | None = None, input_index: int = 0):
        super().__init__()
        self.files = files
        self.limit = limit
        self.input_index = input_index

    def expand(self, pbegin):
        formats = {p: f for p, f in self.files}
        return (
            pbegin
            | "FilePatterns" >> beam.Create([p for p, _ in self.files])
            | "MatchFiles" >> fileio.MatchAll()
            | "OpenFiles" >> fileio.ReadMatches()
            | "ParseRows" >> beam.ParDo(ParseFile(formats, self.limit, self.input_index))
        )
