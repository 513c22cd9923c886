"""The baseline every teacher must beat: TF-IDF features + logistic regression (scikit-learn).

Fitted on the same gold rows as the teacher and scored on the same dev/eval sets, it answers "is the
fine-tuned transformer worth its cost here?" in seconds. Features are word 1-2-grams plus character
2-5-grams within word boundaries (robust to typos and to the short fragments of SST-2); the inverse
regularisation strength C is picked on the dev set from a small grid, so the baseline is a fair one.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from zuoxiao.core.metrics import classification_metrics

log = logging.getLogger(__name__)

#: Inverse regularisation strengths tried (picked on dev).
C_GRID = (1.0, 4.0, 16.0)


class TfidfBaseline:
    """predict_proba(texts) -> [N, C] float32 in the task's class order (absent classes get 0)."""

    def __init__(self, num_classes: int, C: float = 4.0, seed: int = 0, max_features: int = 200_000):
        self.num_classes, self.C, self.seed, self.max_features = num_classes, C, seed, max_features
        self.vectorizer = self.model = None

    def _features(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        half = self.max_features // 2
        return FeatureUnion([
            # single-character words count too (emoji-less tweets, "a", "i"): token_pattern keeps them
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=half, lowercase=True,
                                     token_pattern=r"(?u)\b\w+\b")),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                     max_features=half, lowercase=True)),
        ])

    def fit(self, texts: list[str], labels: list[int], features=None) -> TfidfBaseline:
        from sklearn.linear_model import LogisticRegression

        if self.vectorizer is None:
            self.vectorizer = self._features()
            features = self.vectorizer.fit_transform(texts)
        elif features is None:
            features = self.vectorizer.transform(texts)
        self.model = LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed)
        self.model.fit(features, np.asarray(labels))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        proba = self.model.predict_proba(self.vectorizer.transform(texts))  # [N, classes seen in training]
        out = np.zeros((len(texts), self.num_classes), dtype=np.float32)
        out[:, self.model.classes_] = proba
        return out


def _scores(model: TfidfBaseline, texts: list[str], labels: list[int], num_classes: int) -> dict | None:
    if not texts:
        return None
    pred = model.predict_proba(texts).argmax(-1)
    return classification_metrics(pred, np.asarray(labels), num_classes)


def fit_baseline(train: tuple[list[str], list[int]], dev: tuple[list[str], list[int]] | None,
                 evals: dict[str, tuple[list[str], list[int]]], num_classes: int, seed: int = 0
                 ) -> tuple[TfidfBaseline, dict]:
    """Fit on ``train``; pick C on ``dev`` (the middle of the grid without one); score on dev and ``evals``.

    Returns (model, metrics) with metrics = {"kind", "C", "dev": {accuracy, macro_f1, n} | None,
    <eval name>: {...}, "seconds", "grid": {C: dev accuracy}}.
    """
    import sklearn.linear_model  # noqa: F401  (load scikit-learn/scipy's BLAS first: the limit applies to
    from threadpoolctl import threadpool_limits  # libraries already loaded)

    # One BLAS/OpenMP thread: on a busy CPU, lbfgs with spinning threads ran 15x slower (measured: 12-19 s
    # vs 0.7-1.1 s per fit on the demo's 640 rows), and the fits are small enough not to need more.
    with threadpool_limits(1):
        return _fit_baseline(train, dev, evals, num_classes, seed)


def _fit_baseline(train, dev, evals, num_classes: int, seed: int) -> tuple[TfidfBaseline, dict]:
    t0 = time.perf_counter()
    x, y = train
    if len(set(y)) < 2:
        # Logistic regression needs two classes; a constant predictor is the honest baseline then.
        log.warning("baseline: the training rows hold a single class; the baseline predicts it always")
    base = TfidfBaseline(num_classes, seed=seed)
    base.vectorizer = base._features()
    feats = base.vectorizer.fit_transform(x)
    grid: dict[str, float] = {}
    best, best_acc = None, -1.0
    for c in (C_GRID if dev and dev[0] else (C_GRID[len(C_GRID) // 2],)):
        cand = TfidfBaseline(num_classes, C=c, seed=seed)
        cand.vectorizer = base.vectorizer
        if len(set(y)) < 2:
            cand.model = _Constant(y[0] if y else 0)
        else:
            cand.fit(x, y, features=feats)
        acc = _scores(cand, *dev, num_classes)["accuracy"] if dev and dev[0] else 0.0
        grid[str(c)] = round(acc, 5)
        if acc > best_acc:
            best, best_acc = cand, acc
    metrics = {"kind": "tfidf+logreg", "C": best.C, "grid": grid,
               "dev": _scores(best, *dev, num_classes) if dev else None}
    for name, (tx, ty) in evals.items():
        metrics[name] = _scores(best, tx, ty, num_classes)
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    return best, metrics


class _Constant:
    """A stand-in for LogisticRegression when the gold rows hold one class."""

    def __init__(self, label: int):
        self.classes_ = np.asarray([label])

    def predict_proba(self, features) -> np.ndarray:
        return np.ones((features.shape[0], 1))
