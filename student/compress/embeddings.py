"""Embedding factorisation: the word-embedding table stops dominating a small student's bytes.

After vocab_trim and pruning, a 2-layer MiniLM student still spends most of its parameters on
``word_embeddings`` [V, d]. This step replaces it by ``LowRankEmbedding`` (lowrank.py):

    E [V, d]  ~  mu [1, d]  +  A [V, r] @ B [r, d]

so the table costs V*r + r*d instead of V*d. Two choices make a small r work better than the plain
SVD of the ``low_rank`` step:

* mean-centring: the rows of E share a large common component; ``mu`` is folded into every row of the
  token-type (or, without token types, position) embeddings, which BERT adds to every token before the
  LayerNorm, so it is exact and costs no parameters;
* frequency weighting: mu is the weighted mean and B the top-r right singular vectors of
  diag(sqrt(w)) (E - mu), w = token count in the transfer set + smoothing, so frequent tokens are
  reconstructed best (weighted PCA: the best affine rank-r fit in the weighted norm). Given B with
  orthonormal rows, A = (E - mu) B^T is the least-squares row fit for any row weights.

The result reloads through modelio (structure.json records the rank under ``low_rank``) and exports to
ONNX as Gather + MatMul, which int8 quantisation then shrinks further.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from zuoxiao.core.errors import InputError
from zuoxiao.student.compress.lowrank import LowRankEmbedding, _set_module, rank_for_energy

NAME = "embeddings.word_embeddings"


def _embeddings(model: nn.Module) -> tuple[str, nn.Module]:
    """(module path, embeddings module) holding word_embeddings; BERT-style models only."""
    for name, mod in model.named_modules():
        if isinstance(getattr(mod, "word_embeddings", None), (nn.Embedding, LowRankEmbedding)):
            return name, mod
    raise InputError("factorize_embeddings needs a BERT-style model with embeddings.word_embeddings; "
                     "remove the step for this student")


def token_counts(tokenizer, texts: list[str], vocab_size: int, max_length: int = 512) -> np.ndarray:
    """Occurrences of every token id [V] in ``texts`` (special tokens included: they occur in every row)."""
    counts = np.zeros(vocab_size, np.float64)
    for s in range(0, len(texts), 1024):
        enc = tokenizer(texts[s : s + 1024], truncation=True, max_length=max_length)["input_ids"]
        ids = np.concatenate([np.asarray(e, np.int64) for e in enc]) if enc else np.zeros(0, np.int64)
        counts += np.bincount(ids[ids < vocab_size], minlength=vocab_size)
    return counts


def factorize_weighted(weight: torch.Tensor, counts: np.ndarray | None, rank: int | None, energy: float,
                       smoothing: float = 1.0, center: bool = True):
    """(A [V, r], B [r, d], mu [d], r, kept energy): weight [V, d] ~ mu + A @ B."""
    w = weight.detach().double()
    row_w = torch.ones(w.shape[0], dtype=torch.float64)
    if counts is not None:
        row_w = torch.as_tensor(counts, dtype=torch.float64) + smoothing
        row_w = row_w / row_w.mean()  # scale-free: only the relative weights matter
    # weighted mean + weighted SVD = the best affine rank-r fit in the weighted norm (weighted PCA)
    mu = (w * row_w[:, None]).sum(0) / row_w.sum() if center else torch.zeros(w.shape[1], dtype=torch.float64)
    x = w - mu
    _, s, vh = torch.linalg.svd(x * row_w.sqrt()[:, None], full_matrices=False)  # vh [k, d]
    r = min(rank, s.numel()) if rank is not None else rank_for_energy(s, energy)
    b = vh[:r]  # [r, d], orthonormal rows
    a = x @ b.T  # [V, r]
    kept = float((s[:r] ** 2).sum() / (s**2).sum()) if s.numel() else 1.0
    return a, b, mu, r, kept


def factorize_embeddings(model: nn.Module, tokenizer=None, texts: list[str] | None = None, rank: int | None = 64,
                         energy: float = 0.95, smoothing: float = 1.0, max_length: int = 512) -> dict:
    """Replace word_embeddings in place; returns what was done (ranks, params before/after, error)."""
    path, emb = _embeddings(model)
    table = emb.word_embeddings
    if isinstance(table, LowRankEmbedding):
        raise InputError("word_embeddings is already factorised (low_rank or factorize_embeddings ran "
                         "before); keep one of the two steps")
    vocab, dim = table.weight.shape
    if rank is not None and rank >= dim:
        raise InputError(f"factorize_embeddings.rank={rank} is not below the embedding width {dim}: "
                         f"nothing to save; use a rank < {dim} (e.g. {max(8, dim // 6)})")
    counts = token_counts(tokenizer, texts, vocab, max_length) if texts else None
    # the mean goes where every token adds it: token-type rows (all of them), else position rows
    fold = getattr(emb, "token_type_embeddings", None) or getattr(emb, "position_embeddings", None)
    center = isinstance(fold, nn.Embedding)
    a, b, mu, r, kept = factorize_weighted(table.weight, counts, rank, energy, smoothing, center)
    if r * (vocab + dim) >= vocab * dim:
        raise InputError(f"factorize_embeddings rank {r} would not shrink a [{vocab}, {dim}] table; "
                         "give a smaller rank or energy")
    new = LowRankEmbedding(vocab, dim, r, table.padding_idx)
    dtype = table.weight.dtype
    with torch.no_grad():
        new.first.weight.copy_(a.to(dtype))
        new.second.weight.copy_(b.T.to(dtype))  # nn.Linear(r, d).weight is [d, r]
        if center:
            fold.weight.add_(mu.to(dtype))
    approx = (a @ b + mu).to(dtype)
    err = table.weight.detach() - approx
    wts = torch.as_tensor(counts if counts is not None else np.ones(vocab), dtype=err.dtype)
    rel = float((err.pow(2).sum(1) * wts).sum() / (table.weight.detach().pow(2).sum(1) * wts).sum()) ** 0.5
    before = vocab * dim
    _set_module(model, f"{path}.word_embeddings" if path else "word_embeddings", new)
    return {"rank": r, "vocab": vocab, "dim": dim, "params_before": before, "params_after": r * (vocab + dim),
            "params_saved": before - r * (vocab + dim), "weighted_energy_kept": round(kept, 5),
            "weighted_rel_error": round(rel, 5), "centered_into": "token_type_embeddings"
            if center and fold is getattr(emb, "token_type_embeddings", None) else
            ("position_embeddings" if center else None), "rows_counted": len(texts or [])}
