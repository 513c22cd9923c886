"""The KD losses of the task kinds (student/kd_kinds.py, issue 28), checked against numbers worked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from zuoxiao.student.kd_kinds import (
    NO_GOLD,
    align_word_logits,
    align_word_tags,
    distill_multilabel_loss,
    distill_score_loss,
    distill_token_loss,
    first_subtoken_mask,
    kd_bce,
)
from zuoxiao.student.losses import NO_GOLD as LOSSES_NO_GOLD

LN3 = math.log(3.0)


def test_first_subtoken_mask_and_alignment_with_truncation():
    # [CLS] play daft ##punk [SEP] [PAD]  /  [CLS] hi [SEP] (its second word was truncated away)
    mask = first_subtoken_mask([[None, 0, 1, 1, None, None], [None, 0, None, None, None, None]])
    assert mask.tolist() == [[False, True, True, False, False, False], [False, True, False, False, False, False]]
    tags = align_word_tags([[0, 1, 2], [3, 4]], mask)
    assert tags.tolist() == [[NO_GOLD, 0, 1, NO_GOLD, NO_GOLD, NO_GOLD], [NO_GOLD, 3] + [NO_GOLD] * 4]
    assert align_word_tags([None], mask[:1]).tolist() == [[NO_GOLD] * 6]
    logits = align_word_logits([torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[5.0, 6.0], [7.0, 8.0]])], mask)
    assert logits[0, 1].tolist() == [1.0, 2.0] and logits[0, 2].tolist() == [3.0, 4.0] and logits[1, 1].tolist() == [5.0, 6.0]
    assert logits[0, 3].abs().sum() == 0 and logits[1, 2:].abs().sum() == 0
    assert NO_GOLD == LOSSES_NO_GOLD


def _token_batch():
    """One row, S = 3: a word at position 0, its second sub-token at 1, padding at 2 (T = 2 tags)."""
    student = torch.tensor([[[2 * LN3, 0.0], [50.0, -50.0], [-7.0, 9.0]]])
    teacher = torch.tensor([[[0.0, 0.0], [-50.0, 50.0], [float("inf"), float("nan")]]])  # masked: never read
    mask = torch.tensor([[True, False, False]])
    return student, teacher, mask


def test_token_kl_masks_padding_and_later_subtokens():
    student, teacher, mask = _token_batch()
    no_gold = torch.full((1, 3), NO_GOLD)
    loss, parts = distill_token_loss(student, teacher, mask, no_gold, temperature=2.0, alpha=1.0)
    # at T = 2: student/T = (ln 3, 0) -> q = (3/4, 1/4); teacher p = (1/2, 1/2)
    # KL(p || q) = 1/2 ln(1/2 / 3/4) + 1/2 ln(1/2 / 1/4) = 1/2 ln(4/3); times T^2 = 4 -> 2 ln(4/3)
    assert loss.item() == pytest.approx(2 * math.log(4 / 3), rel=1e-6)
    assert parts["words"] == 1 and parts["gold_words"] == 0 and math.isnan(parts["ce"])
    student.requires_grad_(True)
    distill_token_loss(student, teacher, mask, no_gold, temperature=2.0, alpha=1.0)[0].backward()
    assert torch.isfinite(student.grad).all() and student.grad[0, 1:].abs().sum() == 0  # masked: no gradient


def test_token_loss_mixes_gold_per_word_and_averages_over_words():
    student, teacher, mask = _token_batch()
    gold = torch.tensor([[0, NO_GOLD, NO_GOLD]])
    loss, parts = distill_token_loss(student, teacher, mask, gold, temperature=2.0, alpha=0.5)
    # CE at T = 1: softmax(2 ln 3, 0) = (9/10, 1/10) -> -ln 0.9
    assert parts["ce"] == pytest.approx(-math.log(0.9), rel=1e-6)
    assert loss.item() == pytest.approx(0.5 * 2 * math.log(4 / 3) - 0.5 * math.log(0.9), rel=1e-6)
    # a second row with two identical words and no gold: the mean is over the 3 words of the batch
    two = torch.tensor([[[2 * LN3, 0.0], [2 * LN3, 0.0], [0.0, 0.0]]])
    s2, t2 = torch.cat([student, two]), torch.cat([teacher, torch.zeros(1, 3, 2)])
    m2 = torch.cat([mask, torch.tensor([[True, True, False]])])
    g2 = torch.cat([gold, torch.full((1, 3), NO_GOLD)])
    loss2, parts2 = distill_token_loss(s2, t2, m2, g2, temperature=2.0, alpha=0.5)
    kd = 2 * math.log(4 / 3)
    assert loss2.item() == pytest.approx((3 * 0.5 * kd - 0.5 * math.log(0.9)) / 3, rel=1e-6)
    assert parts2["words"] == 3 and parts2["gold_words"] == 1


def test_bce_with_soft_targets_at_a_temperature():
    # one label: teacher logit 0 -> target 1/2; student ln 3 at T = 1 -> 3/4
    # BCE = -(1/2 ln 3/4 + 1/2 ln 1/4) = -1/2 ln(3/16)
    s, t = torch.tensor([[LN3]]), torch.tensor([[0.0]])
    assert kd_bce(s, t, 1.0).item() == pytest.approx(-0.5 * math.log(3 / 16), rel=1e-6)
    # T = 2 on logits twice as large gives the same sigmoids, times T^2 = 4
    assert kd_bce(2 * s, 2 * t, 2.0).item() == pytest.approx(-2 * math.log(3 / 16), rel=1e-6)
    # two labels: the row's value is their mean; label 2 matches the teacher exactly (BCE = its entropy ln 2)
    two = kd_bce(torch.tensor([[LN3, 0.0]]), torch.tensor([[0.0, 0.0]]), 1.0).item()
    assert two == pytest.approx((-0.5 * math.log(3 / 16) + math.log(2)) / 2, rel=1e-6)


def test_multilabel_loss_mixes_gold_only_on_labelled_rows():
    s = torch.tensor([[LN3], [LN3]])
    t = torch.tensor([[0.0], [0.0]])
    gold = torch.tensor([[1.0], [NO_GOLD]])
    loss, parts = distill_multilabel_loss(s, t, gold, temperature=1.0, alpha=0.5)
    kd = -0.5 * math.log(3 / 16)
    # row 1: gold 1 -> BCE -ln 3/4; row 2 has no gold: KD only
    assert parts["bce"] == pytest.approx(-math.log(0.75), rel=1e-6) and parts["gold_rows"] == 1
    assert loss.item() == pytest.approx(((0.5 * kd - 0.5 * math.log(0.75)) + 0.5 * kd) / 2, rel=1e-6)


def test_score_mse_mixes_gold_where_present():
    s, t = torch.tensor([[1.0], [3.0]]), torch.tensor([1.5, 1.0])
    gold = torch.tensor([2.0, float("nan")])
    loss, parts = distill_score_loss(s, t, gold, alpha=0.5)
    # KD (0.25, 4); gold (1, none): rows 0.5 * 0.25 + 0.5 * 1 = 0.625 and 0.5 * 4 = 2 -> mean 1.3125
    assert loss.item() == pytest.approx(1.3125) and parts["kd"] == pytest.approx(2.125) and parts["mse"] == 1.0
    assert distill_score_loss(s, t, gold, alpha=1.0)[0].item() == pytest.approx(2.125)
