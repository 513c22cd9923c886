"""Read task data: Parquet, JSONL, CSV, TSV, CoNLL. One parser for every reader.

`parse_rows` turns one open binary file into rows; the label pipeline (pipelines/io.py, inside Beam)
and the small gold sets that training, compression and the model card evaluate on
(`zuoxiao.core.goldsets.read_labelled`) both use it, so a file means the same thing to both: same
quoting, same BOM handling, same labels (`zuoxiao.core.rows.normalize_label`).

CSV records may span lines (a quoted field may hold line breaks), but quoting is strict (RFC 4180: a
quote inside a quoted field is doubled, a closing quote is followed by the delimiter or the end of the
line). A record whose quote never closes properly is reported as malformed *with the line it starts
on*, and parsing resumes on the very next physical line: a stray quote costs its own row, it can never
swallow the rows after it into one text field.

CoNLL (task.kind token, docs/task_kinds.md): a word and its tag per line, a blank line between sentences;
each sentence is one row ``{"tokens": [...], "tags": [...]}`` (a sentence of one-field lines is untagged:
``tags`` is None) whose line is the sentence's first.
"""

from __future__ import annotations

import codecs
import csv
import glob
import json
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from zuoxiao.core.config.base import DataSource
from zuoxiao.core.errors import InputError

log = logging.getLogger(__name__)

SUFFIX_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
                  ".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".conll": "conll"}
UTF8_FIX = "re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`)"
_PARQUET_BATCH = 4096


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
            "set format: parquet|jsonl|csv|tsv|conll in the data source"
        )
    return fmt


# ---------------------------------------------------------------- one parser for every reader
def _byte_lines(f) -> Iterator[bytes]:
    """Physical lines (with their endings) of a binary file; a leading UTF-8 BOM is dropped, so a file
    saved by Excel ("UTF-8 with BOM") has the header `id`, not `\\ufeffid`."""
    first = True
    for raw in iter(f.readline, b""):
        if first:
            raw, first = raw.removeprefix(codecs.BOM_UTF8), False
        yield raw


def _header(raw: bytes | None, name: str) -> str:
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise InputError(f"{name} line 1 (the header) is not valid UTF-8 ({err}); {UTF8_FIX}") from None


class _Lines:
    """An iterator of text lines that counts them and can take back lines a failed record consumed."""

    def __init__(self, lines: Iterable[str]):
        self.source = iter(lines)
        self.pending: deque[str] = deque()
        self.taken: list[str] = []  # lines of the record being parsed
        self.line = 0  # physical lines handed out so far

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.pending.popleft() if self.pending else next(self.source)
        self.taken.append(line)
        self.line += 1
        return line


def csv_records(lines: Iterable[str], delimiter: str = ",") -> Iterator[tuple[int, list[str] | None, str]]:
    """Text lines (with line endings) -> (first line number (1-based), fields or None, detail).

    A record whose quoting is broken (a quote that never closes, or closes and is followed by text)
    yields (its first line, None, detail naming the line and quoting its text); the lines after that
    first one are parsed again, so the rows a stray quote would have swallowed come back as rows.
    """
    src = _Lines(lines)
    while True:
        reader = csv.reader(src, delimiter=delimiter, strict=True)
        try:
            for fields in reader:
                first = src.line - len(src.taken) + 1
                src.taken = []
                yield first, fields, ""
            return
        except csv.Error as err:
            taken, src.taken = src.taken, []
            first = src.line - len(taken) + 1
            span = f"lines {first}-{src.line}" if len(taken) > 1 else f"line {first}"
            head = taken[0].rstrip("\r\n") if taken else ""
            yield first, None, (
                f"line {first}: broken quoting ({err}; the record would run over {span}): {head[:200]!r}; "
                "a quote inside a quoted field must be doubled (\"\") and a quoted field must end with a "
                "quote followed by the delimiter or the line end"
            )
            src.pending.extendleft(reversed(taken[1:]))  # re-read what the broken record swallowed
            src.line = first


