import numpy as np
import pytest

from zuoxiao.ship.calibration import ece, fit_temperature, softmax


def test_fit_temperature_recovers_the_overconfidence_factor():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 4)) * 1.5
    p = softmax(true_logits)
    gold = np.array([rng.choice(4, p=row) for row in p])  # labels drawn from the true distribution
    t = fit_temperature(true_logits * 3.0, gold)  # a model 3x too confident
    assert t == pytest.approx(3.0, rel=0.1)
    assert ece(softmax(true_logits * 3.0 / t), gold) < ece(softmax(true_logits * 3.0), gold)


def test_well_calibrated_logits_keep_t_near_one():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4000, 3)) * 2
    gold = np.array([rng.choice(3, p=row) for row in softmax(logits)])
    assert fit_temperature(logits, gold) == pytest.approx(1.0, rel=0.1)
