"""`zuoxiao validate --data` for every task.kind (issue 28): the problems only some kinds can have, reported
with their places like the single-label checks."""

from __future__ import annotations

import json
from pathlib import Path

from zuoxiao.core.config import parse_config
from zuoxiao.core.datacheck import check_data


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _tsv(path: Path, header: str, lines: list[str]) -> str:
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines))
    return str(path)


def _check(tmp_path, task: dict, src: dict, train: str, dev: str, label_input: str | None = None):
    cfg = parse_config({"output_dir": str(tmp_path / "out"),
                        "task": {**task, "dev": {"path": dev, **src}},
                        "finetune": {"data": {"path": train, **src}},
                        "label": {"input": {"path": label_input or train, **src}}})
    return check_data(cfg)


def test_token_tags_unknown_bio_and_length_problems_with_places(tmp_path):
    good = [{"tokens": ["play", "daft", "punk"], "tags": ["O", "B-artist", "I-artist"], "intent": "PlayMusic"},
            {"tokens": ["rain", "in", "paris"], "tags": ["O", "O", "B-city"], "intent": "GetWeather"}]
    train = _jsonl(tmp_path / "train.jsonl", good + [
        {"tokens": ["play", "it"], "tags": ["O", "I-artist"], "intent": "PlayMusic"},  # line 3: I- after O
        {"tokens": ["a", "b", "c"], "tags": ["O", "O"], "intent": "PlayMusic"},  # line 4: 3 words, 2 tags
        {"tokens": ["hi", "rome"], "tags": ["O", "B-town"], "intent": "GetWeather"},  # line 5: unknown tag
        {"tokens": ["no", "tags"], "intent": "GetWeather"},  # line 6: no gold tags
    ])
    dev = _jsonl(tmp_path / "dev.jsonl", good)
    names = ["O", "B-artist", "I-artist", "B-city"]
    report = _check(tmp_path, {"kind": "token", "label_names": names}, {"label_column": "intent"}, train, dev)
    ft = report.sources["finetune.data"]
    assert ft["rows"] == 6 and ft["usable"] == 3  # a gold row with an unknown tag is kept: the error is the config's
    assert ft["skipped"] == {"invalid_bio": 1, "tag_length_mismatch": 1, "missing_label": 1}
    assert ft["skipped_where"]["invalid_bio"] == [
        "train.jsonl line 3 (tag 1 'I-artist' comes after 'O'; an I- tag continues a B-/I- tag of its type (strict "
        "BIO: convert IOB1 files so each entity starts with B-))"]
    assert ft["skipped_where"]["tag_length_mismatch"] == ["train.jsonl line 4 (3 words but 2 tags)"]
    assert ft["unknown_labels"] == {"B-town": 1}
    assert ft["entities"] == {"artist": 1, "city": 1, "town": 1}
    assert ft["sentence_labels"] == {"GetWeather": 2, "PlayMusic": 1}
    assert ft["imbalance"] is None  # O outnumbers every tag in any tagging task: no imbalance for tags
    assert any("finetune.data: labels ['B-town'] (1 rows) are not in task.label_names" in e for e in report.errors)
    # label.input does not need gold: the row without tags is labelled by the teacher; the unknown tag is a dead letter
    li = report.sources["label.input"]
    assert li["usable"] == 3 and li["skipped"] == {"invalid_bio": 1, "tag_length_mismatch": 1, "unknown_label": 1}


def test_token_set_without_any_entity_and_conll_input(tmp_path):
    train = tmp_path / "train.conll"
    train.write_text("play O\ndaft B-artist\n\nhello O\n\n")
    dev = tmp_path / "dev.conll"
    dev.write_text("hello O\nthere O\n")
    report = _check(tmp_path, {"kind": "token"}, {"format": "conll"}, str(train), str(dev))
    assert report.sources["finetune.data"]["usable"] == 2 and report.sources["task.dev"]["usable"] == 1
    assert "task.dev: no row has an entity (every tag is O); is tags_column the tag column?" in report.errors


