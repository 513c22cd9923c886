"""Calibration of a shipped model: softmax, expected calibration error, temperature fitting, per-class disagreement."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def ece(probs: np.ndarray, gold: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: sum over confidence bins of |accuracy - confidence| * bin share."""
    conf = probs.max(-1)
    correct = probs.argmax(-1) == gold
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inb = (conf > lo) & (conf <= hi)
        if inb.any():
            total += inb.mean() * abs(correct[inb].mean() - conf[inb].mean())
    return float(total)


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) on a held-out gold set.

    Temperature scaling (Guo et al. 2017) changes confidences, never the argmax. A 1-D search over
    log T (coarse grid, then a finer one around the best point) is exact enough and needs no optimiser.
    logits [N, C], gold [N].
    """
    z, y = logits.astype(np.float64), np.asarray(gold)

    def nll(t: float) -> float:
        a = z / t
        a = a - a.max(-1, keepdims=True)
        return float(np.mean(np.log(np.exp(a).sum(-1)) - a[np.arange(len(y)), y]))

    grid = np.exp(np.linspace(np.log(0.02), np.log(50.0), 121))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.08, 0.08, 33))
    return float(fine[int(np.argmin([nll(t) for t in fine]))])


def per_class_disagreement(student_pred: np.ndarray, teacher_pred: np.ndarray, names: list[str]) -> list[dict]:
    """For each class the teacher predicts: how often the student says something else, worst first."""
    rows = []
    for c, name in enumerate(names):
        sel = teacher_pred == c
        if sel.any():
            rows.append({"class": name, "teacher_rows": int(sel.sum()),
                         "disagreement": float(np.mean(student_pred[sel] != c))})
    return sorted(rows, key=lambda r: -r["disagreement"])
