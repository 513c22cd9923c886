"""The one parser behind every reader (zuoxiao.core.datasource): line-checked CSV records, BOMs, broken
headers and damaged Parquet pages, and the gold-set reader `read_labelled` (issue 8)."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zuoxiao.core.config import DataSource
from zuoxiao.core.datasource import csv_records, iter_rows, parse_rows, read_labelled
from zuoxiao.core.errors import InputError

UNCLOSED = b"id,label,text\n1,positive,fine\n2,negative,\"dull and\n3,positive,good\n4,negative,bad\n5,positive,ok\n"


def _rows(data: bytes, fmt: str):
    return list(parse_rows(io.BytesIO(data), fmt, f"x.{fmt}"))


def test_unclosed_csv_quote_costs_its_own_line_not_the_rows_after_it():
    """Case 1: `2,negative,"dull and` used to swallow rows 3-5 into its text (read=2 for 5 rows)."""
    rows = _rows(UNCLOSED, "csv")
    assert len(rows) == 5  # one per data line: read counts real input
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 1 and bad[0]["error"] == "malformed_row" and bad[0]["line"] == 3
    assert "line 3" in bad[0]["detail"] and "dull and" in bad[0]["detail"]
    good = [r["row"] for r in rows if not r["error"]]
    assert [r["id"] for r in good] == ["1", "3", "4", "5"]
    assert all("\n" not in r["text"] for r in good)


def test_stray_quote_closed_later_is_caught_and_the_following_multiline_record_survives():
    data = (b'id,text\n1,"starts here\n2,"closes wrongly" here\n3,"a real\nmulti-line, field"\n4,plain\n')
    rows = _rows(data, "csv")
    assert [(r["line"], r["error"]) for r in rows] == [
        (2, "malformed_row"), (3, "malformed_row"), (4, None), (6, None)]
    assert rows[2]["row"]["text"] == "a real\nmulti-line, field"


def test_csv_records_report_first_lines():
    recs = list(csv_records(['a,b\n', '"x\n', 'y",1\n', '\n', 'c,"d""e"\n']))
    assert recs == [(1, ["a", "b"], ""), (2, ["x\ny", "1"], ""), (4, [], ""), (5, ["c", 'd"e'], "")]


@pytest.mark.parametrize("fmt,data", [
    ("csv", b"\xef\xbb\xbfid,text\n1,hello\n"),
    ("tsv", b"\xef\xbb\xbfid\ttext\n1\thello\n"),
    ("jsonl", b'\xef\xbb\xbf{"id": "1", "text": "hello"}\n'),
])
def test_utf8_bom_is_not_part_of_the_first_column(fmt, data):
    """Case 3: a BOM CSV's first column used to read as '\\ufeffid'."""
    (row,) = _rows(data, fmt)
    assert row["error"] is None and row["row"] == {"id": "1", "text": "hello"}


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_header_with_invalid_utf8_is_an_input_error_naming_file_and_line(fmt):
    sep = b"," if fmt == "csv" else b"\t"
    with pytest.raises(InputError, match=rf"x\.{fmt} line 1 \(the header\) is not valid UTF-8.*re-save it as UTF-8"):
        _rows(b"id" + sep + b"t\xffext\n1" + sep + b"hi\n", fmt)


def _damaged_parquet(path):
    """3 row groups with page checksums; 64 bytes flipped mid-file (a data page), footer intact."""
    import hashlib

    n = 3000
    texts = [hashlib.sha256(str(i).encode()).hexdigest() + f" words {i}" for i in range(n)]
    pq.write_table(pa.table({"text": texts, "label": ["1"] * n}), path, compression="zstd",
                   row_group_size=1000, use_dictionary=False, write_page_checksum=True)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
    path.write_bytes(bytes(data))
    assert pq.read_schema(path).names == ["text", "label"]  # the footer still reads
    return path


def test_damaged_parquet_page_is_an_input_error_naming_the_file(tmp_path):
    path = _damaged_parquet(tmp_path / "d.parquet")
    with pytest.raises(InputError, match=r"d\.parquet: Parquet data in row group 2 of 3 \(after row 1000\) "
                                         r"cannot be read.*restore"):
        list(iter_rows(path, "parquet"))
    with pytest.raises(InputError, match="d.parquet"):
        read_labelled(DataSource(path=str(path)))


def test_read_labelled_uses_the_strict_parser_and_normalised_labels(tmp_path):
    (tmp_path / "g.csv").write_bytes(b'\xef\xbb\xbftext,label\n"multi\nline",1.0\nplain, True \nx,1\n')
    data = read_labelled(DataSource(path=str(tmp_path / "g.csv")))
    assert data.texts == ["multi\nline", "plain", "x"]
    assert data.label_names == ["1", "true"] and data.labels == [0, 1, 0]
    (tmp_path / "bad.csv").write_bytes(UNCLOSED.replace(b"id,label,text", b"id,label,text"))
    with pytest.raises(InputError, match=r"bad\.csv: line 3: broken quoting"):
        read_labelled(DataSource(path=str(tmp_path / "bad.csv"), text_column="text"))
    with pytest.raises(InputError, match=r"has no column 'body'; its columns are \['label', 'text'\]"):
        read_labelled(DataSource(path=str(tmp_path / "g.csv"), text_column="body"))
