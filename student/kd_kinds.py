"""Distillation losses of the task kinds beyond single-label (docs/task_kinds.md), and the word -> sub-token
alignment the token loss needs.

They join student/losses.py when the train stage is wired for the kinds (kept apart until then so that the
two cannot clash while student/losses.py changes); the train loop does not call them yet. Each mirrors
`losses.distill_loss`: per unit (row, or word for token tagging)

    loss_u = alpha * KD_u + (1 - alpha) * GOLD_u * [unit u has gold]

averaged over the units of the batch, and returns (loss, parts) with the parts as floats for logging.

    token        KD = T^2 * KL(softmax(t/T) || softmax(s/T)) per word, at the word's FIRST sub-token; padding,
                 special tokens and later sub-tokens are masked out. GOLD = cross-entropy on the gold tag.
                 Top-k shards: t = the word's log-probabilities rebuilt by softlabels.dense_from_topk.
                 A joint sentence head adds `losses.distill_loss` on its logits (weighted by the caller).
    multi_label  KD = T^2 * mean_c BCE(sigmoid(s_c/T), target sigmoid(t_c/T)): soft targets, one sigmoid
                 per label (its minimum is the teacher's binary entropy, not 0; the gradient equals the
                 binary KL's). GOLD = BCE on the 0/1 gold labels at T = 1.
    regression   KD = (s - t)^2 on the score. GOLD = (s - gold)^2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Label of a position or row without gold (torch's ignore_index; the same as losses.NO_GOLD).
NO_GOLD = -100


# ---------------------------------------------------------------- words -> sub-tokens
def first_subtoken_mask(word_ids: list[list[int | None]]) -> torch.Tensor:
    """[B, S] bool: True at the first sub-token of each word. ``word_ids`` per row as a fast tokenizer's
    `BatchEncoding.word_ids(i)` gives them (None at special tokens and padding)."""
    rows = []
    for ids in word_ids:
        prev, row = None, []
        for w in ids:
            row.append(w is not None and w != prev)
            prev = w
        rows.append(row)
    return torch.tensor(rows, dtype=torch.bool)


def align_word_logits(per_word: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Per-row word values [W_b, T] -> [B, S, T], placed at the True positions of ``mask`` [B, S] (first
    sub-tokens), zeros elsewhere. A row truncated by the tokenizer has fewer first sub-tokens than words:
    the words that fit are kept, in order."""
    b, s = mask.shape
    out = torch.zeros(b, s, per_word[0].shape[-1], dtype=torch.float32)
    for i, words in enumerate(per_word):
        pos = mask[i].nonzero().squeeze(-1)
        n = min(len(pos), len(words))
        out[i, pos[:n]] = words[:n].float()
    return out


def align_word_tags(tags: list[list[int] | None], mask: torch.Tensor) -> torch.Tensor:
    """Gold tag indices per word (None = an unlabelled row) -> [B, S] long, NO_GOLD except at first sub-tokens."""
    out = torch.full(mask.shape, NO_GOLD, dtype=torch.long)
    for i, row in enumerate(tags):
        if row is None:
            continue
        pos = mask[i].nonzero().squeeze(-1)
        n = min(len(pos), len(row))
        out[i, pos[:n]] = torch.tensor(row[:n], dtype=torch.long)
    return out


