"""task.kind (issue 28, docs/task_kinds.md): the config keys and their validation, the readers of every kind
(JSONL lists, joined strings, CoNLL) and the row policy that turns a parsed row into a TaskRow or a reason."""

from __future__ import annotations

import io
import json

import pytest

from zuoxiao.cli import main
from zuoxiao.core.config import DataSource, parse_config
from zuoxiao.core.config.base import TaskConfig
from zuoxiao.core.datasource import parse_rows
from zuoxiao.core.errors import EXIT_BAD_INPUT, ConfigError
from zuoxiao.core.kinds import KINDS, SUPPORTED_BY, require_supported
from zuoxiao.core.rowpolicy import REASONS, gold_text, missing_gold, task_row, unknown_names
from zuoxiao.core.rows import (
    PAIR_JOIN,
    TaskRow,
    bio_problem,
    normalize_label_list,
    parse_score,
    sorted_tag_names,
)


def _cfg(kind: str, **src):
    return parse_config({"task": {"kind": kind}, "label": {"input": {"path": "in.jsonl", **src}}})


def _row(row: dict, kind: str, **src):
    r = {"pos": 0, "line": 1, "row": row, "error": None, "detail": ""}
    return task_row(r, DataSource(path="x", **src), kind)


# ---------------------------------------------------------------- config
def test_kind_defaults_to_single_label_and_existing_keys_are_unchanged():
    cfg = parse_config({"label": {"input": {"path": "in.jsonl"}}})
    assert cfg.task.kind == "single_label"
    src = cfg.label.input
    assert (src.text_pair_column, src.label_separator, src.tokens_column, src.tags_column) == (None, ",", "tokens", "tags")
    assert src.label_column == "label"
    assert set(KINDS) == set(TaskConfig.model_fields["kind"].annotation.__args__)


def test_pair_without_text_pair_column_names_the_source_and_the_fix():
    with pytest.raises(ConfigError) as err:
        _cfg("pair")
    assert "task.kind pair reads two texts but label.input has no text_pair_column; set label.input.text_pair_column" \
        in str(err.value)
    assert _cfg("pair", text_pair_column="b").label.input.text_pair_column == "b"
    assert _cfg("regression", text_pair_column="b").task.kind == "regression"  # a score over pairs


@pytest.mark.parametrize("kind", ["single_label", "multi_label", "token"])
def test_text_pair_column_on_a_one_text_kind_is_an_error(kind):
    with pytest.raises(ConfigError, match=f"text_pair_column='b' is set but task.kind {kind} reads one text"):
        _cfg(kind, text_pair_column="b")


def test_task_sources_are_checked_by_task_config_itself():
    with pytest.raises(ConfigError, match="task.eval has no text_pair_column"):
        parse_config({"task": {"kind": "pair", "eval": {"path": "e.tsv"}},
                      "label": {"input": {"path": "in.jsonl", "text_pair_column": "b"}}})


def test_conll_format_has_no_sentence_label_and_needs_token_kind():
    cfg = _cfg("token", format="conll")
    assert cfg.label.input.label_column is None  # defaulted: a CoNLL file has words and tags only
    auto = parse_config({"task": {"kind": "token"}, "label": {"input": {"path": ["a.conll", "b.conll"]}}})
    assert auto.label.input.label_column is None  # format auto, every path *.conll
    assert parse_config({"task": {"kind": "token"}, "label": {"input": {"path": ["a.conll", "b.jsonl"]}}}
                        ).label.input.label_column == "label"
    with pytest.raises(ConfigError, match="format: conll has no sentence label column, but label_column='intent'"):
        _cfg("token", format="conll", label_column="intent")
    with pytest.raises(ConfigError, match="format: conll has no column names"):
        _cfg("token", format="conll", tags_column="ner")
    with pytest.raises(ConfigError, match="needs task.kind: token"):
        _cfg("single_label", format="conll")


def test_regression_takes_no_label_names_and_split_or_sample_are_single_label_only():
    with pytest.raises(ConfigError, match="task.kind regression predicts a score and has no classes"):
        parse_config({"task": {"kind": "regression", "label_names": ["a", "b"]}, "label": {"input": {"path": "x"}}})
    with pytest.raises(ConfigError, match="task.split is not yet supported for task.kind multi_label"):
        parse_config({"task": {"kind": "multi_label", "split": {"source": {"path": "x"}}}})
    with pytest.raises(ConfigError, match="label.input.sample is not yet supported for task.kind token"):
        _cfg("token", sample=10)


def test_same_column_for_both_texts_is_an_error():
    with pytest.raises(ConfigError, match="text_pair_column and text_column are both 'text'"):
        _cfg("pair", text_pair_column="text")


