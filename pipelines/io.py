"""Beam readers for task data: Parquet, JSONL, CSV and no-quote TSV, from files, dirs or globs.

Every physical row becomes one *raw row* element, good or bad, so that nothing read is lost:

    {"source": str, "pos": int,            # file and 0-based row number in it (for dead letters, ties)
     "row": dict | None,                   # column -> value as read (strings may hold surrogate escapes)
     "error": str | None, "detail": str}   # set when the row could not even be parsed

Files are matched with Beam's `fileio` (so gs://, s3:// ... patterns work on remote runners) and each
file is parsed by one DoFn call, streaming: JSONL/TSV line by line, CSV with the csv module (quoted
fields may span lines), Parquet one record batch at a time.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import apache_beam as beam
from apache_beam.io import fileio

from zuoxiao.core.config.base import DataSource
from zuoxiao.core.datasource import SUFFIX_FORMATS, detect_format, resolve_files
from zuoxiao.core.errors import InputError

log = logging.getLogger(__name__)

_PARQUET_BATCH = 4096


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


def check_columns(files: list[tuple[str, str]], source: DataSource) -> None:
    """Fail fast when a local CSV/TSV/Parquet file lacks the text column (a config error, not bad rows)."""
    import pyarrow.parquet as pq

    for path, fmt in files:
        if _is_remote(path):
            continue
        if fmt == "parquet":
            try:
                names = pq.read_schema(path).names
            except Exception as err:  # noqa: BLE001 - pyarrow raises several types for non-Parquet files
                raise InputError(f"cannot read {path} as Parquet ({err}); check the file or set format") from None
        elif fmt in ("csv", "tsv"):
            with open(path, "rb") as f:
                first = f.readline().decode("utf-8", "replace").rstrip("\r\n")
            names = next(csv.reader([first])) if fmt == "csv" else first.split("\t")
        else:
            continue
        if source.text_column not in names:
            raise InputError(
                f"{path} has no text column {source.text_column!r}; its columns are {names}. "
                "Set text_column in the data source"
            )
        if source.label_column and source.label_column not in names:
            log.warning("%s has no label column %r (columns %s): its rows are unlabelled (gold null); set "
                        "label_column: null to silence this", path, source.label_column, names)


def _beam_safe(value: str) -> str | bytes:
    """Strings holding surrogate escapes (undecodable input bytes) cannot cross a Beam coder: keep them
    as the original bytes; the validator rejects them per row as undecodable_bytes."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def _decode_line(raw: bytes) -> str:
    return raw.decode("utf-8").rstrip("\r\n")


