"""Gold labels mean the same to every reader, in every format (issue 8, case 6).

Before: the label stage normalised `1.0` / `True` (to "1" / "true") but `read_labelled` (task.eval,
task.dev, finetune.data) compared `str(value).strip()`, so a file the label stage accepted was
rejected there ("labels ['1.0'] ... are not in label_names"), and a CSV "1.0" was another class than a
JSONL 1.0 even in the label stage.
"""

import json

import pyarrow as pa
import pyarrow.parquet as pq

from zuoxiao.core.config import DataSource
from zuoxiao.core.goldsets import read_labelled
from zuoxiao.core.labelout import read_rows
from zuoxiao.pipelines.label import label_from_config

# (value as each format writes it, the class it must be). JSONL and Parquet keep types; CSV/TSV are text.
CASES = [
    (1, "1", "1"), (1.0, "1.0", "1"), (" 1 ", " 1 ", "1"), (True, "true", "true"), ("True", "True", "true"),
    ("négatif", "négatif", "négatif"), ("ne\u0301gatif", "ne\u0301gatif", "négatif"), ("正面", "正面", "正面"),
]
WORDS = ["good movie", "bad film", "great story", "awful plot", "fun actor", "sad ending", "long film",
         "short story"]
EXPECTED_NAMES = ["1", "négatif", "true", "正面"]


def _write_all(d):
    """One file per format with the same rows; Parquet twice: typed columns and a string column."""
    texts = {fmt: [f"{w} {fmt}" for w in WORDS] for fmt in ("jsonl", "csv", "tsv", "parquet", "pqstr")}
    (d / "a.jsonl").write_text("".join(json.dumps({"sentence": t, "label": v}, ensure_ascii=False) + "\n"
                                       for t, (v, _, _) in zip(texts["jsonl"], CASES, strict=True)))
    (d / "b.csv").write_text("sentence,label\n" + "".join(f'{t},"{s}"\n' for t, (_, s, _) in
                                                          zip(texts["csv"], CASES, strict=True)))
    (d / "c.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{s}\n" for t, (_, s, _) in
                                                           zip(texts["tsv"], CASES, strict=True)))
    typed = [(t, v) for t, (v, _, _) in zip(texts["parquet"], CASES, strict=True)]
    # A Parquet column has one type: ints, floats, bools and strings go in files of their own.
    for name, kind in (("int", int), ("float", float), ("bool", bool), ("str", str)):
        part = [(t, v) for t, v in typed if type(v) is kind]
        pq.write_table(pa.table({"sentence": [t for t, _ in part], "label": [v for _, v in part]}),
                       d / f"d-{name}.parquet")
    pq.write_table(pa.table({"sentence": texts["pqstr"], "label": [s for _, s, _ in CASES]}), d / "e.parquet")
    return {t: want for fmt in texts for t, (_, _, want) in zip(texts[fmt], CASES, strict=True)}


def test_every_reader_and_format_gives_the_same_labels(tmp_path, make_cfg):
    d = tmp_path / "in"
    d.mkdir()
    expected = _write_all(d)
    # 1. label stage, automatic label map (pipelines/label_names.py scans the files)
    out = tmp_path / "auto"
    m = label_from_config(make_cfg(str(d), label_names=None), out)
    assert m["label_names"] == EXPECTED_NAMES and m["counts"]["rejected"] == 0
    rows = [r for s in m["shards"] for r in pq.read_table(out / s["file"]).to_pylist()]
    assert {r["text"]: m["label_names"][r["gold"]] for r in rows} == expected
    # 2. label stage with task.label_names written in another spelling (True, 1.0, decomposed é)
    out = tmp_path / "named"
    names = ["1.0", "ne\u0301gatif", "True", "正面"]
    m = label_from_config(make_cfg(str(d), label_names=names), out)
    assert m["counts"]["rejected"] == 0
    rows = read_rows(out)
    assert {r["text"]: EXPECTED_NAMES[r["gold"]] for r in rows} == expected
    # 3. read_labelled (task.eval, task.dev, finetune.data), one format at a time and all together
    for pattern in ("a.jsonl", "b.csv", "c.tsv", "d-*.parquet", "e.parquet", "*"):
        src = DataSource(path=str(d / pattern), text_column="sentence")
        data = read_labelled(src)
        got = {t: data.label_names[i] for t, i in zip(data.texts, data.labels, strict=True)}
        assert got == {t: v for t, v in expected.items() if t in got} and got, pattern
        named = read_labelled(src, names)
        assert [names[i] for i in named.labels] == [names[EXPECTED_NAMES.index(v)] for v in got.values()]
    assert read_labelled(DataSource(path=str(d), text_column="sentence")).label_names == EXPECTED_NAMES