def parse_rows(f, fmt: str, name: str) -> Iterator[dict]:
    """One open binary file -> one dict per row, good or bad, in file order:

        {"pos": int,            # 0-based row number among this file's rows (blank lines are not rows)
         "line": int,           # 1-based physical line (Parquet: 1-based row number)
         "row": dict | None,    # column -> value (text formats: strings, maybe with surrogate escapes
                                #   where bytes were not UTF-8)
         "error": str | None, "detail": str}   # malformed_row / undecodable_bytes, with the line

    A header that cannot be read, or a damaged Parquet page, raises InputError naming the file: those
    lose rows that cannot be counted, so they stop the run instead of becoming dead letters.
    """
    if fmt == "parquet":
        yield from _parquet_rows(f, name)
    elif fmt == "jsonl":
        yield from _jsonl_rows(_byte_lines(f), name)
    elif fmt == "tsv":
        header, lines = _open_delimited(f, fmt, name)
        yield from _tsv_rows(lines, header, name)
    elif fmt == "csv":
        header, records = _open_delimited(f, fmt, name)
        yield from _csv_rows(records, header)
    elif fmt == "conll":
        yield from _conll_rows(_byte_lines(f))
    else:
        raise InputError(f"{name}: unknown format {fmt!r}; use parquet|jsonl|csv|tsv|conll")


def header_columns(f, fmt: str, name: str) -> list[str]:
    """The header of a CSV/TSV file as `parse_rows` reads it ([] for an empty file)."""
    return _open_delimited(f, fmt, name)[0]


def _open_delimited(f, fmt: str, name: str):
    """-> (header columns, the rest): TSV byte lines, or CSV (first line, fields, detail) records."""
    lines = _byte_lines(f)
    raw = next(lines, None)
    if raw is None:
        return [], iter(())
    header_text = _header(raw, name)
    if fmt == "tsv":  # no quoting at all (csv.QUOTE_NONE data, like ../shared/data): split on tabs
        return header_text.split("\t"), lines
    # CSV: the header is parsed like any record (it may be quoted); line 1 is the header.
    text = (b.decode("utf-8", "surrogateescape") for b in lines)
    records = csv_records(_chain_first(header_text + "\n", text))
    _, header, detail = next(records)
    if header is None:
        raise InputError(f"{name}: cannot read the CSV header: {detail}")
    return header, records


def _csv_rows(records, header: list[str]) -> Iterator[dict]:
    pos = 0
    for line, fields, detail in records:
        if fields == []:
            continue  # a blank line is not a row
        if fields is None:
            yield {"pos": pos, "line": line, "row": None, "error": "malformed_row", "detail": detail}
        elif len(fields) != len(header):
            yield {"pos": pos, "line": line, "row": {"_raw": ",".join(fields)}, "error": "malformed_row",
                   "detail": f"line {line}: {len(fields)} comma-separated fields, header has {len(header)}"}
        else:
            yield {"pos": pos, "line": line, "row": dict(zip(header, fields, strict=True)), "error": None,
                   "detail": ""}
        pos += 1


