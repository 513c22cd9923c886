import pytest

from zuoxiao.core.metrics import agreement, classification_metrics


def test_hand_computed_macro_f1():
    # class 0: tp=1 fp=1 fn=1 -> F1 = 2/4 = 0.5 ; class 1: tp=2 fp=1 fn=1 -> F1 = 4/6
    m = classification_metrics([0, 1, 1, 0, 1], [0, 1, 0, 1, 1], num_classes=3)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx((0.5 + 4 / 6) / 2)


def test_agreement():
    assert agreement([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
