"""ERASER comprehensiveness / sufficiency (zuoxiao.core.faithfulness) on a model simple enough to do by hand:
p(pos) = 0.5 + 0.1 * (#"good") - 0.1 * (#"bad"), clipped to [0, 1]."""

import numpy as np
import pytest

from zuoxiao.core.faithfulness import faithfulness, only_words, top_k, without_words

LABELS = ["neg", "pos"]


def counting_model(texts: list[str]) -> np.ndarray:
    pos = np.array([min(1.0, max(0.0, 0.5 + 0.1 * t.split().count("good") - 0.1 * t.split().count("bad")))
                    for t in texts])
    return np.stack([1 - pos, pos], 1)


def explanation(text: str, attributions: list[float], label: str) -> dict:
    words, at = [], 0
    for w, a in zip(text.split(" "), attributions, strict=True):
        words.append({"word": w, "start": at, "end": at + len(w), "attribution": a})
        at += len(w) + 1
    return {"label": label, "words": words}


def test_cutting_and_keeping_words():
    text = "good film , bad plot"
    assert without_words(text, [(0, 4), (10, 11)]) == "film bad plot"
    assert only_words(text, [(12, 15), (0, 4)]) == "good bad"  # text order, whatever the span order
    assert [top_k(n, 0.2) for n in (1, 4, 5, 6, 10, 11)] == [1, 1, 1, 2, 2, 3]


def test_top_words_by_hand():
    # "good film good plot bad": p(pos) = 0.5 + 0.2 - 0.1 = 0.6; 5 words -> the top 1 word is the first "good".
    # without it: "film good plot bad" -> 0.5 (comprehensiveness 0.1); alone: "good" -> 0.6 (sufficiency 0.0).
    # "bad bad good", explained for neg: p(neg) = 1 - 0.4 = 0.6; top word "bad" (attribution 0.3, ties go to
    # text order): without it "bad good" -> p(neg) 0.5 (0.1); alone "bad" -> p(neg) 0.6 (0.0).
    texts = ["good film good plot bad", "bad bad good"]
    exps = [explanation(texts[0], [0.3, 0.0, 0.2, 0.0, -0.1], "pos"), explanation(texts[1], [0.3, 0.3, -0.2], "neg")]
    out = faithfulness(counting_model, texts, exps, LABELS)
    assert out["comprehensiveness"] == pytest.approx(0.1) and out["sufficiency"] == pytest.approx(0.0)
    assert out["texts"] == 2 and out["fraction"] == 0.2


def test_random_baseline_by_hand():
    # Every word is "good", so any random pick of ceil(0.2 * 6) = 2 words gives the same numbers:
    # p(pos | 6 x good) = 1.0 (clipped), without 2: 4 x good -> 0.9 (0.1); 2 x good alone -> 0.7 (0.3).
    text = "good good good good good good"
    out = faithfulness(counting_model, [text, ""], [explanation(text, [0.1] * 6, "pos"), {"label": "pos", "words": []}],
                       LABELS, seed=3)
    assert out["comprehensiveness_random"] == pytest.approx(0.1) and out["sufficiency_random"] == pytest.approx(0.3)
    assert out["comprehensiveness"] == pytest.approx(0.1) and out["texts"] == 1  # the empty text is left out


def test_no_words_at_all():
    out = faithfulness(counting_model, [""], [{"label": "pos", "words": []}], LABELS)
    assert out["texts"] == 0 and out["comprehensiveness"] is None