def _chain_first(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _jsonl_rows(lines: Iterator[bytes], name: str) -> Iterator[dict]:
    pos = 0
    for line_no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        row, error, detail = None, None, ""
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            row = {"_raw": raw.decode("utf-8", "surrogateescape").rstrip("\r\n")}
            error, detail = "undecodable_bytes", f"line {line_no} is not UTF-8: {err}"
        else:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                row, error, detail = {"_raw": text}, "malformed_row", f"line {line_no}: invalid JSON: {err}"
            else:
                if isinstance(obj, dict):
                    row = obj
                else:
                    row, error = {"_raw": text}, "malformed_row"
                    detail = f"line {line_no}: JSON line is a {type(obj).__name__}, not an object"
        yield {"pos": pos, "line": line_no, "row": row, "error": error, "detail": detail}
        pos += 1


def _tsv_rows(lines: Iterator[bytes], header: list[str], name: str) -> Iterator[dict]:
    pos = 0
    for line_no, raw in enumerate(lines, 2):
        if not raw.strip():
            continue
        error, detail = None, ""
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
            error, detail = "undecodable_bytes", f"line {line_no} is not UTF-8: {err}"
        fields = text.split("\t")
        if len(fields) == len(header):
            row = dict(zip(header, fields, strict=True))
        else:
            row = {"_raw": text}
            if error is None:
                error = "malformed_row"
                detail = f"line {line_no}: {len(fields)} tab-separated fields, header has {len(header)}"
        yield {"pos": pos, "line": line_no, "row": row, "error": error, "detail": detail}
        pos += 1


def _conll_rows(lines: Iterator[bytes]) -> Iterator[dict]:
    """Sentences of a CoNLL file: the first field of a line is the word, the last its tag (CoNLL-2003's middle
    columns are skipped); ``-DOCSTART-`` lines are document breaks, not words."""
    pos, start, fields, undecodable = 0, 0, [], ""
    for line_no, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            text = raw.decode("utf-8", "surrogateescape").strip()
            undecodable = undecodable or f"line {line_no} is not UTF-8: {err}"
        if not text or text.startswith("-DOCSTART-"):
            if fields:
                yield _conll_sentence(pos, start, fields, undecodable)
                pos, fields, undecodable = pos + 1, [], ""
            continue
        if not fields:
            start = line_no
        fields.append(text.split())
    if fields:
        yield _conll_sentence(pos, start, fields, undecodable)


def _conll_sentence(pos: int, start: int, fields: list[list[str]], undecodable: str) -> dict:
    """One sentence's lines (split on whitespace) -> a `parse_rows` row dict."""
    out = {"pos": pos, "line": start, "row": {"_raw": " | ".join(" ".join(f) for f in fields)}}
    widths = [len(f) for f in fields]
    if undecodable:
        return {**out, "error": "undecodable_bytes", "detail": undecodable}
    if 1 in widths and set(widths) != {1}:
        at = start + widths.index(1)
        return {**out, "error": "malformed_row", "detail": f"line {at}: a word without a tag in the sentence "
                f"starting on line {start}; give every word of a sentence a tag, or none (untagged text)"}
    tags = None if set(widths) == {1} else [f[-1] for f in fields]
    return {**out, "row": {"tokens": [f[0] for f in fields], "tags": tags}, "error": None, "detail": ""}


def _parquet_rows(f, name: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    pos, group, groups = 0, 0, 0
    try:
        # Page checksums, where the writer stored them (pyarrow: write_page_checksum=True), catch any
        # damaged page; without them only damage that breaks decoding can be seen.
        pf = pq.ParquetFile(f, page_checksum_verification=True)
        groups = pf.num_row_groups
        # Binary columns come back as bytes; the label stage rejects undecodable ones per row.
        for group in range(groups):  # one row group at a time, so an error can say where
            for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, row_groups=[group]):
                for row in batch.to_pylist():
                    pos += 1
                    yield {"pos": pos - 1, "line": pos, "row": row, "error": None, "detail": ""}
    except (OSError, pa.ArrowException) as err:
        # Footer intact, a data page damaged: the rows in it cannot even be counted, so no dead letter
        # can stand for them. Stop, naming the file and where reading broke.
        where = f"row group {group + 1} of {groups} (after row {pos})" if groups else "the footer"
        raise InputError(
            f"{name}: Parquet data in {where} cannot be read ({err}); the file is damaged or not "
            "Parquet: restore or re-export it (or remove it from the input)"
        ) from None


def iter_rows(path: Path, fmt: str) -> Iterator[dict]:
    """`parse_rows` over a local file (see there for the row dicts)."""
    try:
        with open(path, "rb") as f:
            yield from parse_rows(f, fmt, str(path))
    except (IsADirectoryError, PermissionError, FileNotFoundError) as err:
        raise InputError(f"cannot read {path}: {err.strerror}; check the path and its permissions") from None


def read_file(path: Path, fmt: str) -> pa.Table:
    """One file as an Arrow table (all columns; CSV/TSV values as strings so nothing is coerced).
    Malformed rows are an InputError naming the line (used by benchmarks and small local reads)."""
    rows = []
    for r in iter_rows(path, fmt):
        if r["error"]:
            raise InputError(f"{path}: {r['detail']}; fix the file")
        rows.append(r["row"])
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowException, TypeError) as err:
        raise InputError(f"cannot read {path} as a table ({err}); give every column one type") from None
