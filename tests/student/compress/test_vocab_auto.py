"""vocab_trim.min_count: auto scales with the transfer set and measures its cost on task.dev; every trim
reports what it kept (vocabulary, transfer-token coverage, dev [UNK] rate, dev accuracy before/after)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.student.compress.compress_fixtures import (
    LABELS,
    NEG,
    POS,
    make_model,
    make_tokenizer,
    train_briefly,
    write_eval,
)
from zuoxiao.core.config import parse_config
from zuoxiao.core.config.compress import VocabTrim
from zuoxiao.core.labelout import write_label_output
from zuoxiao.student.compress import steps as S
from zuoxiao.student.compress import vocab_auto as A

RARE = ["zebra quantum", "election vote", "phone chip", "new stock market"]  # each seen once: the tail


def _transfer(label_dir, repeat: int) -> int:
    """POS + NEG `repeat` times (every common token >= repeat times) plus the rare rows once."""
    texts = (POS + NEG) * repeat + RARE
    rows = [{"id": str(i), "text": t, "gold": None} for i, t in enumerate(texts)]
    write_label_output(label_dir, rows, np.random.default_rng(0).normal(size=(len(rows), 2)), LABELS)
    return len(rows)


def _ctx(tmp_path, label_dir, dev: bool):
    eval_path = write_eval(tmp_path / "eval.jsonl")
    src = {"path": str(eval_path), "text_column": "text", "label_column": "label"}
    cfg = parse_config({"task": {"name": "t", "label_names": LABELS, "eval": src, **({"dev": src} if dev else {})},
                        "label": {"input": {"path": str(eval_path)}}})
    return SimpleNamespace(paths=SimpleNamespace(label=label_dir), cfg=SimpleNamespace(seed=0, task=cfg.task),
                           label_names=LABELS, max_length=16, cc=SimpleNamespace(eval_batch_size=64),
                           texts=POS + NEG)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tok = make_tokenizer(tmp_path_factory.mktemp("tok"))
    return train_briefly(make_model(), tok), tok


def _trim(tmp_path, trained, repeat: int, dev: bool = True, **step):
    import copy

    model, tok = trained
    label_dir = tmp_path / f"label-{repeat}"
    rows = _transfer(label_dir, repeat)
    state = S.State(model=copy.deepcopy(model), tokenizer=tok, onnx=None, runtime="torch", dir=tmp_path)
    spec = VocabTrim(kind="vocab_trim", **{"min_count": "auto", "auto_rows_per_count": 20, **step})
    _, info = S._vocab(_ctx(tmp_path, label_dir, dev), state, spec, tmp_path / f"out-{repeat}-{dev}")
    return rows, info


def test_auto_keeps_a_larger_vocabulary_for_a_smaller_transfer_set(tmp_path, trained):
    small_rows, small = _trim(tmp_path, trained, repeat=1, auto_tolerance=100)
    big_rows, big = _trim(tmp_path, trained, repeat=8, auto_tolerance=100)
    assert (small_rows, big_rows) == (28, 196)
    # 28 rows < 2 x 20: cap 1, every token the transfer set uses stays
    assert small["min_count"] == 1 and small["auto"]["cap"] == 1
    assert [t["min_count"] for t in small["auto"]["trials"]] == [1]  # cap 1 still measures its one cut-off
    assert small["transfer_token_coverage"] == 1.0
    # 196 rows: cap 9; with any cost allowed it takes the largest candidate, 8, and drops the once-seen tail
    assert big["auto"]["cap"] == 9 and [t["min_count"] for t in big["auto"]["trials"]] == [1, 2, 3, 4, 6, 8]
    assert big["min_count"] == 8
    assert big["vocab_after"] < small["vocab_after"]
    assert 0.9 < big["transfer_token_coverage"] < 1.0  # the rare words' tokens are ~4% of the occurrences
    for info in (small, big):  # the dev numbers are always reported
        assert info["dev_rows"] == 24 and info["dev_unk_rate_after"] == 0.0
        assert info["dev_accuracy_before"] == info["dev_accuracy_after"]  # dev uses only common words: exact


def test_auto_stops_at_the_first_cut_off_that_costs_more_than_the_tolerance(tmp_path, trained, monkeypatch):
    # a dev measurement in which dropping the once-seen tail (min_count >= 2) loses 2 points
    real = A.accuracy
    full_vocab = _trim(tmp_path / "one", trained, 8, min_count=1)[1]["vocab_after"]

    def costly_tail(model, tok, dev, max_length, bs):
        cut = model.get_input_embeddings().num_embeddings < full_vocab
        return real(model, tok, dev, max_length, bs) - (0.02 if cut else 0.0)

    monkeypatch.setattr(A, "accuracy", costly_tail)
    _, info = _trim(tmp_path, trained, 8, auto_tolerance=0.5)
    assert [(t["min_count"], t["cost_points"]) for t in info["auto"]["trials"]] == [(1, 0.0), (2, 2.0)]
    assert info["min_count"] == 1 and info["vocab_after"] == full_vocab
    _, loose = _trim(tmp_path / "loose", trained, 8, auto_tolerance=2.5)  # 2 points allowed: goes on to 8
    assert loose["min_count"] == 8


def test_without_dev_auto_keeps_every_token_and_an_integer_still_works(tmp_path, trained):
    _, info = _trim(tmp_path, trained, 8, dev=False)
    assert info["min_count"] == 1 and "no task.dev" in info["auto"]["why"] and "dev_rows" not in info
    _, fixed = _trim(tmp_path / "fixed", trained, 8, min_count=2)
    assert fixed["min_count"] == 2 and fixed["min_count_setting"] == 2 and "auto" not in fixed


def test_size_cap_and_coverage():
    from collections import Counter

    assert [A.size_cap(n, 2000) for n in (3200, 3999, 4000, 9500, 120000)] == [1, 1, 2, 4, 60]
    assert A.token_coverage(Counter({1: 9, 2: 1}), 2) == 0.9 and A.token_coverage(Counter(), 5) == 1.0


def test_a_costly_trim_is_a_loud_warning_and_in_the_headline(caplog):
    from zuoxiao.core.results import CompressResult
    from zuoxiao.student.compress.stage import vocab_note

    step = VocabTrim(kind="vocab_trim", min_count=6)
    info = {"vocab_before": 30522, "vocab_after": 1574, "min_count": 6, "min_count_setting": 6,
            "transfer_token_coverage": 0.9412, "dev_accuracy_before": 0.41, "dev_accuracy_after": 0.357,
            "dev_unk_rate_after": 0.0, "dev_texts_changed": 0.31}
    prev, rec = {"accuracy": 0.40}, {"name": "01-vocab_trim", "accuracy": 0.395, "info": info}
    with caplog.at_level("WARNING"):
        vocab_note(step, rec, prev)
    assert rec["warning"].startswith("vocab_trim cost 5.3 points on task.dev (41.0% -> 35.7%)")
    assert "Lower vocab_trim.min_count" in caplog.text
    assert rec["note"] == ("vocab 30,522 -> 1,574 tokens (min_count 6), 94.1% of transfer tokens kept, dev [UNK] "
                           "0.0%, dev texts re-split 31.0%, dev 41.0% -> 35.7%")
    text = CompressResult(steps=[{"name": "student", "accuracy": 0.40, "bytes": 1e6}, {**rec, "bytes": 5e5}],
                          final_step="01-vocab_trim").headline_text()
    assert "<- WARNING: vocab_trim cost 5.3 points on task.dev (41.0% -> 35.7%)" in text
    cheap = {"name": "01-vocab_trim", "accuracy": 0.40, "info": {**info, "dev_accuracy_after": 0.409}}
    vocab_note(step, cheap, prev)
    assert "warning" not in cheap


def test_auto_does_not_trim_when_even_min_count_1_costs_more_than_the_tolerance(tmp_path, trained, monkeypatch):
    """A small transfer set that misses dev's words: keeping only its tokens costs dev accuracy, so auto keeps
    the whole vocabulary and says why (an explicit min_count: 1 still trims)."""
    real = A.accuracy
    whole = trained[0].get_input_embeddings().num_embeddings

    def any_cut_costs(model, tok, dev, max_length, bs):
        return real(model, tok, dev, max_length, bs) - (0.03 if model.get_input_embeddings().num_embeddings < whole else 0)

    monkeypatch.setattr(A, "accuracy", any_cut_costs)
    _, info = _trim(tmp_path, trained, 1, auto_tolerance=0.5)
    assert info["skipped"] and info["min_count"] == 0 and info["vocab_after"] == info["vocab_before"] == len(trained[1])
    assert [(t["min_count"], t["cost_points"]) for t in info["auto"]["trials"]] == [(1, 3.0)]
    assert "kept whole" in info["auto"]["why"]
    from zuoxiao.student.compress.stage import vocab_note

    rec = {"info": info, "accuracy": 0.5}
    vocab_note(SimpleNamespace(warn_points=1.0), rec, {"accuracy": 0.5})
    assert rec["note"].startswith(f"vocab kept whole ({info['vocab_after']:,} tokens): even min_count 1 costs")
    _, fixed = _trim(tmp_path / "fixed", trained, 1, min_count=1)
    assert fixed["vocab_after"] < info["vocab_before"]