def test_every_stage_refuses_an_unwired_kind_with_its_name():
    require_supported("single_label", list(SUPPORTED_BY))
    with pytest.raises(ConfigError, match="task.kind token is not yet supported by the label stage"):
        require_supported("token", ["label", "train"])


def test_run_and_stage_commands_refuse_an_unwired_kind_before_reading_data(tmp_path, capsys):
    cfg = tmp_path / "pair.yaml"
    out = tmp_path / "out"
    cfg.write_text(json.dumps({"output_dir": str(out), "task": {"kind": "pair"},
                               "label": {"input": {"path": str(tmp_path / "none.tsv"), "text_pair_column": "b"}}}))
    assert main(["run", str(cfg)]) == EXIT_BAD_INPUT
    assert "task.kind pair is not yet supported by the label stage" in capsys.readouterr().err
    assert main(["train", str(cfg)]) == EXIT_BAD_INPUT
    assert "task.kind pair is not yet supported by the train stage" in capsys.readouterr().err
    assert not out.exists()  # nothing was prepared, locked or written
    assert main(["validate", str(cfg)]) == 0  # the config itself is valid


# ---------------------------------------------------------------- readers
def _parse(text: str, fmt: str) -> list[dict]:
    return list(parse_rows(io.BytesIO(text.encode()), fmt, "f"))


def test_conll_sentences_are_rows_with_their_first_line():
    text = ("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n"
            "play O\ndaft B-artist\npunk I-artist\n\nuntagged\nwords\n")
    rows = _parse(text, "conll")
    assert [r["line"] for r in rows] == [3, 7, 11]
    assert rows[0]["row"] == {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}  # the last field is the tag
    assert rows[1]["row"] == {"tokens": ["play", "daft", "punk"], "tags": ["O", "B-artist", "I-artist"]}
    assert rows[2]["row"] == {"tokens": ["untagged", "words"], "tags": None}
    assert all(r["error"] is None for r in rows) and [r["pos"] for r in rows] == [0, 1, 2]


def test_conll_word_without_a_tag_in_a_tagged_sentence_is_malformed():
    rows = _parse("play O\ndaft\n\nok O\n", "conll")
    assert rows[0]["error"] == "malformed_row" and rows[0]["detail"].startswith("line 2: a word without a tag")
    assert rows[1]["row"] == {"tokens": ["ok"], "tags": ["O"]}


def test_multi_label_cells_from_json_lists_and_joined_strings():
    assert normalize_label_list("joy,love") == ("joy", "love")
    assert normalize_label_list(" joy , love,joy ") == ("joy", "love")  # stripped, first occurrence kept
    assert normalize_label_list('["joy", "love"]') == ("joy", "love")
    assert normalize_label_list(["joy", 1.0]) == ("joy", "1")
    assert normalize_label_list("a|b", "|") == ("a", "b")
    assert normalize_label_list([]) == ()  # explicitly none of the labels
    assert normalize_label_list("") is None and normalize_label_list(None) is None
    with pytest.raises(ValueError, match="is not a JSON list"):
        normalize_label_list("[joy")


def test_scores_parse_or_say_why_not():
    assert parse_score("3.8") == (3.8, "") and parse_score(2) == (2.0, "") and parse_score(" 0.0 ") == (0.0, "")
    assert parse_score("") == (None, "") and parse_score(None) == (None, "")
    assert parse_score("n/a")[0] is None and "'n/a' is not a number" in parse_score("n/a")[1]
    assert "decimal comma" in parse_score("3,5")[1]
    assert "not finite" in parse_score("inf")[1]
    assert "boolean" in parse_score(True)[1]


def test_bio_problems():
    assert bio_problem(("O", "B-artist", "I-artist", "B-playlist")) == ""
    assert "'I-artist' comes after 'O'" in bio_problem(("O", "I-artist"))
    assert "comes at the start" in bio_problem(("I-x",))
    assert "'I-city' comes after 'B-artist'" in bio_problem(("B-artist", "I-city"))
    assert "is not O, B-<type> or I-<type>" in bio_problem(("O", "X-y"))


# ---------------------------------------------------------------- the row policy per kind
def test_single_label_row_is_what_it_was():
    row, reason, why = _row({"text": "hi", "label": "1.0"}, "single_label")
    assert row == TaskRow("hi", label="1") and reason is None and row.key_text == "hi"
    assert _row({"label": "a"}, "single_label")[1] == "missing_text"


def test_pair_rows_and_a_missing_second_text():
    row, _, _ = _row({"a": "x", "b": "y", "label": "equivalent"}, "pair", text_column="a", text_pair_column="b")
    assert row == TaskRow("x", "y", label="equivalent") and row.key_text == "x" + PAIR_JOIN + "y"
    for cell in ({}, {"b": None}, {"b": "  "}, {"b": 3}):
        assert _row({"a": "x", **cell}, "pair", text_column="a", text_pair_column="b")[1] == "missing_text_pair"


