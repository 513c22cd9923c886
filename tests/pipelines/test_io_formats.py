"""Each input format (and globs) goes through the whole label pipeline with the same result."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.label import label_from_config
from tests.pipelines.conftest import SENTENCES, write_jsonl, write_tsv
from zuoxiao.errors import InputError
from zuoxiao.shards import read_manifest


def _texts(out):
    m = read_manifest(out)
    rows = [r for s in m["shards"] for r in pq.read_table(out / s["file"]).to_pylist()]
    return m, {r["text"]: r["gold"] for r in rows}


EXPECTED = {t: int(label) for t, label in SENTENCES}


def _write(fmt, d):
    if fmt == "tsv":
        return write_tsv(d / "in.tsv", SENTENCES)
    if fmt == "jsonl":
        return write_jsonl(d / "in.jsonl", [{"sentence": t, "label": int(lab)} for t, lab in SENTENCES])
    if fmt == "csv":
        p = d / "in.csv"
        p.write_text("sentence,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in SENTENCES))
        return p
    p = d / "in.parquet"
    pq.write_table(pa.table({"sentence": [t for t, _ in SENTENCES], "label": [lab for _, lab in SENTENCES]}), p)
    return p


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "csv", "parquet"])
def test_each_format(fmt, tmp_path, make_cfg):
    path = _write(fmt, tmp_path)
    m, got = _texts(_run(make_cfg(path), tmp_path))
    assert got == EXPECTED
    assert m["counts"]["read"] == m["counts"]["labeled"] == len(SENTENCES) and m["counts"]["rejected"] == 0
    assert m["inputs"][0]["format"] == fmt


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