def test_pair_missing_second_text_and_pairs_that_share_a_first_text(tmp_path):
    header = "text_a\ttext_b\tlabel"
    train = _tsv(tmp_path / "train.tsv", header, ["a cat\ta dog\tno", "a cat\ta kitten\tyes",  # two pairs, not dups
                                                  "a cat\t \tyes", "x\ty\tyes", "x\ty\tno"])
    dev = _tsv(tmp_path / "dev.tsv", header, ["A  Cat\ta dog\tno", "b\tc\tyes"])
    src = {"format": "tsv", "text_column": "text_a", "text_pair_column": "text_b"}
    report = _check(tmp_path, {"kind": "pair", "label_names": ["no", "yes"]}, src, train, dev)
    ft = report.sources["finetune.data"]
    assert ft["usable"] == 3 and ft["labels"] == {"no": 1, "yes": 2}
    assert ft["skipped"] == {"missing_text_pair": 1, "conflicting_label": 1}
    assert ft["skipped_where"]["missing_text_pair"] == ["train.tsv line 4"]
    # a leak is a pair seen in training (up to case and spacing), not a first text seen there
    assert report.overlaps["task.dev & finetune.data"] == 1
    assert any("'A  Cat || a dog'" in w for w in report.warnings)


def test_pair_source_without_the_second_column_is_an_error(tmp_path):
    train = _tsv(tmp_path / "train.tsv", "text_a\tlabel", ["a\tyes", "b\tno"])
    src = {"format": "tsv", "text_column": "text_a", "text_pair_column": "text_b"}
    report = _check(tmp_path, {"kind": "pair"}, src, train, train)
    assert any(e.startswith("finetune.data: train.tsv: no column 'text_b'") for e in report.errors)


def test_regression_non_numeric_and_constant_scores(tmp_path):
    header = "text_a\ttext_b\tscore"
    train = _tsv(tmp_path / "train.tsv", header, ["a\tb\t4.75", "c\td\tn/a", "e\tf\t0.0", "g\th\t"])
    dev = _tsv(tmp_path / "dev.tsv", header, ["a2\tb\t2.5", "c2\td\t2.5"])
    src = {"format": "tsv", "text_column": "text_a", "text_pair_column": "text_b", "label_column": "score"}
    report = _check(tmp_path, {"kind": "regression"}, src, train, dev)
    ft = report.sources["finetune.data"]
    assert ft["skipped"] == {"non_numeric_score": 1, "missing_label": 1}
    assert ft["skipped_where"]["non_numeric_score"] == [
        "train.tsv line 3 (score 'n/a' is not a number (write it as 3.8; a decimal comma is not read))"]
    assert ft["scores"] == {"n": 2, "min": 0.0, "max": 4.75, "mean": 2.375} and ft["labels"] == {}
    assert "task.dev: every gold score is 2.5; a regression needs scores that vary (is label_column the score " \
           "column?)" in report.errors
    assert not any("classes" in e for e in report.errors)  # a score has no classes to cover
    assert "scores 0..4.75" in report.to_text()


def test_multi_label_unknown_names_missing_and_empty_label_sets(tmp_path):
    header = "text\tlabels"
    train = _tsv(tmp_path / "train.tsv", header, ["t1\tjoy,love", "t2\tjoy", "t3\t", "t4\t[]", "t5\tjoy,grief",
                                                  "t6\tlove"])
    dev = _tsv(tmp_path / "dev.tsv", header, ["d1\tlove,joy", "d2\tjoy"])
    src = {"format": "tsv", "label_column": "labels"}
    report = _check(tmp_path, {"kind": "multi_label", "label_names": ["joy", "love"]}, src, train, dev)
    ft = report.sources["finetune.data"]
    assert ft["skipped"] == {"missing_label": 1}  # t3: an empty cell is unlabelled
    assert ft["labels"] == {"grief": 1, "joy": 3, "love": 2}  # per label, over t1, t2, t4 (none), t5, t6
    assert ft["unknown_labels"] == {"grief": 1} and ft["empty_label_sets"] == 1
    assert any("labels ['grief'] (1 rows) are not in task.label_names" in e for e in report.errors)
    assert any("1 rows carry an explicit empty label list ([])" in w for w in report.warnings)


def test_single_label_report_has_no_kind_keys(tmp_path):
    train = _tsv(tmp_path / "train.tsv", "text\tlabel", ["a\tx", "b\ty"])
    report = _check(tmp_path, {}, {"format": "tsv"}, train, train)
    assert not {"scores", "entities", "sentence_labels", "empty_label_sets"} & set(report.sources["finetune.data"])
