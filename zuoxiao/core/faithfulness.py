"""Faithfulness of word attributions (ERASER, DeYoung et al. 2020): do the top words matter to the model?

    comprehensiveness = p(y | x) - p(y | x without the rationale)    high: the model needed those words
    sufficiency       = p(y | x) - p(y | the rationale alone)         low: those words alone keep the label

y is the label each explanation is for, the rationale the top ``fraction`` (20%, at least one) of a text's
explained words by attribution. The baseline removes as many words picked uniformly at random (seeded):
attributions that matter give comprehensiveness well above it. Words are cut out of the text itself
(ERASER's deletion; the pieces left are joined with one space), not masked, so the same code scores any model
given as a ``texts -> probabilities [N, C]`` callable: a bundle (`bundle_probs`), the PyTorch teacher or the
uncompressed student. Explanations are in ``Bundle.explain``'s format (zuoxiao.ship.runtime): {"label",
"words": [{"start", "end", "attribution"}]}; texts without words are left out of the means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

ProbsFn = Callable[[list[str]], np.ndarray]


def without_words(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the character spans cut out; what is left is joined with single spaces."""
    pieces, at = [], 0
    for start, end in sorted(spans):
        pieces.append(text[at:start])
        at = end
    pieces.append(text[at:])
    return " ".join(p.strip() for p in pieces if p.strip())


def only_words(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """The words at ``spans``, in text order, joined with single spaces."""
    return " ".join(text[s:e] for s, e in sorted(spans))


def top_k(n_words: int, fraction: float) -> int:
    """How many words the rationale has: ceil(fraction * n), at least 1."""
    return max(1, math.ceil(fraction * n_words - 1e-9))


def faithfulness(probs_fn: ProbsFn, texts: Sequence[str], explanations: Sequence[dict], label_names: Sequence[str],
                 fraction: float = 0.2, seed: int = 0) -> dict:
    """Mean comprehensiveness / sufficiency of the top-``fraction`` words and of as many random words.

    One call of ``probs_fn`` on all variants (original, without top words, top words alone, without random
    words, random words alone: 5 texts per explained text). Returns {"comprehensiveness",
    "comprehensiveness_random", "sufficiency", "sufficiency_random", "texts", "fraction"}.
    """
    rng = np.random.default_rng(seed)
    variants, labels = [], []
    for text, exp in zip(texts, explanations, strict=True):
        words = exp["words"]
        if not words:
            continue
        k = top_k(len(words), fraction)
        order = sorted(range(len(words)), key=lambda i: -words[i]["attribution"])  # stable: ties keep text order
        top = [(words[i]["start"], words[i]["end"]) for i in order[:k]]
        rand = [(words[i]["start"], words[i]["end"]) for i in rng.choice(len(words), size=k, replace=False)]
        variants += [text, without_words(text, top), only_words(text, top), without_words(text, rand),
                     only_words(text, rand)]
        labels.append(list(label_names).index(exp["label"]))
    if not labels:
        return {"comprehensiveness": None, "comprehensiveness_random": None, "sufficiency": None,
                "sufficiency_random": None, "texts": 0, "fraction": fraction}
    probs = np.asarray(probs_fn(variants), np.float64).reshape(len(labels), 5, -1)
    p = probs[np.arange(len(labels)), :, labels]  # [texts, 5]: p(y) of each variant
    return {"comprehensiveness": float(np.mean(p[:, 0] - p[:, 1])),
            "comprehensiveness_random": float(np.mean(p[:, 0] - p[:, 3])),
            "sufficiency": float(np.mean(p[:, 0] - p[:, 2])),
            "sufficiency_random": float(np.mean(p[:, 0] - p[:, 4])),
            "texts": len(labels), "fraction": fraction}


def bundle_probs(bundle, batch_size: int = 32) -> ProbsFn:
    """``texts -> probabilities [N, C]`` (calibrated, label order) of a loaded ``Bundle``."""
    def probs(texts: list[str]) -> np.ndarray:
        z = bundle.logits(list(texts), batch_size).astype(np.float64) / bundle.temperature
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return probs
