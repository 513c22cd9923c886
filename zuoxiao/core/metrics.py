"""Metrics shared by training, compression and the model card: classification (numpy only), and one primary
metric per task kind (docs/task_kinds.md; seqeval for entities, scipy for correlations, imported when used)."""

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


# ---------------------------------------------------------------- the metrics of every task kind
# (docs/task_kinds.md): one primary metric per kind, for retention and the gate; the rest are secondary.
PRIMARY_METRIC = {"single_label": "accuracy", "pair": "accuracy", "multi_label": "macro_f1", "token": "entity_f1",
                  "regression": "pearson"}


def _f1(tp, fp, fn) -> float:
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else float("nan")


def pair_metrics(pred, gold, num_classes: int, positive: int = 1) -> dict:
    """single_label / pair: `classification_metrics`, plus for two classes the F1 of class ``positive``
    (MRPC: `equivalent`, task.label_names[1]), as GLUE reports it."""
    out = classification_metrics(pred, gold, num_classes)
    if num_classes == 2 and out["n"]:
        p, g = np.asarray(pred) == positive, np.asarray(gold) == positive
        out["positive_f1"] = _f1(np.sum(p & g), np.sum(p & ~g), np.sum(~p & g))
    return out


def multilabel_f1(pred, gold) -> dict:
    """pred, gold [N, C] bool (label on / off). macro_f1: mean of per-label F1 over labels that occur in pred
    or gold (as `classification_metrics` leaves out absent classes); micro_f1: F1 of all (row, label) pairs."""
    p, g = np.asarray(pred, bool), np.asarray(gold, bool)
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(f"pred {p.shape} and gold {g.shape} must both be [rows, labels]")
    tp, fp, fn = (p & g).sum(0), (p & ~g).sum(0), (~p & g).sum(0)
    per_label = [_f1(*x) for x in zip(tp, fp, fn, strict=True) if sum(x)]
    return {"macro_f1": float(np.mean(per_label)) if per_label else float("nan"),
            "micro_f1": _f1(tp.sum(), fp.sum(), fn.sum()), "n": int(p.shape[0])}


#: Thresholds `choose_thresholds` tries: 0.05, 0.10, ..., 0.95.
THRESHOLD_GRID = np.round(np.arange(1, 20) * 0.05, 2)


def choose_thresholds(probs, gold, grid=THRESHOLD_GRID, default: float = 0.5) -> np.ndarray:
    """One threshold per label [C], chosen on dev: the grid value whose rule ``prob >= threshold`` gives the
    label's best F1 (ties: the one nearest ``default``). A label without a positive dev row keeps ``default``
    (no F1 to maximise). probs [N, C] sigmoid probabilities, gold [N, C] bool."""
    probs, gold = np.asarray(probs, np.float64), np.asarray(gold, bool)
    grid = np.asarray(grid, np.float64)
    order = np.argsort(np.abs(grid - default), kind="stable")  # nearest the default first: ties go to it
    out = np.full(probs.shape[1], default)
    for c in range(probs.shape[1]):
        g = gold[:, c]
        if not g.any():
            continue
        pred = probs[:, c][:, None] >= grid[order][None, :]  # [N, G]
        tp, fp, fn = (pred & g[:, None]).sum(0), (pred & ~g[:, None]).sum(0), (~pred & g[:, None]).sum(0)
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
        out[c] = grid[order][int(np.argmax(f1))]  # argmax takes the first best: the nearest the default
    return out


def multilabel_metrics(probs, gold, thresholds=None) -> dict:
    """multi_label: macro_f1 (primary) and micro_f1 at ``thresholds`` [C] (e.g. `choose_thresholds` on dev;
    None = 0.5 each), and macro_f1_at_0_5 for comparison. probs [N, C], gold [N, C] bool."""
    probs = np.asarray(probs, np.float64)
    t = np.full(probs.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, np.float64)
    out = multilabel_f1(probs >= t[None, :], gold)
    out["macro_f1_at_0_5"] = multilabel_f1(probs >= 0.5, gold)["macro_f1"]
    return out


def token_metrics(pred_tags: list[list[str]], gold_tags: list[list[str]], pred_labels=None, gold_labels=None) -> dict:
    """token: entity-level precision / recall / F1 (primary: entity_f1) by seqeval in strict IOB2 mode (an
    entity counts only if its type and both ends match; an I-x after O starts no entity), token accuracy,
    per-entity scores, and with sentence labels (joint intent): intent_accuracy and frame_accuracy (every tag
    and the intent right)."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    if len(pred_tags) != len(gold_tags) or any(len(p) != len(g) for p, g in zip(pred_tags, gold_tags, strict=True)):
        raise ValueError("pred_tags and gold_tags must have the same sentences of the same lengths")
    if not gold_tags:
        return {"entity_f1": float("nan"), "n": 0}
    strict = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    tags_right = [p == g for p, g in zip(pred_tags, gold_tags, strict=True)]
    right = sum(a == b for p, g in zip(pred_tags, gold_tags, strict=True) for a, b in zip(p, g, strict=True))
    report = classification_report(gold_tags, pred_tags, output_dict=True, **strict)
    out = {"entity_f1": float(f1_score(gold_tags, pred_tags, **strict)),
           "entity_precision": float(precision_score(gold_tags, pred_tags, **strict)),
           "entity_recall": float(recall_score(gold_tags, pred_tags, **strict)),
           "token_accuracy": right / sum(len(g) for g in gold_tags), "n": len(gold_tags),
           "per_entity": {k: {m: float(v[m]) for m in ("precision", "recall", "f1-score", "support")}
                          for k, v in report.items() if not k.endswith(" avg")}}
    if pred_labels is not None and gold_labels is not None:
        intent = np.asarray(pred_labels) == np.asarray(gold_labels)
        out["intent_accuracy"] = float(intent.mean())
        out["frame_accuracy"] = float(np.mean(intent & np.asarray(tags_right)))
    return out


def regression_metrics(pred, gold) -> dict:
    """regression: Pearson (primary) and Spearman correlation, MSE. A constant prediction or gold has no
    correlation: NaN (not scipy's warning)."""
    from scipy.stats import pearsonr, spearmanr

    p, g = np.asarray(pred, np.float64), np.asarray(gold, np.float64)
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gold {g.shape} differ in shape")
    if p.size == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "mse": float("nan"), "n": 0}
    varies = p.size > 1 and p.std() > 0 and g.std() > 0
    return {"pearson": float(pearsonr(p, g)[0]) if varies else float("nan"),
            "spearman": float(spearmanr(p, g)[0]) if varies else float("nan"),
            "mse": float(np.mean((p - g) ** 2)), "n": int(p.size)}
