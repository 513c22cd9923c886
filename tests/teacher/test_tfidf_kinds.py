"""The TF-IDF baselines of the task kinds (teacher/tfidf_kinds.py) on tiny tasks they must solve."""

from __future__ import annotations

import numpy as np
import pytest

from zuoxiao.core.rows import TaskRow
from zuoxiao.teacher.tfidf_kinds import (
    TextFeatures,
    fit_multilabel_baseline,
    fit_pair_baseline,
    fit_regression_baseline,
)

WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "lemon", "garden", "rocket", "candle"]


def _pairs(n: int, seed: int) -> list[TaskRow]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a = " ".join(rng.choice(WORDS, 3, replace=False))
        same = i % 2 == 0
        b = a if same else " ".join(rng.choice([w for w in WORDS if w not in a], 3, replace=False))
        rows.append(TaskRow(a, b, label="yes" if same else "no"))
    return rows


def test_pair_features_hold_both_texts_and_their_cosine():
    rows = [TaskRow("red apple", "red apple"), TaskRow("cat", "dim")]  # "cat", "dim": no word or character n-gram shared
    x = TextFeatures(pair=True).fit(rows)(rows).toarray()
    assert x[0, -1] == pytest.approx(1.0) and x[1, -1] == pytest.approx(0.0)  # the last column is cos(a, b)


def test_pair_baseline_learns_word_overlap():
    out = fit_pair_baseline(_pairs(80, 0), _pairs(40, 1), {"test": _pairs(40, 2)}, ["no", "yes"])
    assert out["test"]["accuracy"] >= 0.9 and "positive_f1" in out["test"] and out["C"] in (1.0, 4.0, 16.0)


def test_regression_baseline_correlates_with_the_overlap():
    def rows(seed):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(60):
            a = rng.choice(WORDS, 4, replace=False)
            k = int(rng.integers(0, 5))
            b = list(a[:k]) + [w for w in WORDS if w not in a][: 4 - k]
            out.append(TaskRow(" ".join(a), " ".join(b), score=float(k)))
        return out
    out = fit_regression_baseline(rows(0), rows(1), {"test": rows(2)})
    assert out["test"]["pearson"] > 0.8 and out["test"]["n"] == 60


def test_multilabel_baseline_one_vs_rest_with_dev_thresholds():
    def rows(seed):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(60):
            on = [lab for lab, word in (("fruit", "apple"), ("music", "piano")) if rng.random() < 0.5]
            words = [w for lab, w in (("fruit", "apple"), ("music", "piano")) if lab in on]
            out.append(TaskRow(" ".join(words + list(rng.choice(WORDS[1:5], 2))), labels=tuple(on)))
        return out
    out = fit_multilabel_baseline(rows(0), rows(1), {"test": rows(2)}, ["fruit", "music", "never"])
    assert out["test"]["macro_f1"] >= 0.95 and len(out["thresholds"]) == 3
    assert out["thresholds"][2] == 0.5  # no positive dev row: the default
