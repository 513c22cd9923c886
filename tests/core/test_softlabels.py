import numpy as np
import pytest
import torch

from zuoxiao.core.softlabels import log_softmax, probs_from_row, soft_label_columns, storage_kind


def _logits(b=5, c=6, seed=0):
    return np.random.default_rng(seed).normal(scale=3.0, size=(b, c)).astype(np.float32)


def test_full_storage_keeps_raw_logits_and_matches_torch():
    x = _logits()
    rows = soft_label_columns(x, max_full_classes=8, top_k=3)
    p = torch.softmax(torch.from_numpy(x).double(), -1).numpy()
    for i, r in enumerate(rows):
        assert r["logits"] == [float(v) for v in x[i]]  # float32 values, unchanged
        assert r["topk_indices"] is None and r["residual_mass"] == 0.0
        assert r["teacher_argmax"] == int(p[i].argmax())
        assert r["confidence"] == pytest.approx(p[i].max(), rel=1e-6)
        assert r["entropy"] == pytest.approx(float(-(p[i] * np.log(p[i])).sum()), rel=1e-5)


def test_topk_with_k_equal_classes_is_the_full_softmax():
    x = _logits(c=6)
    rows = soft_label_columns(x, max_full_classes=5, top_k=6)  # 6 classes > 5: top-k storage
    p = torch.softmax(torch.from_numpy(x).double(), -1).numpy()
    for i, r in enumerate(rows):
        assert r["logits"] is None and len(r["topk_indices"]) == 6
        assert r["residual_mass"] == pytest.approx(0.0, abs=1e-6)
        np.testing.assert_allclose(probs_from_row(r, 6), p[i], rtol=1e-6, atol=1e-7)
        # sorted by probability, most likely first
        assert r["topk_indices"][0] == int(p[i].argmax())
        assert list(np.diff(r["topk_logprobs"]) <= 1e-7) == [True] * 5


def test_topk_residual_mass_is_the_dropped_tail():
    x = _logits(c=40, seed=1)
    rows = soft_label_columns(x, max_full_classes=32, top_k=5)
    p = torch.softmax(torch.from_numpy(x).double(), -1).numpy()
    for i, r in enumerate(rows):
        top = np.sort(p[i])[::-1][:5]
        np.testing.assert_allclose(np.exp(r["topk_logprobs"]), top, rtol=1e-5)
        assert r["residual_mass"] == pytest.approx(1 - top.sum(), abs=1e-6)
        assert probs_from_row(r, 40).sum() == pytest.approx(1.0, abs=1e-5)


def test_storage_kind_and_stability():
    assert storage_kind(32, 32) == "full" and storage_kind(33, 32) == "topk"
    big = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    lp = log_softmax(big)
    assert np.isfinite(lp[0, :2]).all() and lp[0, 0] == pytest.approx(0.0)
    r = soft_label_columns(big, 8, 2)[0]
    assert r["confidence"] == pytest.approx(1.0) and r["entropy"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="batch, classes"):
        soft_label_columns(np.zeros(3, dtype=np.float32), 8, 2)
