"""The one parser behind every reader (zuoxiao.core.datasource): line-checked CSV records, BOMs, broken
headers and damaged Parquet pages, and the gold-set reader `read_labelled` (issue 8), which follows the
label stage's row policy (issue 13: skip malformed rows and duplicate ids, refuse a mostly broken file)."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zuoxiao.core.config import DataSource
from zuoxiao.core.datasource import csv_records, iter_rows, parse_rows
from zuoxiao.core.errors import InputError
from zuoxiao.core.goldsets import read_labelled

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
    (tmp_path / "bad.csv").write_bytes(UNCLOSED)  # one broken record of five: skipped, like a dead letter
    bad = read_labelled(DataSource(path=str(tmp_path / "bad.csv"), text_column="text"))
    assert bad.texts == ["fine", "good", "bad", "ok"] and bad.skipped == {"malformed_row": 1}
    assert bad.skipped_where == {"malformed_row": ["bad.csv line 3"]}
    with pytest.raises(InputError, match=r"has no column 'body'; its columns are \['label', 'text'\]"):
        read_labelled(DataSource(path=str(tmp_path / "g.csv"), text_column="body"))


def test_read_labelled_skips_a_short_record_and_a_duplicate_like_the_label_stage(tmp_path, caplog):
    """Issue 13: a 1-field CSV record aborted finetune (`Expected 2 columns, got 1`) while the label stage
    dead-lettered it; duplicates were kept by finetune and dropped by label. Now both skip them."""
    (tmp_path / "g.csv").write_text("text,label\ngood movie,pos\nbad movie,neg\njust one field\n"
                                    "good movie,pos\nfine film,pos\nGood  Movie,pos\nawful,neg\n")
    with caplog.at_level("WARNING", logger="zuoxiao.core.datasource"):
        data = read_labelled(DataSource(path=str(tmp_path / "g.csv")), ["neg", "pos"])
    # the exact repeat goes (first wins); "Good  Movie" differs in case/spacing: another text, kept
    assert data.texts == ["good movie", "bad movie", "fine film", "Good  Movie", "awful"]
    assert data.labels == [1, 0, 1, 1, 0]
    assert data.skipped == {"malformed_row": 1, "duplicate_id": 1}
    assert data.skipped_where == {"malformed_row": ["g.csv line 4"],
                                  "duplicate_id": ["g.csv line 5 (first: g.csv line 2)"]}
    (line,) = [r.getMessage() for r in caplog.records]  # one line says what was skipped
    assert "skipped 2 rows" in line and "malformed_row 1 (g.csv line 4)" in line and "duplicate_id 1" in line


def test_read_labelled_conflicting_gold_keeps_the_first_and_counts_it_apart(tmp_path):
    (tmp_path / "g.jsonl").write_text('{"text": "meh", "label": "neg"}\n{"text": "meh", "label": "pos"}\n'
                                      '{"text": "yay", "label": "pos"}\n')
    data = read_labelled(DataSource(path=str(tmp_path / "g.jsonl")))
    assert data.texts == ["meh", "yay"] and data.labels == [0, 1]
    assert data.skipped == {"conflicting_label": 1}
    assert data.skipped_where["conflicting_label"] == ["g.jsonl line 2 (first: g.jsonl line 1 (label 'neg', kept))"]


def test_read_labelled_refuses_a_file_that_mostly_does_not_parse(tmp_path):
    """A wrong delimiter must not be silently reduced to the few rows that happen to parse."""
    (tmp_path / "semi.csv").write_text("text,label\n" + "".join(f"row {i};a;b,pos\n" if i % 3 == 0 else
                                                                f"row {i},pos,extra\n" for i in range(9)))
    with pytest.raises(InputError, match=r"semi\.csv: 6 of 9 rows do not parse \(first: line 3: 3 comma-separated "
                                         r"fields, header has 2\).*check its format.*delimiter"):
        read_labelled(DataSource(path=str(tmp_path / "semi.csv")))


def test_read_labelled_duplicate_ids_follow_the_id_column(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,label\n1,a,x\n2,a,x\n1,b,x\n,c,y\n")  # same text, other ids: kept
    data = read_labelled(DataSource(path=str(tmp_path / "g.csv"), id_column="id"))
    assert data.texts == ["a", "a"] and data.skipped == {"duplicate_id": 1, "missing_id": 1}
