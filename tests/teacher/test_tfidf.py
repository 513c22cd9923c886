"""The TF-IDF + logistic-regression baseline: fitted on gold rows, C picked on dev, class order kept."""

import numpy as np

from tests.student.conftest import make_rows
from zuoxiao.teacher.tfidf import C_GRID, TfidfBaseline, fit_baseline


def _xy(rows):
    return [r["text"] for r in rows], [r["y"] for r in rows]


def test_baseline_learns_the_keyword_task_and_reports_each_set():
    train, dev, test = _xy(make_rows(200, 1)), _xy(make_rows(60, 2)), _xy(make_rows(80, 3))
    model, m = fit_baseline(train, dev, {"eval": test}, num_classes=2)
    assert m["kind"] == "tfidf+logreg" and m["dev"]["n"] == 60 and m["eval"]["n"] == 80
    assert m["eval"]["accuracy"] >= 0.9  # one sentiment word decides the label
    assert set(m["grid"]) == {str(c) for c in C_GRID} and m["C"] in C_GRID
    assert m["grid"][str(m["C"])] == max(m["grid"].values()) == m["dev"]["accuracy"]  # picked on dev
    proba = model.predict_proba(test[0])
    assert proba.shape == (80, 2) and np.allclose(proba.sum(-1), 1, atol=1e-5)


def test_classes_missing_from_training_get_zero_probability():
    texts = ["red apple", "green apple", "red car", "green car"] * 5
    labels = [0, 2, 0, 2] * 5  # class 1 never seen
    model = TfidfBaseline(num_classes=3).fit(texts, labels)
    proba = model.predict_proba(["red thing", "green thing"])
    assert proba.shape == (2, 3) and (proba[:, 1] == 0).all() and proba.argmax(-1).tolist() == [0, 2]


def test_without_dev_the_middle_c_is_used_and_one_class_is_handled():
    model, m = fit_baseline((["a b", "a c"], [1, 1]), None, {"eval": (["a", "b"], [1, 0])}, num_classes=2)
    assert m["dev"] is None and m["C"] == C_GRID[len(C_GRID) // 2] and m["eval"]["accuracy"] == 0.5
