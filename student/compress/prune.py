"""Structured pruning of BERT-family encoders: attention heads, FFN neurons, whole layers.

transformers 5 removed ``prune_heads``/``head_mask``, so heads are removed by slicing the projections
ourselves. The result is a genuinely smaller dense model: per layer

    query/key/value: Linear(d, H*h)   -> Linear(d, H'*h)   (rows of the kept heads)
    attention.output.dense: Linear(H*h, d) -> Linear(H'*h, d) (columns of the kept heads)
    intermediate.dense: Linear(d, I)  -> Linear(d, I')     output.dense: Linear(I, d) -> Linear(I', d)

The shape of every layer is recorded by ``structure_of`` so ``zuoxiao.student.compress.modelio`` can rebuild
and reload it.
Importance is scored on transfer-set rows with a multiplicative mask on the input of
attention.output.dense (heads) or output.dense (neurons): "gradient" = |sum dL/dmask| (first-order Taylor,
Michel et al. 2019 / Molchanov et al. 2017), "activation" = mean |input| over real tokens.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from zuoxiao.core.errors import InputError


def encoder_layers(model) -> nn.ModuleList:
    """The list of transformer blocks of a BERT/RoBERTa/ELECTRA-style model."""
    try:
        layers = model.base_model.encoder.layer
        layers[0].attention.self.query, layers[0].intermediate.dense  # noqa: B018  (shape check)
    except (AttributeError, IndexError):
        raise InputError(f"structured pruning supports BERT-family encoders; {type(model).__name__} is not one: "
                         "remove prune_* steps from compress.steps") from None
    return layers


def num_heads(layer) -> int:
    att = layer.attention.self
    return att.query.out_features // att.attention_head_size


def slice_linear(lin: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping rows (dim=0, output features) or columns (dim=1, input features) ``index``."""
    w = lin.weight.detach().index_select(dim, index).clone()
    b = None if lin.bias is None else (lin.bias.detach()[index].clone() if dim == 0 else lin.bias.detach().clone())
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None).to(w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def prune_heads(model, keep: list[list[int]]) -> None:
    """Keep heads ``keep[l]`` (indices) in layer l. Empty lists are refused (a layer needs a head)."""
    for li, (layer, heads) in enumerate(zip(encoder_layers(model), keep, strict=True)):
        att = layer.attention.self
        h = att.attention_head_size
        if not heads:
            raise InputError(f"layer {li} would keep 0 heads; raise prune_heads.keep")
        idx = torch.tensor([hd * h + j for hd in sorted(heads) for j in range(h)])
        att.query, att.key, att.value = (slice_linear(m, idx, 0) for m in (att.query, att.key, att.value))
        layer.attention.output.dense = slice_linear(layer.attention.output.dense, idx, 1)
        att.num_attention_heads = len(heads)
        att.all_head_size = len(heads) * h
    _sync_config(model)


def prune_neurons(model, keep: list[list[int]]) -> None:
    """Keep FFN neurons ``keep[l]`` in layer l: intermediate.dense rows and output.dense columns."""
    for li, (layer, neurons) in enumerate(zip(encoder_layers(model), keep, strict=True)):
        if not neurons:
            raise InputError(f"layer {li} would keep 0 FFN neurons; raise prune_neurons.keep")
        idx = torch.tensor(sorted(neurons))
        layer.intermediate.dense = slice_linear(layer.intermediate.dense, idx, 0)
        layer.output.dense = slice_linear(layer.output.dense, idx, 1)
    _sync_config(model)


def prune_layers(model, keep: list[int]) -> None:
    layers = encoder_layers(model)
    bad = [i for i in keep if i >= len(layers)]
    if bad:
        raise InputError(f"prune_layers.keep={keep}: the model has {len(layers)} layers (0..{len(layers) - 1}); "
                         f"drop {bad}")
    kept = [layers[i] for i in sorted(keep)]
    for new_i, layer in enumerate(kept):  # caches index by layer_idx; keep it consistent
        for mod in layer.modules():
            if hasattr(mod, "layer_idx"):
                mod.layer_idx = new_i
    model.base_model.encoder.layer = nn.ModuleList(kept)
    _sync_config(model)


def _sync_config(model) -> None:
    """Make config describe the new shapes where it can (uniform counts reload with from_pretrained)."""
    layers = encoder_layers(model)
    cfg = model.config
    cfg.num_hidden_layers = len(layers)
    widths = {layer.intermediate.dense.out_features for layer in layers}
    if len(widths) == 1 and all(isinstance(layer.intermediate.dense, nn.Linear) for layer in layers):
        cfg.intermediate_size = widths.pop()


def structure_of(model) -> dict:
    """Per-layer head counts and FFN widths (what from_config cannot know)."""
    layers = encoder_layers(model)
    return {"num_layers": len(layers), "heads": [num_heads(la) for la in layers],
            "intermediate": [_out_features(la.intermediate.dense) for la in layers]}


def _out_features(mod) -> int:
    return mod.out_features if isinstance(mod, nn.Linear) else mod.second.out_features


def apply_structure(model, structure: dict) -> None:
    """Shape a freshly built model like ``structure`` (weights are then loaded from the checkpoint)."""
    if len(encoder_layers(model)) != structure["num_layers"]:
        prune_layers(model, list(range(structure["num_layers"])))
    layers = encoder_layers(model)
    if [num_heads(la) for la in layers] != structure["heads"]:
        prune_heads(model, [list(range(n)) for n in structure["heads"]])
    if [la.intermediate.dense.out_features for la in layers] != structure["intermediate"]:
        prune_neurons(model, [list(range(n)) for n in structure["intermediate"]])


def importance(model, batches, what: str, method: str = "gradient") -> list[torch.Tensor]:
    """Score heads (what='heads') or FFN neurons ('neurons'): one [H] or [I] tensor per layer.

    ``batches`` yields (encoding dict, soft target probabilities [B, C]).
    """
    layers = encoder_layers(model)
    targets = [la.attention.output.dense if what == "heads" else la.output.dense for la in layers]
    sizes = [num_heads(la) if what == "heads" else la.intermediate.dense.out_features for la in layers]
    masks = [torch.ones(n, requires_grad=method == "gradient") for n in sizes]
    scores = [torch.zeros(n) for n in sizes]
    state = {"attn": None}
    handles = []
    for li, (mod, mask) in enumerate(zip(targets, masks, strict=True)):
        def hook(_m, args, li=li, mask=mask):
            x = args[0]  # [B, T, H*h] (heads) or [B, T, I] (neurons)
            rep = x.shape[-1] // mask.numel()
            full = mask.repeat_interleave(rep)
            if method == "activation":
                with torch.no_grad():
                    am = state["attn"].unsqueeze(-1).to(x.dtype)  # [B, T, 1]: real tokens only
                    act = (x.abs() * am).sum((0, 1)) / am.sum().clamp_min(1)
                    scores[li] += act.view(mask.numel(), rep).mean(-1)
            return (x * full,) + tuple(args[1:])
        handles.append(mod.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()  # no dropout: scores must be deterministic
    try:
        for enc, soft in tqdm(batches, desc=f"importance ({what})", leave=False):
            state["attn"] = enc["attention_mask"]
            if method == "gradient":
                logp = model(**enc).logits.float().log_softmax(-1)
                loss = -(soft * logp).sum(-1).mean()  # cross-entropy against the teacher's probabilities
                grads = torch.autograd.grad(loss, masks)
                for s, g in zip(scores, grads, strict=True):
                    s += g.abs()
            else:
                with torch.no_grad():
                    model(**enc)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return scores


def top_k(scores: list[torch.Tensor], fraction: float) -> list[list[int]]:
    """The same count (ceil(fraction * n), at least 1) of highest-scoring units in every layer."""
    out = []
    for s in scores:
        k = max(1, int(round(fraction * s.numel())))
        out.append(sorted(torch.topk(s, k).indices.tolist()))
    return out