def test_multi_label_rows():
    row, _, _ = _row({"text": "t", "labels": "joy,love"}, "multi_label", label_column="labels")
    assert row.labels == ("joy", "love") and row.gold == ("joy", "love")
    assert _row({"text": "t", "labels": "[x"}, "multi_label", label_column="labels")[1] == "malformed_labels"
    assert unknown_names(row, {"joy"}) == ["love"]


def test_regression_rows_reject_a_non_numeric_score_with_the_reason():
    row, _, _ = _row({"a": "x", "b": "y", "score": "4.75"}, "regression", text_column="a", text_pair_column="b",
                     label_column="score")
    assert row.score == 4.75 and row.text_pair == "y"
    assert _row({"text": "x", "label": "n/a"}, "regression")[1:] == (
        "non_numeric_score", "score 'n/a' is not a number (write it as 3.8; a decimal comma is not read)")


def test_token_rows_with_lists_strings_and_a_joint_label():
    src = {"label_column": "intent"}
    row, _, _ = _row({"tokens": ["play", "daft", "punk"], "tags": ["O", "B-artist", "I-artist"],
                      "intent": "PlayMusic"}, "token", **src)
    assert row.text == "play daft punk" and row.tags == ("O", "B-artist", "I-artist") and row.label == "PlayMusic"
    assert unknown_names(row, {"O", "B-artist"}) == ["I-artist"]  # the intent is no tag: never unknown
    spaced, _, _ = _row({"tokens": "play  it", "tags": "O O"}, "token", label_column=None)
    assert spaced.tokens == ("play", "it") and spaced.tags == ("O", "O")
    assert not missing_gold(spaced, DataSource(path="x", label_column=None))
    assert missing_gold(spaced, DataSource(path="x", label_column="intent"))  # no sentence label in a joint task


@pytest.mark.parametrize("row, reason", [
    ({"tags": ["O"]}, "missing_text"),
    ({"tokens": None}, "null_text"),
    ({"tokens": []}, "empty_text"),
    ({"tokens": ["a", 1]}, "malformed_tokens"),
    ({"tokens": ["a", " "]}, "malformed_tokens"),
    ({"tokens": ["a"], "tags": [3]}, "malformed_tags"),
    ({"tokens": ["a", "b"], "tags": ["O"]}, "tag_length_mismatch"),
    ({"tokens": ["a", "b"], "tags": ["O", "I-x"]}, "invalid_bio"),
    ({"tokens": ["a", "b"], "tags": ["B-x", "I-y"]}, "invalid_bio"),
])
def test_token_row_reasons(row, reason):
    got = _row(row, "token", label_column=None)
    assert got[0] is None and got[1] == reason and reason in REASONS


def test_tag_names_from_data_and_gold_as_reports_show_it():
    assert sorted_tag_names(["I-city", "O", "B-artist", "B-city", "I-artist"]) == [
        "O", "B-artist", "I-artist", "B-city", "I-city"]
    assert gold_text("a") == "'a'" and gold_text(4.2) == "4.2" and gold_text(("joy", "love")) == "'joy,love'"
    assert gold_text((("O", "B-city"), "GetWeather")) == "'O B-city | GetWeather'"
    assert gold_text((("O",), None)) == "'O'"


def test_read_task_rows_applies_the_policy_and_refuses_a_missing_column(tmp_path):
    from zuoxiao.core.errors import InputError
    from zuoxiao.core.rowpolicy import read_task_rows

    f = tmp_path / "g.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [
        {"tokens": ["rain", "in", "rome"], "tags": ["O", "O", "B-city"], "intent": "GetWeather"},
        {"tokens": ["rain", "in", "rome"], "tags": ["O", "O", "B-city"], "intent": "GetWeather"},  # a duplicate
        {"tokens": ["play", "it"], "tags": ["O", "I-x"], "intent": "PlayMusic"},  # invalid BIO
        {"tokens": ["play", "abba"], "tags": ["O", "B-artist"]},  # no intent: not gold in a joint task
    ]))
    rows, skips = read_task_rows(DataSource(path=str(f), label_column="intent"), "token")
    assert rows == [TaskRow("rain in rome", label="GetWeather", tokens=("rain", "in", "rome"), tags=("O", "O", "B-city"))]
    assert skips.counts == {"duplicate_id": 1, "invalid_bio": 1, "missing_label": 1}
    assert skips.where["duplicate_id"] == ["g.jsonl line 2 (first: g.jsonl line 1)"]
    with pytest.raises(InputError, match="has no column 'ner' .task.kind token.; its columns are \\['intent', 'tags', 'tokens'\\]"):
        read_task_rows(DataSource(path=str(f), label_column="intent", tags_column="ner"), "token")
