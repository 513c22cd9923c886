"""TF-IDF baselines of the task kinds beyond single-label (docs/task_kinds.md): the bar a fine-tuned teacher
must clear by 2 points of the kind's primary metric (issue 28).

    pair         logistic regression on [v(a), v(b), |v(a) - v(b)|, v(a) * v(b), cos(a, b)]
    multi_label  one logistic regression per label (one-vs-rest); per-label thresholds chosen on dev
    regression   ridge on v(text), or on the pair features for a score of two texts

v(.) is the TF-IDF vector of teacher/baseline.py's features (word 1-2-grams + character 2-5-grams within
words, sublinear tf, L2-normalised), fitted on the training texts (both sides of a pair). The
regularisation strength is picked on dev from a small grid by the primary metric (multi_label: one value). Token tagging has no
TF-IDF baseline. The models are not saved yet (teacher/baseline.py's save/load joins them when a stage
uses them); this module is called by bench/kinds_baseline.py only.
"""

from __future__ import annotations

import time

import numpy as np

from zuoxiao.core.metrics import choose_thresholds, multilabel_metrics, pair_metrics, regression_metrics
from zuoxiao.core.rows import TaskRow

#: Inverse regularisation strengths (logistic regression) / ridge alphas tried on dev.
C_GRID = (1.0, 4.0, 16.0)
ALPHA_GRID = (0.3, 1.0, 3.0, 10.0)
#: multi_label tries one C (the grid's middle): C_GRID x 28 GoEmotions labels ran over 15 minutes on 2 shared cores.
MULTI_C_GRID = (4.0,)


class TextFeatures:
    """TF-IDF of one text, or pair features of two; fitted once on the training rows."""

    def __init__(self, pair: bool, max_features: int = 200_000):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        half = max_features // 2
        self.pair = pair
        self.vectorizer = FeatureUnion([  # the features of teacher/baseline.py's TfidfBaseline
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=half,
                                     token_pattern=r"(?u)\b\w+\b")),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, max_features=half)),
        ])

    def fit(self, rows: list[TaskRow]) -> TextFeatures:
        texts = [r.text for r in rows] + ([r.text_pair for r in rows] if self.pair else [])
        self.vectorizer.fit(texts)
        return self

    def __call__(self, rows: list[TaskRow]):
        from scipy.sparse import csr_matrix, hstack
        from sklearn.preprocessing import normalize

        a = normalize(self.vectorizer.transform([r.text for r in rows]))  # the union of two unit vectors: renormalise
        if not self.pair:
            return a
        b = normalize(self.vectorizer.transform([r.text_pair for r in rows]))
        both = a.multiply(b)
        cos = csr_matrix(np.asarray(both.sum(axis=1)))
        return hstack([a, b, abs(a - b), both, cos]).tocsr()


def _fit_logreg(x, y, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=1000, solver="liblinear", random_state=seed).fit(x, y)


def fit_pair_baseline(train: list[TaskRow], dev: list[TaskRow], evals: dict[str, list[TaskRow]],
                      label_names: list[str], seed: int = 0) -> dict:
    """task.kind pair: C on dev by accuracy; pair_metrics (accuracy, positive-class F1) on dev and each eval."""
    t0 = time.perf_counter()
    index = {n: i for i, n in enumerate(label_names)}
    feats = TextFeatures(pair=True).fit(train)
    x, y = feats(train), np.array([index[r.label] for r in train])
    xd, yd = feats(dev), np.array([index[r.label] for r in dev])
    fits = {c: _fit_logreg(x, y, c, seed) for c in C_GRID}
    grid = {c: float(np.mean(m.predict(xd) == yd)) for c, m in fits.items()}
    best = max(C_GRID, key=lambda c: grid[c])  # first best: the smallest C
    out = {"model": "tfidf+logreg (pair features)", "C": best, "grid": grid,
           "dev": pair_metrics(fits[best].predict(xd), yd, len(label_names))}
    for name, rows in evals.items():
        out[name] = pair_metrics(fits[best].predict(feats(rows)), [index[r.label] for r in rows], len(label_names))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _multi_hot(rows: list[TaskRow], label_names: list[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(label_names)}
    out = np.zeros((len(rows), len(label_names)), bool)
    for i, r in enumerate(rows):
        out[i, [index[x] for x in r.labels]] = True
    return out


def _ovr_proba(x, y: np.ndarray, xs: list, c: float, seed: int) -> list[np.ndarray]:
    """One logistic regression per label (a label with one value in training: that value's probability)."""
    outs = [np.zeros((m.shape[0], y.shape[1])) for m in xs]
    for j in range(y.shape[1]):
        if y[:, j].all() or not y[:, j].any():
            for o in outs:
                o[:, j] = float(y[0, j])
            continue
        model = _fit_logreg(x, y[:, j], c, seed)
        for o, m in zip(outs, xs, strict=True):
            o[:, j] = model.predict_proba(m)[:, 1]
    return outs


def fit_multilabel_baseline(train: list[TaskRow], dev: list[TaskRow], evals: dict[str, list[TaskRow]],
                            label_names: list[str], seed: int = 0) -> dict:
    """task.kind multi_label: one-vs-rest; per C (MULTI_C_GRID), thresholds chosen on dev, C by dev macro-F1 at them.
    The dev numbers are therefore optimistic (thresholds fitted there); the eval numbers are not."""
    t0 = time.perf_counter()
    feats = TextFeatures(pair=False).fit(train)
    x, y = feats(train), _multi_hot(train, label_names)
    xd, yd = feats(dev), _multi_hot(dev, label_names)
    xe = {name: feats(rows) for name, rows in evals.items()}
    grid, best = {}, None
    for c in MULTI_C_GRID:
        pd, *pe = _ovr_proba(x, y, [xd, *xe.values()], c, seed)
        t = choose_thresholds(pd, yd)
        grid[c] = multilabel_metrics(pd, yd, t)["macro_f1"]
        if best is None or grid[c] > grid[best[0]]:
            best = (c, t, pd, pe)
    c, t, pd, pe = best
    out = {"model": "tfidf+logreg one-vs-rest", "C": c, "grid": grid, "thresholds": [round(float(v), 2) for v in t],
           "dev": multilabel_metrics(pd, yd, t)}
    for (name, rows), p in zip(evals.items(), pe, strict=True):
        out[name] = multilabel_metrics(p, _multi_hot(rows, label_names), t)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def fit_regression_baseline(train: list[TaskRow], dev: list[TaskRow], evals: dict[str, list[TaskRow]]) -> dict:
    """task.kind regression: ridge, alpha on dev by Pearson; regression_metrics on dev and each eval."""
    from sklearn.linear_model import Ridge

    t0 = time.perf_counter()
    feats = TextFeatures(pair=train[0].text_pair is not None).fit(train)
    x, y = feats(train), np.array([r.score for r in train])
    xd, yd = feats(dev), np.array([r.score for r in dev])
    fits = {a: Ridge(alpha=a).fit(x, y) for a in ALPHA_GRID}
    grid = {a: regression_metrics(m.predict(xd), yd)["pearson"] for a, m in fits.items()}
    best = max(ALPHA_GRID, key=lambda a: grid[a])
    out = {"model": "tfidf+ridge", "alpha": best, "grid": grid, "dev": regression_metrics(fits[best].predict(xd), yd)}
    for name, rows in evals.items():
        out[name] = regression_metrics(fits[best].predict(feats(rows)), [r.score for r in rows])
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out
