"""label.extra_inputs: a second source of (unlabelled) text flattened into the one label path."""

import json

import pytest

from tests.pipelines.conftest import SENTENCES, write_jsonl, write_tsv
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.labelout import read_rows
from zuoxiao.pipelines.label import label_from_config

EXTRA_TEXTS = ["an unlabelled line of text", "one more review here", SENTENCES[0][0], "   ", "the last one"]


def _extra(path, **over):
    return {"path": str(path), "text_column": "body", "label_column": None, **over}


@pytest.fixture
def two_sources(tmp_path):
    """label.input: 6 labelled TSV rows; extra: 5 unlabelled JSONL rows in another column, one of them a text
    label.input already has and one blank."""
    primary = write_tsv(tmp_path / "gold.tsv", SENTENCES[:6])
    extra = write_jsonl(tmp_path / "more.jsonl", [{"body": t, "n": i} for i, t in enumerate(EXTRA_TEXTS)])
    return primary, extra


def test_rows_of_both_sources_are_labelled_and_counted_per_input(tmp_path, make_cfg, two_sources):
    primary, extra = two_sources
    out = tmp_path / "label"
    m = label_from_config(make_cfg(primary, extra_inputs=[_extra(extra)]), out)
    c = m["counts"]
    assert (c["read"], c["labeled"], c["rejected"]) == (11, 9, 2)
    by = {e["input"]: e for e in c["by_input"]}
    assert list(by) == ["label.input", "label.extra_inputs[0]"]
    assert by["label.input"] == {"input": "label.input", "paths": [str(primary)], "read": 6, "labeled": 6,
                                 "rejected": 0, "rejected_by_reason": {}}
    assert by["label.extra_inputs[0]"] == {"input": "label.extra_inputs[0]", "paths": [str(extra)], "read": 5,
                                           "labeled": 3, "rejected": 2,
                                           "rejected_by_reason": {"duplicate_id": 1, "empty_text": 1}}
    rows = {r["text"]: r for r in read_rows(out)}
    assert set(rows) == {t for t, _ in SENTENCES[:6]} | {EXTRA_TEXTS[i] for i in (0, 1, 4)}
    assert rows[EXTRA_TEXTS[0]]["gold"] is None and rows["the last one"]["gold"] is None
    # the text both sources hold is labelled once, as label.input's gold row
    assert rows[SENTENCES[0][0]]["gold"] == int(SENTENCES[0][1])
    dups = [r for r in read_rows(out, "rejected_files") if r["reason"] == "duplicate_id"]
    assert len(dups) == 1 and dups[0]["source"].endswith("more.jsonl")
    assert json.loads(dups[0]["row"]) == {"body": SENTENCES[0][0], "n": 2}
    assert {i["input"] for i in m["inputs"]} == {"label.input", "label.extra_inputs[0]"}


def test_extra_input_limit_and_label_column(tmp_path, make_cfg, two_sources):
    primary, _ = two_sources
    labelled = write_tsv(tmp_path / "more.tsv", [(f"extra text {i}", str(i % 2)) for i in range(8)] + [("odd", "7")],
                         header=("txt", "y"))
    m = label_from_config(make_cfg(primary, extra_inputs=[{"path": str(labelled), "text_column": "txt",
                                                           "label_column": "y", "limit": 4}]), tmp_path / "o")
    by = m["counts"]["by_input"]
    assert (by[1]["read"], by[1]["labeled"]) == (4, 4)  # limit applies to that input alone
    golds = {r["text"]: r["gold"] for r in read_rows(tmp_path / "o")}
    assert [golds[f"extra text {i}"] for i in range(4)] == [0, 1, 0, 1]


def test_a_wrong_extra_text_column_fails_before_any_compute(tmp_path, make_cfg, two_sources):
    primary, _ = two_sources
    bad = write_tsv(tmp_path / "bad.tsv", [("a", "1")], header=("sentence", "label"))
    with pytest.raises(InputError, match=r"bad\.tsv has no text column 'body'"):
        label_from_config(make_cfg(primary, extra_inputs=[_extra(bad)]), tmp_path / "o")
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_config_validation_of_extra_inputs(tmp_path, make_cfg, two_sources):
    primary, extra = two_sources
    with pytest.raises(ConfigError, match=r"extra_inputs\[0\] reads .* which an earlier input already reads"):
        make_cfg(primary, extra_inputs=[{"path": str(primary), "text_column": "sentence"}])
    with pytest.raises(ConfigError, match=r"extra_inputs\[1\]"):
        make_cfg(primary, extra_inputs=[_extra(extra), _extra(extra)])
    with pytest.raises(ConfigError, match="text_colum"):
        make_cfg(primary, extra_inputs=[{"path": str(extra), "text_colum": "body"}])
    # the same file read for another column is allowed
    assert make_cfg(primary, extra_inputs=[_extra(primary, text_column="label")]).label.extra_inputs[0].text_column
    from zuoxiao.core.config import parse_config

    with pytest.raises(ConfigError, match="label.input is not"):
        parse_config({"output_dir": str(tmp_path), "task": {"name": "t"},
                      "finetune": {"data": {"path": str(primary), "text_column": "sentence"}},
                      "label": {"extra_inputs": [_extra(extra)]}})


def test_stage_fingerprint_covers_every_extra_input(tmp_path, make_cfg, two_sources):
    from zuoxiao.run.stages import stage_inputs

    primary, extra = two_sources
    plain = stage_inputs(make_cfg(primary), "label")
    assert "extra_data" not in plain
    cfg = make_cfg(primary, extra_inputs=[_extra(extra)])
    before = json.dumps(stage_inputs(cfg, "label"), sort_keys=True)
    assert before != json.dumps(plain, sort_keys=True)
    with open(extra, "a") as f:  # new rows in the extra file
        f.write(json.dumps({"body": "a new row", "n": 9}) + "\n")
    assert json.dumps(stage_inputs(cfg, "label"), sort_keys=True) != before
