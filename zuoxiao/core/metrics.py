"""Classification metrics shared by training, compression and the model card (numpy only)."""

from __future__ import annotations

import numpy as np


def classification_metrics(pred, gold, num_classes: int) -> dict:
    """accuracy and macro-F1 (classes absent from both pred and gold are left out of the mean)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    if pred.shape != gold.shape:
        raise ValueError(f"pred {pred.shape} and gold {gold.shape} differ in shape")
    if pred.size == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "n": 0}
    f1s = []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(pred == gold)), "macro_f1": float(np.mean(f1s)), "n": int(pred.size)}


def agreement(pred_a, pred_b) -> float:
    """Fraction of rows on which two models predict the same class."""
    a, b = np.asarray(pred_a), np.asarray(pred_b)
    return float(np.mean(a == b)) if a.size else float("nan")