# ---------------------------------------------------------------- token tagging
def kd_token_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per position T^2 * KL(p_T || q_T): [B, S, T], [B, S, T] -> [B, S] (the caller masks)."""
    t = float(temperature)
    log_q = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1) * (t * t)


def distill_token_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, word_mask: torch.Tensor,
                       gold_tags: torch.Tensor, *, temperature: float = 2.0, alpha: float = 0.5) -> tuple[torch.Tensor, dict]:
    """The token-tagging loss of one batch, averaged over its words (first sub-tokens where ``word_mask``).

    student_logits [B, S, T]; teacher_logits [B, S, T] aligned by `align_word_logits` (any value where the
    mask is False); word_mask [B, S] bool (False at padding, special tokens, later sub-tokens); gold_tags
    [B, S] long, NO_GOLD where a word has no gold (and at every masked position).
    """
    mask = word_mask.bool()
    zero = torch.zeros((), dtype=torch.float32)
    # zero the teacher where masked, then torch.where (not a product): whatever sits at a masked position
    # (inf / NaN included) reaches neither the loss nor its gradient
    teacher = torch.where(mask[..., None], teacher_logits.float(), zero)
    kd = torch.where(mask, kd_token_kl(student_logits, teacher, temperature), zero)
    has_gold = (gold_tags != NO_GOLD) & mask
    ce = torch.where(has_gold, F.cross_entropy(student_logits.float().transpose(1, 2), gold_tags.clamp(min=0),
                                               reduction="none"), zero)
    per_word = alpha * kd + (1.0 - alpha) * ce if alpha < 1 else kd
    words = int(mask.sum())
    loss = per_word.sum() / max(words, 1)
    n_gold = int(has_gold.sum())
    return loss, {"kd": float(kd.detach().sum() / max(words, 1)), "ce": float(ce.detach().sum() / n_gold) if n_gold
                  else math.nan, "words": words, "gold_words": n_gold}


# ---------------------------------------------------------------- multi-label
def kd_bce(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per row T^2 * mean over labels of BCE(sigmoid(s/T), target sigmoid(t/T)): [B, C], [B, C] -> [B]."""
    t = float(temperature)
    target = torch.sigmoid(teacher_logits.float() / t)
    bce = F.binary_cross_entropy_with_logits(student_logits.float() / t, target, reduction="none")
    return bce.mean(-1) * (t * t)


def distill_multilabel_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, gold: torch.Tensor, *,
                            temperature: float = 2.0, alpha: float = 0.5) -> tuple[torch.Tensor, dict]:
    """student_logits, teacher_logits [B, C] (per-label logits); gold [B, C] float 0/1, a row of NO_GOLD where
    the row has no gold labels."""
    kd = kd_bce(student_logits, teacher_logits, temperature)
    has_gold = (gold != NO_GOLD).all(-1)
    target = torch.where(has_gold[:, None], gold.float(), torch.zeros_like(gold, dtype=torch.float32))
    bce = F.binary_cross_entropy_with_logits(student_logits.float(), target, reduction="none").mean(-1) * has_gold
    per_row = alpha * kd + (1.0 - alpha) * bce if alpha < 1 else kd
    n_gold = int(has_gold.sum())
    return per_row.mean(), {"kd": float(kd.detach().mean()), "bce": float(bce.detach().sum() / n_gold) if n_gold
                            else math.nan, "gold_rows": n_gold}


# ---------------------------------------------------------------- regression
def kd_score_mse(student_scores: torch.Tensor, teacher_scores: torch.Tensor) -> torch.Tensor:
    """Per row (s - t)^2: [B] (or [B, 1], a num_labels=1 head), [B] -> [B]."""
    return (student_scores.float().reshape(-1) - teacher_scores.float().reshape(-1)) ** 2


def distill_score_loss(student_scores: torch.Tensor, teacher_scores: torch.Tensor, gold: torch.Tensor, *,
                       alpha: float = 0.5) -> tuple[torch.Tensor, dict]:
    """student_scores [B] or [B, 1]; teacher_scores [B]; gold [B] float, NaN where the row has no gold score."""
    kd = kd_score_mse(student_scores, teacher_scores)
    gold = gold.float().reshape(-1)
    has_gold = ~torch.isnan(gold)
    mse = (student_scores.float().reshape(-1) - torch.nan_to_num(gold)) ** 2 * has_gold
    per_row = alpha * kd + (1.0 - alpha) * mse if alpha < 1 else kd
    n_gold = int(has_gold.sum())
    return per_row.mean(), {"kd": float(kd.detach().mean()), "mse": float(mse.detach().sum() / n_gold) if n_gold
                            else math.nan, "gold_rows": n_gold}