class ParseFile(beam.DoFn):
    """ReadableFile -> raw rows (see module docstring). Parse errors become raw rows with `error`."""

    def __init__(self, formats: dict[str, str], limit: int | None = None):
        self.formats = formats  # path -> format; remote matches fall back to their suffix
        self.limit = limit

    def _format(self, path: str) -> str:
        if path in self.formats:
            return self.formats[path]
        fmt = SUFFIX_FORMATS.get(Path(path).suffix.lower())
        return fmt or next(iter(self.formats.values()))

    def process(self, readable):
        path = readable.metadata.path
        fmt = self._format(path)
        reader = {"parquet": self._parquet, "jsonl": self._jsonl, "csv": self._csv, "tsv": self._tsv}[fmt]
        for n, raw in enumerate(reader(path, readable)):
            if self.limit is not None and n >= self.limit:
                break
            yield raw

    @staticmethod
    def _bad(path, pos, reason, detail, text=None):
        return {"source": path, "pos": pos, "row": None if text is None else {"_raw": _beam_safe(text)},
                "error": reason, "detail": detail}

    def _jsonl(self, path, readable):
        pos = 0
        with readable.open() as f:
            for raw in iter(f.readline, b""):
                if not raw.strip():
                    continue  # blank lines are not rows
                try:
                    line = _decode_line(raw)
                except UnicodeDecodeError as err:
                    yield self._bad(path, pos, "undecodable_bytes", f"line is not UTF-8: {err}",
                                    raw.decode("utf-8", "surrogateescape").rstrip("\r\n"))
                else:
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as err:
                        yield self._bad(path, pos, "malformed_row", f"invalid JSON: {err}", line)
                    else:
                        if isinstance(obj, dict):
                            yield {"source": path, "pos": pos, "row": obj, "error": None, "detail": ""}
                        else:
                            yield self._bad(path, pos, "malformed_row",
                                            f"JSON line is a {type(obj).__name__}, not an object", line)
                pos += 1

    def _tsv(self, path, readable):
        # No quoting at all (csv.QUOTE_NONE data): split each line on tabs.
        with readable.open() as f:
            header_raw = f.readline()
            header = header_raw.decode("utf-8", "replace").rstrip("\r\n").split("\t")
            pos = 0
            for raw in iter(f.readline, b""):
                if not raw.strip():
                    continue
                try:
                    line = _decode_line(raw)
                except UnicodeDecodeError as err:
                    line = raw.rstrip(b"\r\n")
                    fields = line.decode("utf-8", "surrogateescape").split("\t")
                    fields = [_beam_safe(x) for x in fields]
                    row = dict(zip(header, fields, strict=True)) if len(fields) == len(header) else {"_raw": line}
                    yield {"source": path, "pos": pos, "row": row, "error": "undecodable_bytes",
                           "detail": f"line is not UTF-8: {err}"}
                else:
                    fields = line.split("\t")
                    if len(fields) != len(header):
                        yield self._bad(path, pos, "malformed_row",
                                        f"{len(fields)} tab-separated fields, header has {len(header)}", line)
                    else:
                        yield {"source": path, "pos": pos, "row": dict(zip(header, fields, strict=True)),
                               "error": None, "detail": ""}
                pos += 1

    def _csv(self, path, readable):
        with readable.open() as f:
            # surrogateescape keeps undecodable bytes visible (as lone surrogates) instead of failing the
            # whole file; rows holding them are rejected per row by the validator.
            if isinstance(f, io.BufferedIOBase):
                stream = io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline="")
            else:  # e.g. Beam's CompressedFile: not an io.IOBase, read it whole
                stream = io.StringIO(f.read().decode("utf-8", "surrogateescape"), newline="")
            reader = csv.reader(stream)
            header = next(reader, None)
            if header is None:
                return
            for pos, fields in enumerate(reader):
                if not fields:
                    continue
                if len(fields) != len(header):
                    yield self._bad(path, pos, "malformed_row",
                                    f"{len(fields)} comma-separated fields, header has {len(header)}",
                                    ",".join(fields))
                else:
                    fields = [_beam_safe(x) for x in fields]
                    yield {"source": path, "pos": pos, "row": dict(zip(header, fields, strict=True)), "error": None,
                           "detail": ""}

    def _parquet(self, path, readable):
        import pyarrow.parquet as pq

        with readable.open() as f:
            # Binary columns come back as bytes; the validator rejects undecodable ones per row.
            pf = pq.ParquetFile(f)
            pos = 0
            for batch in pf.iter_batches(batch_size=_PARQUET_BATCH):
                for row in batch.to_pylist():
                    yield {"source": path, "pos": pos, "row": row, "error": None, "detail": ""}
                    pos += 1


class ReadTaskRows(beam.PTransform):
    """PBegin -> raw rows of every file of a DataSource (see module docstring)."""

    def __init__(self, files: list[tuple[str, str]], limit: int | None = None):
        super().__init__()
        self.files = files
        self.limit = limit

    def expand(self, pbegin):
        formats = {p: f for p, f in self.files}
        return (
            pbegin
            | "FilePatterns" >> beam.Create([p for p, _ in self.files])
            | "MatchFiles" >> fileio.MatchAll()
            | "OpenFiles" >> fileio.ReadMatches()
            | "ParseRows" >> beam.ParDo(ParseFile(formats, self.limit))
        )
