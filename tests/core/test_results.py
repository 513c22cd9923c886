"""Headline numbers of every typed stage result, from fresh results and from old .done.json records that
lack the fields added for the headlines."""

from __future__ import annotations

import pytest

from zuoxiao.core.results import (
    RESULT_TYPES,
    CompressResult,
    FinetuneResult,
    LabelResult,
    ShipResult,
    TrainResult,
)

FT_METRICS = {"accuracy": 0.905, "eval_source": "task.eval",
              "teacher": {"dev": {"accuracy": 0.92}, "eval": {"accuracy": 0.905}},
              "baseline": {"dev": {"accuracy": 0.85}, "eval": {"accuracy": 0.84}}}


def test_finetune_headline_from_metrics():
    r = FinetuneResult.from_metrics("/t", FT_METRICS)
    assert r.headline() == {"teacher_dev_accuracy": 0.92, "baseline_dev_accuracy": 0.85, "gain_points": 7.0,
                            "teacher_eval_accuracy": 0.905, "baseline_eval_accuracy": 0.84}
    assert r.headline_text() == ("teacher dev accuracy 92.0% vs TF-IDF baseline 85.0% (+7.0 points); "
                                 "eval 90.5% (baseline 84.0%)")


def test_finetune_old_record_without_the_new_fields():
    # a .done.json from before dev_accuracy & co. existed: the dev numbers come from its metrics copy
    old = {"teacher_dir": "/t", "accuracy": 0.905, "baseline_accuracy": 0.84, "eval_source": "task.eval",
           "metrics": FT_METRICS, "some_future_key": 1}
    assert FinetuneResult.from_json(old).headline()["teacher_dev_accuracy"] == 0.92
    bare = FinetuneResult.from_json({"teacher_dir": "/t", "accuracy": 0.9, "baseline_accuracy": 0.8})
    assert bare.headline()["teacher_dev_accuracy"] == 0.9 and bare.headline()["gain_points"] == 10.0


def test_label_headline_top_reasons_entropy_and_labels():
    manifest = {"counts": {"read": 1000, "labeled": 950, "rejected": 50,
                           "rejected_by_reason": {"empty_text": 30, "bad_label": 12, "duplicate_id": 5,
                                                  "non_finite": 3}},
                "shards": [{}, {}], "num_classes": 4,
                "stats": {"mean_entropy_nats": 0.6931, "entropy_fraction": 0.5,
                          "label_distribution": {"joy": 500, "anger": 300, "fear": 100, "sadness": 50}}}
    r = LabelResult.from_manifest("/l", manifest)
    h = r.headline()
    assert h["top_rejection_reasons"] == {"empty_text": 30, "bad_label": 12, "duplicate_id": 5}  # top 3
    assert h["top_labels"]["joy"] == pytest.approx(500 / 950, abs=1e-4)
    assert r.headline_text() == (
        "labelled 950 of 1,000 rows, rejected 50 (empty_text 30, bad_label 12, duplicate_id 5); soft-label "
        "entropy 0.693 nats (50.0% of ln 4); teacher labels: joy 52.6%, anger 31.6%, fear 10.5%, sadness 5.3%")
    old = LabelResult.from_json({"label_dir": "/l", "read": 3, "labeled": 3, "rejected": 0, "shards": 1})
    assert old.headline()["mean_entropy_nats"] is None
    assert old.headline_text() == "labelled 3 of 3 rows, rejected 0"


def test_label_shares_are_of_all_shard_rows_not_of_the_ten_most_frequent_classes():
    # 15 classes over 200 shard rows (180 labelled + 20 augmented copies): a 50, b 40, c 30, d 20, e 10 and
    # f..o 5 each. The ten most frequent sum to 175, so a share of those would read a 50/175 = 28.6%;
    # of every row it is 50/200 = 25.0% (the 77-class bug: 11.1% shown for 201 of 9,998 rows, 2.0%).
    dist = {"a": 50, "b": 40, "c": 30, "d": 20, "e": 10, **{c: 5 for c in "fghijklmno"}}
    manifest = {"counts": {"read": 180, "labeled": 180, "rejected": 0}, "num_classes": 15,
                "stats": {"label_distribution": dist}}
    r = LabelResult.from_manifest("/l", manifest)
    assert len(r.label_distribution) == 10 and r.label_rows == 200
    assert r.headline()["top_labels"] == {"a": 0.25, "b": 0.2, "c": 0.15, "d": 0.1, "e": 0.05}
    assert r.headline_text().endswith("teacher labels: a 25.0%, b 20.0%, c 15.0%, d 10.0%, e 5.0%")
    # a record from before label_rows existed: the shares are of the labelled rows (50/180 = 27.8%)
    old = LabelResult.from_json({"labeled": 180, "read": 180, "label_distribution": dict(list(dist.items())[:10])})
    assert old.headline()["top_labels"]["a"] == round(50 / 180, 4) == 0.2778


