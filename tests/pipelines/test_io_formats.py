"""Each input format (and globs) goes through the whole label pipeline with the same result."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.pipelines.conftest import SENTENCES, write_jsonl, write_tsv
from zuoxiao.core.errors import InputError
from zuoxiao.core.labelout import read_rows
from zuoxiao.core.shards import read_manifest
from zuoxiao.pipelines.label import label_from_config


def _texts(out):
    m = read_manifest(out).to_json()
    rows = read_rows(out)
    return m, {r["text"]: r["gold"] for r in rows}


EXPECTED = {t: int(label) for t, label in SENTENCES}


def _write(fmt, d, tag=""):
    rows = [((f"{tag} " if tag else "") + t, lab) for t, lab in SENTENCES]
    if fmt == "tsv":
        return write_tsv(d / "in.tsv", rows)
    if fmt == "jsonl":
        return write_jsonl(d / "in.jsonl", [{"sentence": t, "label": int(lab)} for t, lab in rows])
    if fmt == "csv":
        p = d / "in.csv"
        p.write_text("sentence,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
        return p
    p = d / "in.parquet"  # labels as int64 here: matched as strings like the text formats
    pq.write_table(pa.table({"sentence": [t for t, _ in rows], "label": [int(lab) for _, lab in rows]}), p)
    return p


def test_each_format_in_one_run(tmp_path, make_cfg):
    """Four files, one per format, each holding all sentences tagged with its format: one run."""
    paths = []
    for fmt in ("tsv", "jsonl", "csv", "parquet"):
        d = tmp_path / fmt
        d.mkdir()
        paths.append(str(_write(fmt, d, tag=fmt)))
    m, got = _texts(_run(make_cfg(paths), tmp_path))
    for fmt in ("tsv", "jsonl", "csv", "parquet"):
        assert {t[len(fmt) + 1:]: g for t, g in got.items() if t.startswith(fmt + " ")} == EXPECTED, fmt
    c = m["counts"]
    assert c["read"] == c["labeled"] == 4 * len(SENTENCES) and c["rejected"] == 0
    assert sorted(i["format"] for i in m["inputs"]) == ["csv", "jsonl", "parquet", "tsv"]


def _run(cfg, tmp_path):
    out = tmp_path / "label"
    label_from_config(cfg, out)
    return out


def test_glob_over_several_files_and_csv_quoting(tmp_path, make_cfg):
    d = tmp_path / "parts"
    d.mkdir()
    write_tsv(d / "a.tsv", SENTENCES[:5])
    write_tsv(d / "b.tsv", SENTENCES[5:])
    # a quoted CSV field with a comma and a line break is one row
    (d / "c.csv").write_text('sentence,label\n"good, very\ngood",1\n')
    _, got = _texts(_run(make_cfg([str(d / "*.tsv"), str(d / "*.csv")]), tmp_path))
    assert got == {**EXPECTED, "good, very\ngood": 1}


def test_limit_across_files(tmp_path, make_cfg):
    write_tsv(tmp_path / "a.tsv", SENTENCES[:5])
    write_tsv(tmp_path / "b.tsv", SENTENCES[5:])
    cfg = make_cfg(str(tmp_path / "*.tsv"))
    cfg.label.input.limit = 7
    m, got = _texts(_run(cfg, tmp_path))
    assert m["counts"]["read"] == 7 and set(got) == {t for t, _ in SENTENCES[:7]}


def test_missing_inputs_and_columns_fail_before_compute(tmp_path, make_cfg):
    with pytest.raises(InputError, match="matches no file"):
        label_from_config(make_cfg(tmp_path / "nope-*.tsv"), tmp_path / "o")
    write_tsv(tmp_path / "x.tsv", SENTENCES, header=("text", "label"))
    with pytest.raises(InputError, match="no text column 'sentence'.*Set text_column"):
        label_from_config(make_cfg(tmp_path / "x.tsv"), tmp_path / "o")
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_jsonl_numbers_and_ids(tmp_path, make_cfg):
    rows = [{"id": i, "sentence": t, "label": float(lab)} for i, (t, lab) in enumerate(SENTENCES)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    out = _run(make_cfg(path, id_column="id"), tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    ids = sorted(r["id"] for s in m["shards"] for r in pq.read_table(out / s["file"]).to_pylist())
    assert ids == sorted(str(i) for i in range(len(SENTENCES)))
