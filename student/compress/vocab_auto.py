"""How much vocabulary to trim, and what the trim cost: `vocab_trim.min_count: auto` and the step's report.

A fixed ``min_count`` does not carry over between tasks: 6 was harmless on 9.5k AG News rows (-0.5
points) but cut a 3.2k-row tweet transfer set from 30,522 to 1,574 tokens and cost 5.3 points, because
every rare hashtag and name then splits into other pieces than the student was trained on. So ``auto``

1. caps the cut-off by the transfer set's size: ``n`` needs at least ``n * auto_rows_per_count`` rows
   (a 3.2k-row set keeps every token it uses: min_count 1, exact on the transfer texts);
2. with task.dev, tries the cut-offs 1, 2, 3, 4, 6, 8, 12, 16 up to that cap on the dev set with the
   trimmed student itself and keeps the largest whose dev accuracy is within ``auto_tolerance`` points
   of the untrimmed student's (a trim never changes the logits of a text whose tokens it kept, so a
   trial is just the trim on a copy plus one dev pass); when even 1 costs more, it does not trim
   (measured: 4k tweets as the transfer set, 20 classes, min_count 1 re-split 53% of dev texts, -1.0 point);
3. without task.dev, takes 1: nothing measures what more would cost.

Whatever the setting, the step reports kept tokens, the share of transfer tokens kept, the share of dev
tokens that become [UNK] and of dev texts that tokenise differently, and dev accuracy before/after.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections import Counter

import numpy as np

log = logging.getLogger(__name__)

CANDIDATES = (1, 2, 3, 4, 6, 8, 12, 16)


def size_cap(transfer_rows: int, rows_per_count: int) -> int:
    """The largest cut-off ``auto`` may use for this many transfer rows (floor 1)."""
    return max(1, transfer_rows // rows_per_count)


def token_coverage(counts: Counter, min_count: int) -> float:
    """Share of the transfer set's token occurrences whose token a cut-off of ``min_count`` keeps."""
    total = sum(counts.values())
    return sum(c for c in counts.values() if c >= min_count) / total if total else 1.0


def changed_share(before, after, texts: list[str]) -> float:
    """Share of ``texts`` that the trimmed tokenizer splits into other pieces than the original one."""
    if not texts:
        return 0.0
    from zuoxiao.student.compress.vocab import plain_backend

    a = plain_backend(before).encode_batch(texts, add_special_tokens=False)
    b = plain_backend(after).encode_batch(texts, add_special_tokens=False)
    return sum(x.tokens != y.tokens for x, y in zip(a, b, strict=True)) / len(texts)


def accuracy(model, tokenizer, dev, max_length: int, batch_size: int) -> float:
    from zuoxiao.core.evaluate import predict_logits

    texts, gold = dev
    return float((predict_logits(model, tokenizer, texts, max_length, batch_size).argmax(-1) == gold).mean())


def sample_dev(texts: list[str], gold, rows: int | None, seed: int) -> tuple[list[str], np.ndarray]:
    """A seeded sample of ``rows`` dev rows (all when fewer), in file order: a file sorted by class still
    gives every class its share."""
    gold = np.asarray(gold)
    if rows is None or len(texts) <= rows:
        return list(texts), gold
    idx = np.sort(np.random.default_rng(seed).choice(len(texts), rows, replace=False))
    return [texts[i] for i in idx], gold[idx]


def choose_min_count(model, tokenizer, transfer: list[str], dev, *, cap: int, tolerance: float, keep_chars: bool,
                     max_length: int, batch_size: int, base_accuracy: float) -> tuple[int, list[dict]]:
    """The largest candidate cut-off <= cap whose dev accuracy is within ``tolerance`` points of
    ``base_accuracy`` (the untrimmed model's); 0 (= do not trim) when even 1 costs more: a small transfer set
    can miss so many of dev's words that keeping only its tokens re-splits half the dev texts.
    Returns (min_count, one record per trial)."""
    from zuoxiao.student.compress.vocab import trim_vocab, unk_rate

    chosen, trials = 0, []
    with tempfile.TemporaryDirectory(prefix="zx-vocab-auto-") as tmp:
        for c in (c for c in CANDIDATES if c <= cap):
            trial, tok, info = trim_vocab(copy.deepcopy(model), tokenizer, transfer, f"{tmp}/{c}", min_count=c,
                                          keep_chars=keep_chars)
            acc = accuracy(trial, tok, dev, max_length, batch_size)
            cost = round(100 * (base_accuracy - acc), 2)
            trials.append({"min_count": c, "vocab": info["vocab_after"], "dev_accuracy": round(acc, 5),
                           "cost_points": cost, "dev_unk_rate": round(unk_rate(tok, dev[0]), 5)})
            log.info("vocab_trim auto: min_count %d keeps %d tokens, dev accuracy %.4f (%+.2f points)", c,
                     info["vocab_after"], acc, -cost)
            if cost > tolerance:  # larger cut-offs only remove more: stop at the first one that costs too much
                break
            chosen = c
    return chosen, trials
