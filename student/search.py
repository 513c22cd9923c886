"""`train.search`: choose the distillation recipe on the dev set with short runs (a coordinate search).

Starting from the configured recipe, one knob at a time: the loss (KL at each temperature, and logit
MSE), then alpha (only when the shards hold gold labels: otherwise 1 - alpha weighs nothing), then the
representation weight (only when the shards hold teacher representations), then the learning rate.
Each stage keeps the best candidate so far (ties keep the earlier one), so
a stage can never make the recipe worse on dev than the stage before. A candidate is one short run
(`search.max_steps` optimizer steps) scored on dev; a candidate that would not fit in what is left of
`search.budget_s` (estimated from the mean seconds of the runs so far) is skipped and reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from zuoxiao.core.config.train import DistillSearchConfig, TrainConfig

log = logging.getLogger(__name__)


def _variant(tc: TrainConfig, loss: dict | None = None, lr: float | None = None) -> TrainConfig:
    """tc with some loss fields and/or the lr replaced (validated copies, the original untouched)."""
    out = tc.model_copy(update={"loss": tc.loss.model_copy(update=loss or {})})
    if lr is not None:
        out = out.model_copy(update={"optim": tc.optim.model_copy(update={"lr": lr})})
    return out


def recipe(tc: TrainConfig) -> dict:
    """The knobs the search turns, as a flat dict (what metrics.json reports per candidate)."""
    lc = tc.loss
    return {"kind": lc.kind, "temperature": lc.temperature if lc.kind != "mse" else None, "alpha": lc.alpha,
            "repr_weight": lc.repr_weight, "lr": tc.optim.lr}


def stages(sc: DistillSearchConfig, has_gold: bool, has_repr: bool) -> list[tuple[str, Callable]]:
    """(stage name, best TrainConfig -> candidate TrainConfigs) in search order."""
    def loss(tc):
        return [_variant(tc, {"kind": "kl", "temperature": t}) for t in sc.temperatures] + \
            ([_variant(tc, {"kind": "mse"})] if sc.mse else [])

    out = [("loss", loss)]
    if has_gold:
        out.append(("alpha", lambda tc: [_variant(tc, {"alpha": a}) for a in sc.alphas]))
    if has_repr:
        out.append(("repr_weight", lambda tc: [_variant(tc, {"repr_weight": w}) for w in sc.repr_weights]))
    out.append(("lr", lambda tc: [_variant(tc, lr=lr) for lr in sc.lrs]))
    return out


def coordinate_search(tc: TrainConfig, run: Callable[[TrainConfig], dict], *, has_gold: bool, has_repr: bool,
                      clock: Callable[[], float] = time.monotonic) -> tuple[TrainConfig, dict]:
    """Run the search; returns (best TrainConfig, report for metrics.json).

    ``run(candidate)`` trains one short run and returns its dev metrics (must hold ``tc.metric``).
    The report lists every candidate: its stage, recipe, status (ran / skipped_budget), score, metrics
    and seconds.
    """
    sc = tc.search
    start = clock()
    seen: dict[tuple, dict] = {}
    candidates: list[dict] = []
    best_tc, best_score = tc, None
    for stage, make in stages(sc, has_gold, has_repr):
        for cand in make(best_tc):
            key = tuple(sorted(recipe(cand).items()))
            if key in seen:  # e.g. the stage's value equals the one already chosen
                continue
            ran = [c["seconds"] for c in candidates if c["status"] == "ran"]
            elapsed = clock() - start
            entry = {"stage": stage, "recipe": recipe(cand)}
            if ran and elapsed + sum(ran) / len(ran) > sc.budget_s:
                entry.update(status="skipped_budget", score=None)
                candidates.append(entry)
                seen[key] = entry
                continue
            t0 = clock()
            metrics = run(cand)
            score = float(metrics[tc.metric])
            entry.update(status="ran", score=score, metrics=metrics, seconds=round(clock() - t0, 2))
            log.info("search %s %s: dev %s %.4f", stage, entry["recipe"], tc.metric, score)
            candidates.append(entry)
            seen[key] = entry
            if best_score is None or score > best_score:
                best_tc, best_score = cand, score
    best = best_tc.model_copy(update={"search": None})
    report = {"metric": tc.metric, "best": recipe(best), "best_score": best_score, "candidates": candidates,
              "max_steps": sc.max_steps, "budget_s": sc.budget_s, "seconds": round(clock() - start, 2)}
    return best, report