def test_train_headline_dev_from_the_kept_evaluation():
    metrics = {"teacher": {"accuracy": 0.9, "dev_accuracy": 0.91}, "student": {"accuracy": 0.87, "agreement": 0.93},
               "selection": "task.dev",
               "train": {"best_step": 200, "history": [{"step": 100, "eval_accuracy": 0.8, "eval_agreement": 0.85},
                                                       {"step": 200, "eval_accuracy": 0.86, "eval_agreement": 0.92}]}}
    r = TrainResult.from_metrics("/s", metrics)
    assert (r.student_dev_accuracy, r.teacher_dev_accuracy, r.dev_agreement) == (0.86, 0.91, 0.92)
    assert r.headline_text() == ("student dev accuracy 86.0% (teacher 91.0%, agreement 92.0%); "
                                 "eval: student 87.0%, teacher 90.0%, agreement 93.0%")
    old = TrainResult.from_json({"student_dir": "/s", "teacher_accuracy": 0.9, "student_accuracy": 0.87,
                                 "agreement": 0.93, "metrics": metrics})  # no dev fields recorded
    assert old.headline()["student_dev_accuracy"] == 0.86 and old.headline()["teacher_dev_accuracy"] == 0.91
    assert TrainResult().headline_text().startswith("no dev or eval set")


def test_compress_headline_one_line_per_step_with_its_cost():
    steps = [{"name": "student", "accuracy": 0.9, "bytes": 90_000_000},
             {"name": "01-vocab_trim", "accuracy": 0.847, "bytes": 20_000_000, "seconds": 3.2,
              "note": "vocab 30,522 -> 1,574 tokens (min_count 6)"},
             {"name": "02-quantize", "accuracy": 0.845, "bytes": 5_000_000}]
    r = CompressResult(final_step="02-quantize", final_accuracy=0.845, teacher_accuracy=0.92, steps=steps)
    h = r.headline()
    assert [s["change_points"] for s in h["steps"]] == [None, -5.3, -0.2]
    lines = r.headline_text().splitlines()
    assert len(lines) == 4 and lines[1].startswith("01-vocab_trim")
    assert "20.0 MB  accuracy 84.7% (-5.3 points), 3.2 s; vocab 30,522 -> 1,574 tokens (min_count 6)" in lines[1]
    assert lines[-1] == "final 02-quantize: accuracy 84.5%, teacher 92.0%"
    assert CompressResult.from_json({"report": "r.json", "steps": steps[:1]}).headline()["steps"][0]["mb"] == 90.0


def test_ship_headline_gate_verdict_and_checks():
    gate = {"passed": False, "checks": [
        {"name": "finite_outputs", "value": 0, "limit": 0, "ok": True, "detail": "..."},
        {"name": "min_retention", "value": 0.9123, "limit": 0.95, "ok": False, "detail": "..."},
        {"name": "max_size_mb", "value": 4.2, "limit": 20.0, "ok": True, "detail": "..."}]}
    r = ShipResult(passed=False, accuracy=0.84, retention=0.9123, size_mb=4.2, latency_ms_p50=1.5, gate=gate)
    assert [c["name"] for c in r.headline()["checks"]] == ["finite_outputs", "min_retention", "max_size_mb"]
    assert r.headline_text() == ("gate FAILED: min_retention FAILED (0.912 vs 0.95), max_size_mb ok (4.2 vs 20); "
                                 "bundle accuracy 84.0%, retention 0.912, 4.2 MB, p50 1.5 ms")
    assert ShipResult(passed=True, gate={"passed": True, "checks": gate["checks"][:1]}).headline_text().startswith(
        "gate PASSED (no bounds configured)")


@pytest.mark.parametrize("stage", list(RESULT_TYPES))
def test_every_result_type_has_a_json_headline_even_when_empty(stage):
    import json

    r = RESULT_TYPES[stage].from_json({})
    assert isinstance(r.headline_text(), str)
    assert json.loads(json.dumps(r.headline(), allow_nan=False)) == r.headline()  # events.jsonl stays valid JSON
