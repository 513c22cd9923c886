"""Whether a fine-tuned teacher is blended with its TF-IDF baseline: chosen on dev, saved beside it.

On tasks where the fine-tuned transformer is weak (TweetEval emoji, 20 classes) the TF-IDF + logistic-
regression baseline errs on other rows, and the mixture of their probabilities beats both. finetune-teacher
(teacher/finetune/stage.py) therefore tries

    p = (1 - w) softmax(z_teacher) + w p_baseline      for w in BLEND_WEIGHTS (0 .. 0.5)

on the dev set (the transformer always keeps the majority weight) and keeps the best w (ties go to the
smaller w) only when both
- it beats the transformer alone (w = 0) by finetune.blend_min_gain dev points, and
- the gain is unlikely to be noise: a paired one-sided exact sign test (McNemar's exact test) on the dev
  rows where exactly one of the two is right, b = rows only the blend gets right, c = rows only the
  transformer gets right, p = P(X >= b | X ~ Binomial(b + c, 1/2)) <= finetune.blend_max_p (0.05).
  A fixed point threshold is 2 rows on a 400-row dev set; the test scales with the dev set and with how
  many rows actually changed. The weight is picked on those same dev rows, so the p-value is optimistic
  (the best of five weights is tested as if it had been fixed in advance): one more reason to keep
  blend_max_p strict.
A kept blend is written into the teacher dir (`save_blend`: blend.json and baseline/), where every place
that loads the dir as a teacher gets the blend (teacher/blend.py).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from zuoxiao.core.metrics import classification_metrics
from zuoxiao.core.shards import write_json_atomic
from zuoxiao.teacher.blend import BASELINE_DIR, BLEND_FILE, blend_logits
from zuoxiao.teacher.tfidf import TfidfBaseline

log = logging.getLogger(__name__)

#: Baseline weights tried on dev; never above 0.5, so the transformer keeps the majority weight.
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def sign_test(b: int, c: int) -> float:
    """One-sided exact sign test (McNemar exact): P(X >= b) for X ~ Binomial(b + c, 1/2); 1.0 when b + c = 0.

    b = dev rows only the blend gets right, c = rows only the transformer gets right; a small p says the
    blend's extra right rows are unlikely under "the two are equally good".
    """
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy comes with scikit-learn (the baseline's dependency)

    return float(binomtest(int(b), int(b + c), 0.5, alternative="greater").pvalue)


def score_teacher(model, tokenizer, splits, num_classes: int, max_length: int) -> tuple[dict, dict]:
    """The kept transformer on splits.dev/.eval -> ({split: logits | None}, {split: metrics | None})."""
    from zuoxiao.core.evaluate import predict_logits

    logits, scores = {}, {}
    for k, xy in (("dev", splits.dev), ("eval", splits.eval)):
        logits[k] = predict_logits(model, tokenizer, xy[0], max_length) if xy and xy[0] else None
        scores[k] = None if logits[k] is None else classification_metrics(
            logits[k].argmax(-1), np.asarray(xy[1]), num_classes)
    return logits, scores


def choose_blend(ft, baseline: TfidfBaseline, logits: dict, splits, num_classes: int, keep: bool = True) -> dict:
    """Score every weight on dev, pick one (see the module docstring) -> the metrics.json ``blend`` entry.

    ``logits``: the kept transformer's logits {"dev": [N, C], "eval": [M, C] | None} on splits.dev/.eval;
    ``keep``: whether the baseline gate keeps the transformer (a blend is saved only with it).
    Returns {"mode", "chosen", "saved", "baseline_weight", "grid": {w: dev accuracy}, "gain_points",
    "min_gain", "rows_gained" (b), "rows_lost" (c), "p_value", "max_p", "reason", "combine", "dev", "eval"};
    b, c and p are the sign test of the best weight against the transformer alone on the dev rows the weight
    was chosen on (optimistic); dev/eval are the blend's metrics at the chosen weight (None when not chosen).
    """
    dev_x, dev_y = splits.dev
    p_dev = baseline.predict_proba(dev_x)
    y = np.asarray(dev_y)
    preds = {w: blend_logits(logits["dev"], p_dev, w).argmax(-1) for w in BLEND_WEIGHTS}
    grid = {w: classification_metrics(preds[w], y, num_classes)["accuracy"] for w in BLEND_WEIGHTS}
    best = max(BLEND_WEIGHTS, key=lambda w: (grid[w], -w))  # ties -> the smaller weight
    gain = round(100 * (grid[best] - grid[0.0]), 2)
    blend_right, alone_right = preds[best] == y, preds[0.0] == y
    b, c = int((blend_right & ~alone_right).sum()), int((alone_right & ~blend_right).sum())
    p = sign_test(b, c)
    rows = f"{b} vs {c} rows, p = {p:.2g}"
    if best == 0:
        chosen, reason = False, "no weight beats the transformer alone on dev"
    elif gain < ft.blend_min_gain:
        chosen, reason = False, f"gain {gain:g} points < finetune.blend_min_gain={ft.blend_min_gain:g} ({rows})"
    elif p > ft.blend_max_p:
        chosen, reason = False, f"gain {gain:g} points, {rows} > finetune.blend_max_p={ft.blend_max_p:g}"
    else:
        chosen, reason = True, f"gain {gain:g} points, {rows} <= {ft.blend_max_p:g}"
    out = {"mode": ft.blend_baseline, "chosen": chosen, "saved": chosen and keep, "baseline_weight": best if chosen else 0.0,
           "grid": {f"{w:g}": round(a, 5) for w, a in grid.items()}, "gain_points": gain,
           "min_gain": ft.blend_min_gain, "rows_gained": b, "rows_lost": c, "p_value": p,
           "max_p": ft.blend_max_p, "reason": reason, "combine": "prob", "dev": None, "eval": None}
    if chosen:
        out["dev"] = classification_metrics(preds[best], y, num_classes)
        if splits.eval and logits.get("eval") is not None:
            ev_x, ev_y = splits.eval
            z = blend_logits(logits["eval"], baseline.predict_proba(ev_x), best)
            out["eval"] = classification_metrics(z.argmax(-1), np.asarray(ev_y), num_classes)
    verdict = f"kept at baseline weight {best:g}" if chosen else f"not kept (best weight {best:g})"
    log.info("finetune: blend with the TF-IDF baseline %s: %s; dev accuracy %.4f vs the transformer's %.4f "
             "(grid %s; the sign test is on the dev rows the weight was chosen on)", verdict, reason, grid[best],
             grid[0.0], out["grid"])
    return out


def remove_blend(teacher_dir: str | Path) -> None:
    """Drop a previous run's blend files (a new fine-tune decides afresh)."""
    d = Path(teacher_dir)
    (d / BLEND_FILE).unlink(missing_ok=True)
    shutil.rmtree(d / BASELINE_DIR, ignore_errors=True)


def save_blend(teacher_dir: str | Path, baseline: TfidfBaseline, blend: dict, label_names: list[str]) -> None:
    """Write <teacher>/baseline/ and <teacher>/blend.json (last: a dir with blend.json is complete)."""
    d = Path(teacher_dir)
    remove_blend(d)
    baseline.save(d / BASELINE_DIR)
    write_json_atomic(d / BLEND_FILE, {
        "baseline_weight": blend["baseline_weight"], "combine": "prob", "baseline_dir": BASELINE_DIR,
        "label_names": list(label_names), "dev_gain_points": blend["gain_points"],
        "dev_accuracy": (blend["dev"] or {}).get("accuracy"), "grid": blend["grid"],
        "dev_rows_gained": blend.get("rows_gained"), "dev_rows_lost": blend.get("rows_lost"),
        "dev_p_value": blend.get("p_value"),
    })
