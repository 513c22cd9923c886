"""Loss values against numbers computed by hand (see the comments)."""

import math

import numpy as np
import pytest
import torch

from zuoxiao.core.softlabels import dense_from_topk
from zuoxiao.student.losses import NO_GOLD, distill_loss, kd_kl, kd_mse


def test_kl_with_temperature_hand_computed():
    # teacher logits [1, 0] at T=2 -> softmax([0.5, 0]) = [0.622459, 0.377541]; student uniform [0.5, 0.5]
    # KL = 0.622459*ln(0.622459/0.5) + 0.377541*ln(0.377541/0.5) = 0.0302999; x T^2 = 0.1211994
    got = kd_kl(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), temperature=2.0)
    assert got.item() == pytest.approx(0.1211994, abs=1e-6)
    # identical distributions: zero
    assert kd_kl(torch.tensor([[3.0, 1.0]]), torch.tensor([[3.0, 1.0]]), 2.0).item() == pytest.approx(0, abs=1e-7)


def test_ce_mixing_and_rows_without_gold():
    s = torch.zeros(2, 2)  # student uniform
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    gold = torch.tensor([1, NO_GOLD])
    loss, parts = distill_loss(s, t, gold, kind="kl", temperature=2.0, alpha=0.25)
    # row 0: 0.25*0.1211994 + 0.75*ln2 ; row 1 (no gold): 0.25*0.1211994 ; mean of the two
    expect = (0.25 * 0.1211994 * 2 + 0.75 * math.log(2)) / 2
    assert loss.item() == pytest.approx(expect, abs=1e-6)
    assert parts["gold_rows"] == 1 and parts["ce"] == pytest.approx(math.log(2), abs=1e-6)
    # alpha=0: pure gold CE on labelled rows, unlabelled rows add 0
    loss0, _ = distill_loss(s, t, gold, kind="kl", alpha=0.0)
    assert loss0.item() == pytest.approx(math.log(2) / 2, abs=1e-6)


def test_mse_plain_and_centred():
    s, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
    assert kd_mse(s, t).item() == pytest.approx((1 + 4) / 2)  # (1-0)^2, (2-4)^2
    # centred: s -> [-0.5, 0.5], t -> [-2, 2]: (1.5^2 + 1.5^2) / 2 = 2.25
    assert kd_mse(s, t, centred=True).item() == pytest.approx(2.25)
    loss, _ = distill_loss(s, t, torch.tensor([NO_GOLD]), kind="mse", alpha=0.5)
    assert loss.item() == pytest.approx(0.5 * 2.5)


def test_topk_residual_spread_uniformly():
    # C=4, top-2 = class 2 (p=.5), class 0 (p=.3); residual .2 over classes 1 and 3 -> .1 each
    dense = dense_from_topk(np.array([[2, 0]]), np.log(np.array([[0.5, 0.3]])), np.array([0.2]), 4)
    assert np.exp(dense) == pytest.approx(np.array([[0.3, 0.1, 0.5, 0.1]]), abs=1e-6)
    # KL(p || uniform) at T=1 = sum p ln(4p) = 0.2180119
    got = kd_kl(torch.zeros(1, 4), torch.from_numpy(dense), temperature=1.0)
    assert got.item() == pytest.approx(0.2180119, abs=1e-6)
    # log-probs act as logits: tempered softmax of the rebuilt row equals that of the true logits when
    # the residual really is uniform
    true_logits = torch.tensor([[2.0, 0.5, 3.0, 0.5]])
    lp = torch.log_softmax(true_logits, -1)
    idx = torch.tensor([[2, 0]])
    rebuilt = dense_from_topk(idx.numpy(), lp.gather(1, idx).numpy(), (1 - lp.gather(1, idx).exp().sum(-1)).numpy(), 4)
    assert torch.softmax(torch.from_numpy(rebuilt) / 3, -1) == pytest.approx(torch.softmax(true_logits / 3, -1), abs=1e-5)


def test_topk_zero_residual_stays_finite():
    dense = dense_from_topk(np.array([[0, 1]]), np.log(np.array([[0.6, 0.4]])), np.array([0.0]), 3)
    assert np.isfinite(dense).all()
    assert np.exp(dense).sum() == pytest.approx(1.0, abs=1e-6)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown loss kind"):
        distill_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), kind="cosine")
