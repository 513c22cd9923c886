import numpy as np
import pytest

from zuoxiao.core.metrics import agreement, classification_metrics


def test_hand_computed_macro_f1():
    # class 0: tp=1 fp=1 fn=1 -> F1 = 2/4 = 0.5 ; class 1: tp=2 fp=1 fn=1 -> F1 = 4/6
    m = classification_metrics([0, 1, 1, 0, 1], [0, 1, 0, 1, 1], num_classes=3)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx((0.5 + 4 / 6) / 2)


def test_agreement():
    assert agreement([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75


# ---------------------------------------------------------------- task kinds (issue 28), numbers by hand
def test_primary_metric_per_kind():
    from zuoxiao.core.kinds import KINDS
    from zuoxiao.core.metrics import PRIMARY_METRIC

    assert set(PRIMARY_METRIC) == set(KINDS) and PRIMARY_METRIC["token"] == "entity_f1"


def test_pair_metrics_add_the_positive_class_f1_for_two_classes():
    from zuoxiao.core.metrics import pair_metrics

    m = pair_metrics([1, 1, 0, 0, 1], [1, 0, 0, 1, 1], 2)
    # positive = 1: tp 2 (rows 0, 4), fp 1 (row 1), fn 1 (row 3) -> 2*2 / (2*2 + 1 + 1) = 4/6
    assert m["accuracy"] == pytest.approx(3 / 5) and m["positive_f1"] == pytest.approx(4 / 6)
    assert "positive_f1" not in pair_metrics([0, 1, 2], [0, 1, 1], 3)


def test_multilabel_f1_macro_and_micro():
    from zuoxiao.core.metrics import multilabel_f1

    gold = [[1, 0, 0], [1, 1, 0], [0, 1, 0]]
    pred = [[1, 0, 0], [0, 1, 0], [1, 1, 0]]
    # label 0: tp 1, fp 1, fn 1 -> 2/4 = 0.5; label 1: tp 2, fp 0, fn 0 -> 1; label 2: never on, left out
    m = multilabel_f1(pred, gold)
    assert m["macro_f1"] == pytest.approx(0.75)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))  # tp 3, fp 1, fn 1


def test_choose_thresholds_maximises_each_labels_dev_f1_nearest_one_half():
    from zuoxiao.core.metrics import choose_thresholds, multilabel_metrics

    probs = np.array([[0.35, 0.9, 0.1], [0.30, 0.6, 0.2], [0.10, 0.4, 0.3], [0.05, 0.2, 0.4]])
    gold = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], bool)
    t = choose_thresholds(probs, gold)
    # label 0: F1 = 1 for thresholds in (0.10, 0.30] -> grid 0.15 .. 0.30, the nearest 0.5 is 0.30
    # label 1: F1 = 1 in (0.4, 0.6] -> 0.45 .. 0.60, and 0.5 itself is among them
    # label 2: no positive dev row -> the default 0.5
    assert t.tolist() == [0.3, 0.5, 0.5]
    m = multilabel_metrics(probs, gold, t)
    assert m["macro_f1"] == 1.0 and m["micro_f1"] == 1.0  # label 2 is never on: left out of the mean
    # at 0.5 label 0 predicts nothing (F1 0), label 1 is right (1): the mean 0.5
    assert m["macro_f1_at_0_5"] == pytest.approx(0.5)


def test_token_metrics_seqeval_strict_on_a_handmade_example():
    from zuoxiao.core.metrics import token_metrics

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG"], ["B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "I-LOC"], ["O", "B-ORG", "O"], ["B-LOC"]]
    # gold entities: PER(0-1), LOC(3) | ORG(1-2) | LOC(0) = 4. Strict BIO: the predicted I-LOC after O starts
    # no entity, so pred = PER(0-1) | ORG(1-1) | LOC(0) = 3, of which PER and the last LOC are right (ORG's end
    # differs). P = 2/3, R = 2/4, F1 = 2PR/(P+R) = 4/7. (The lenient conlleval mode would count the I-LOC.)
    m = token_metrics(pred, gold, ["a", "a", "c"], ["a", "b", "c"])
    assert m["entity_precision"] == pytest.approx(2 / 3) and m["entity_recall"] == pytest.approx(0.5)
    assert m["entity_f1"] == pytest.approx(4 / 7)
    assert m["token_accuracy"] == pytest.approx(6 / 8)  # sentence 1 word 3, sentence 2 word 2 are wrong
    assert m["intent_accuracy"] == pytest.approx(2 / 3)
    assert m["frame_accuracy"] == pytest.approx(1 / 3)  # only sentence 3 has every tag and the intent right
    assert m["per_entity"]["LOC"]["f1-score"] == pytest.approx(2 / 3)  # LOC: P 1/1, R 1/2
    assert m["per_entity"]["ORG"]["support"] == 1
    assert "intent_accuracy" not in token_metrics(pred, gold)


def test_regression_metrics_by_hand():
    from zuoxiao.core.metrics import regression_metrics

    m = regression_metrics([1, 2, 3, 4], [2, 4, 6, 9])
    # deviations (-1.5, -0.5, 0.5, 1.5) and (-3.25, -1.25, 0.75, 3.75): r = 11.5 / sqrt(5 * 26.75)
    assert m["pearson"] == pytest.approx(11.5 / np.sqrt(5 * 26.75))
    assert m["spearman"] == pytest.approx(1.0)  # the same order
    assert m["mse"] == pytest.approx((1 + 4 + 9 + 25) / 4)
    # one swapped pair: rank differences (0, 1, -1, 0) -> 1 - 6 * 2 / (4 * (16 - 1)) = 0.8
    assert regression_metrics([1, 3, 2, 4], [1, 2, 3, 4])["spearman"] == pytest.approx(0.8)
    flat = regression_metrics([2, 2, 2], [1, 2, 3])
    assert np.isnan(flat["pearson"]) and np.isnan(flat["spearman"]) and flat["mse"] == pytest.approx(2 / 3)
