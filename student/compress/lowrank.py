"""Low-rank factorisation of nn.Linear layers by truncated SVD.

    W [out, in] ~ (U_r * S_r) [out, r] @ V_r^T [r, in]

so Linear(in, out) becomes Linear(in, r, bias=False) -> Linear(r, out): r * (in + out) weights instead
of in * out. An nn.Embedding [V, d] (e.g. word_embeddings, most of a small student) becomes
Embedding(V, r) -> Linear(r, d, bias=False), ALBERT-style: r * (V + d) instead of V * d. A layer is only replaced when that is smaller; the rank is fixed or the smallest one keeping
``energy`` of sum(S^2). At full rank the product reproduces W to float precision.
"""

from __future__ import annotations

import re

import torch
from torch import nn


class LowRankLinear(nn.Module):
    """y = second(first(x)); first: [in -> r] no bias, second: [r -> out] with the original bias."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [..., in] -> [..., out]
        return self.second(self.first(x))


class LowRankEmbedding(nn.Module):
    """ids [...] -> first(ids) [..., r] -> second [..., d]; a drop-in for nn.Embedding in BERT embeddings."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int, padding_idx: int | None = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.rank = num_embeddings, embedding_dim, rank
        self.padding_idx = padding_idx
        self.first = nn.Embedding(num_embeddings, rank, padding_idx=padding_idx)
        self.second = nn.Linear(rank, embedding_dim, bias=False)

    @property
    def weight(self) -> torch.Tensor:  # [V, d] product, for code that reads embedding weights
        return self.second(self.first.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(ids))


def rank_for_energy(s: torch.Tensor, energy: float) -> int:
    """Smallest r with sum(S[:r]^2) >= energy * sum(S^2)."""
    e = (s.double() ** 2).cumsum(0)
    return int(torch.searchsorted(e, energy * e[-1] - 1e-12 * e[-1]).item()) + 1


def factorize(lin: nn.Linear, rank: int | None = None, energy: float = 0.9) -> tuple[LowRankLinear, int]:
    w = lin.weight.detach().double()  # [out, in]; SVD in float64 so full rank is exact to fp32 precision
    u, s, vh = torch.linalg.svd(w, full_matrices=False)  # u [out, k], s [k], vh [k, in]
    r = min(rank, s.numel()) if rank is not None else rank_for_energy(s, energy)
    new = LowRankLinear(lin.in_features, lin.out_features, r, bias=lin.bias is not None)
    with torch.no_grad():
        new.first.weight.copy_(vh[:r].to(lin.weight.dtype))
        new.second.weight.copy_((u[:, :r] * s[:r]).to(lin.weight.dtype))
        if lin.bias is not None:
            new.second.bias.copy_(lin.bias.detach())
    return new, r


def factorize_embedding(emb: nn.Embedding, rank: int | None = None, energy: float = 0.9):
    w = emb.weight.detach().double()  # [V, d]
    u, s, vh = torch.linalg.svd(w, full_matrices=False)  # u [V, k], vh [k, d]
    r = min(rank, s.numel()) if rank is not None else rank_for_energy(s, energy)
    new = LowRankEmbedding(emb.num_embeddings, emb.embedding_dim, r, emb.padding_idx)
    with torch.no_grad():
        new.first.weight.copy_((u[:, :r] * s[:r]).to(emb.weight.dtype))
        new.second.weight.copy_(vh[:r].T.to(emb.weight.dtype))
    return new, r


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def low_rank(model: nn.Module, patterns: list[str], rank: int | None = None, energy: float = 0.9,
             force: bool = False) -> dict:
    """Factorise every nn.Linear whose name matches a regex in ``patterns``. Returns {name: info}.

    A layer whose factorised form would not be smaller is left alone (unless ``force``: tests, full rank).
    """
    regexes = [re.compile(p) for p in patterns]
    chosen = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (nn.Linear, nn.Embedding)) and any(r.search(n) for r in regexes)]
    if not chosen:
        from zuoxiao.core.errors import InputError

        names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:8]
        raise InputError(f"low_rank.modules={patterns} match no nn.Linear or nn.Embedding; names look like {names}")
    report = {}
    for name, lin in chosen:
        if isinstance(lin, nn.Embedding):
            new, r = factorize_embedding(lin, rank, energy)
            n_in, n_out = lin.num_embeddings, lin.embedding_dim
        else:
            new, r = factorize(lin, rank, energy)
            n_in, n_out = lin.in_features, lin.out_features
        smaller = r * (n_in + n_out) < n_in * n_out
        report[name] = {"rank": r, "full_rank": min(n_in, n_out), "replaced": smaller or force}
        if smaller or force:
            _set_module(model, name, new)
    return report


def low_rank_structure(model: nn.Module) -> dict[str, int]:
    return {n: m.rank for n, m in model.named_modules() if isinstance(m, (LowRankLinear, LowRankEmbedding))}


def apply_low_rank_structure(model: nn.Module, ranks: dict[str, int]) -> None:
    """Replace the named Linears by empty LowRankLinear of the recorded rank (weights loaded afterwards)."""
    for name, r in ranks.items():
        mod = model.get_submodule(name)
        if isinstance(mod, nn.Embedding):
            _set_module(model, name, LowRankEmbedding(mod.num_embeddings, mod.embedding_dim, r, mod.padding_idx))
        else:
            _set_module(model, name, LowRankLinear(mod.in_features, mod.out_features, r, bias=mod.bias is not None))
