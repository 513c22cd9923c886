"""Distillation losses and the reconstruction of teacher distributions from top-k shards.

Shapes: B rows, C classes, k stored classes (top-k shards only).

The per-row loss is

    loss_i = alpha * KD_i + (1 - alpha) * CE_i * [row i has a gold label]

averaged over the B rows of the batch, so rows whose gold label is null contribute only their
distillation term. KD_i is either

    kl:  T^2 * KL( softmax(t_i / T) || softmax(s_i / T) )      (Hinton et al. 2015; T^2 keeps the
         gradient scale independent of T)
    mse: mean_c (s_ic - t_ic)^2                                 (Tang et al. 2019, on logits)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Gold index of rows without a gold label (same convention as torch's cross_entropy ignore_index).
NO_GOLD = -100
def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-row T^2 * KL(p_T || q_T): [B, C], [B, C] -> [B]."""
    t = float(temperature)
    log_q = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1) * (t * t)


def kd_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor, centred: bool = False) -> torch.Tensor:
    """Per-row mean squared error on logits: [B, C], [B, C] -> [B].

    ``centred`` subtracts each row's mean from both sides first. Top-k shards store log-probabilities,
    which equal the teacher's logits only up to a per-row constant, so MSE on them is only meaningful
    after centring.
    """
    s, t = student_logits.float(), teacher_logits.float()
    if centred:
        s = s - s.mean(-1, keepdim=True)
        t = t - t.mean(-1, keepdim=True)
    return ((s - t) ** 2).mean(-1)


def distill_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    gold: torch.Tensor,
    *,
    kind: str = "kl",
    temperature: float = 2.0,
    alpha: float = 0.5,
    centred: bool = False,
) -> tuple[torch.Tensor, dict]:
    """The training loss of one batch and its parts (floats, for logging).

    student_logits [B, C], teacher_logits [B, C] (raw logits, or log-probs from top-k shards),
    gold [B] long with NO_GOLD where the row has no gold label.
    """
    if kind == "kl":
        kd = kd_kl(student_logits, teacher_logits, temperature)
    elif kind == "mse":
        kd = kd_mse(student_logits, teacher_logits, centred=centred)
    else:
        raise ValueError(f"unknown loss kind {kind!r}; use 'kl' or 'mse'")
    has_gold = gold != NO_GOLD
    ce = F.cross_entropy(student_logits.float(), gold.clamp(min=0), reduction="none") * has_gold
    per_row = alpha * kd + (1.0 - alpha) * ce if alpha < 1 else kd
    loss = per_row.mean()
    n_gold = int(has_gold.sum())
    parts = {
        "kd": float(kd.detach().mean()),
        "ce": float(ce.detach().sum() / n_gold) if n_gold else math.nan,
        "gold_rows": n_gold,
    }
    return loss, parts


def repr_loss(student_repr: torch.Tensor, teacher_repr: torch.Tensor, has_repr: torch.Tensor,
              kind: str = "cosine") -> torch.Tensor:
    """Representation distillation term, averaged over the rows that have a teacher representation.

    student_repr [B, D] (the student's [CLS] state already projected to the teacher's width D),
    teacher_repr [B, D], has_repr [B] bool. cosine: 1 - cos(s_i, t_i); mse: mean_d (s_id - t_id)^2.
    0 when no row of the batch has one.
    """
    s, t = student_repr.float(), teacher_repr.float()
    if kind == "cosine":
        per_row = 1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8)
    elif kind == "mse":
        per_row = ((s - t) ** 2).mean(-1)
    else:
        raise ValueError(f"unknown representation loss {kind!r}; use 'cosine' or 'mse'")
    mask = has_repr.to(per_row.dtype)
    return (per_row * mask).sum() / mask.sum().clamp(min=1.0)


def resolve_kind(kind: str, num_classes: int) -> str:
    """`auto` -> the distillation loss measured best for this many classes (docs/train.md, issue 10):
    logit MSE up to AUTO_MSE_MAX_CLASSES classes, KL above."""
    if kind != "auto":
        return kind
    return "mse" if num_classes <= AUTO_MSE_MAX_CLASSES else "kl"


#: loss.kind=auto uses MSE up to this many classes and KL above (the measurement is in docs/train.md).
AUTO_MSE_MAX_CLASSES = 4
