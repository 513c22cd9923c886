"""Vocabulary trimming: keep the WordPiece tokens the task data uses, remap embeddings and tokenizer.

Why it is exact: WordPiece tokenises greedily, longest match first. Every token the original tokenizer
produced on the scanned texts is kept, and removing other tokens can only shorten a longest match to a
token that was not chosen anyway, so those texts tokenise to the same tokens (new ids) and the model
gives identical logits. Unseen words may split differently or become [UNK]; ``keep_chars`` keeps the
single-character pieces so most of them still split into characters.

Word embeddings are most of a small student (75% of a 2-layer MiniLM cut), so this is the size step.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from zuoxiao.core.errors import InputError


def plain_backend(tokenizer):
    """The tokenizer's `tokenizers` backend without padding and truncation. A saved tokenizer.json may carry
    both (MiniLM's pads every batch to its longest text): [PAD] would then count as a used token and
    every text as changed, and tokens past the cut-off would not be counted at all."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    return backend


def token_counts(tokenizer, texts: list[str]) -> Counter:
    """How often each token id occurs in ``texts`` (no truncation: every token a text can use)."""
    backend = plain_backend(tokenizer)
    counts: Counter = Counter()
    for start in range(0, len(texts), 4096):
        for enc in backend.encode_batch(texts[start : start + 4096], add_special_tokens=False):
            counts.update(enc.ids)
    return counts


def _char_ids(vocab: dict[str, int]) -> set[int]:
    chars = set(string.ascii_letters + string.digits + string.punctuation)
    return {i for t, i in vocab.items() if t in chars or (t.startswith("##") and t[2:] in chars and len(t) == 3)}


def unk_rate(tokenizer, texts: list[str]) -> float:
    """Fraction of tokens that are [UNK] (how much unseen text degrades after trimming)."""
    unk = tokenizer.unk_token_id
    total = hits = 0
    for enc in plain_backend(tokenizer).encode_batch(texts, add_special_tokens=False):
        total += len(enc.ids)
        hits += sum(1 for i in enc.ids if i == unk)
    return hits / total if total else 0.0


def _remap_tokenizer_json(tok_json: dict, old_to_new: dict[int, int], id_to_token: dict[int, str]) -> dict:
    """Rewrite every id in a tokenizers JSON: the WordPiece vocab, added tokens, post-processor, padding."""
    tok_json["model"]["vocab"] = {id_to_token[old]: new for old, new in sorted(old_to_new.items(), key=lambda x: x[1])}
    for added in tok_json.get("added_tokens") or []:
        added["id"] = old_to_new[added["id"]]
    post = tok_json.get("post_processor") or {}
    processors = post.get("processors", [post]) if post else []
    for proc in processors:
        for spec in (proc.get("special_tokens") or {}).values():  # TemplateProcessing
            spec["ids"] = [old_to_new[i] for i in spec["ids"]]
        for key in ("cls", "sep"):  # BertProcessing / RobertaProcessing: [token, id]
            if isinstance(proc.get(key), list):
                proc[key][1] = old_to_new[proc[key][1]]
    if tok_json.get("padding"):
        tok_json["padding"]["pad_id"] = old_to_new[tok_json["padding"]["pad_id"]]
    return tok_json


def trim_vocab(model, tokenizer, texts: list[str], out_dir: str | Path, *, min_count: int = 1,
               keep_chars: bool = True, check_texts: list[str] | None = None):
    """Return (model, tokenizer, info) with only the used tokens. ``out_dir`` receives the new tokenizer.

    model: a *ForSequenceClassification whose input embeddings are [V, d]; they become [V', d].
    """
    from transformers import AutoTokenizer

    if not getattr(tokenizer, "is_fast", False):
        raise InputError("vocab_trim needs a fast (tokenizers) tokenizer; remove the vocab_trim step")
    tok_json = json.loads(tokenizer.backend_tokenizer.to_str())
    if tok_json.get("model", {}).get("type") != "WordPiece":
        raise InputError(
            f"vocab_trim supports WordPiece tokenizers (BERT family); this one is "
            f"{tok_json.get('model', {}).get('type')!r}: remove the vocab_trim step"
        )
    if not texts:
        raise InputError("vocab_trim found no transfer-set texts in the label shards; run `zuoxiao label` first")
    vocab: dict[str, int] = tokenizer.get_vocab()
    id_to_token = {i: t for t, i in vocab.items()}
    counts = token_counts(tokenizer, texts)
    keep = {i for i, c in counts.items() if c >= min_count}
    keep |= set(tokenizer.all_special_ids) | {a["id"] for a in tok_json.get("added_tokens") or []}
    if keep_chars:
        keep |= _char_ids(vocab)
    keep_sorted = sorted(i for i in keep if i in id_to_token)
    old_to_new = {old: new for new, old in enumerate(keep_sorted)}

    # Embeddings [V, d] -> [V', d]: rows in the old id order, so relative order (and [PAD]=0) is kept.
    old_emb: nn.Embedding = model.get_input_embeddings()
    if old_emb.num_embeddings < len(vocab):
        raise InputError(f"model has {old_emb.num_embeddings} embeddings but the tokenizer {len(vocab)} tokens; "
                         "they do not belong together")
    pad_old = model.config.pad_token_id
    pad_new = old_to_new.get(pad_old) if pad_old is not None else None
    new_emb = nn.Embedding(len(keep_sorted), old_emb.embedding_dim, padding_idx=pad_new)
    with torch.no_grad():
        new_emb.weight.copy_(old_emb.weight[torch.tensor(keep_sorted)])
    model.set_input_embeddings(new_emb)
    model.config.vocab_size = len(keep_sorted)
    if pad_old is not None:
        model.config.pad_token_id = pad_new

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    new_json = _remap_tokenizer_json(tok_json, old_to_new, id_to_token)
    (out_dir / "tokenizer.json").write_text(json.dumps(new_json, ensure_ascii=False))
    # transformers 5 no longer writes vocab.txt; consumers of a BERT directory still look for it.
    (out_dir / "vocab.txt").write_text("".join(id_to_token[i] + "\n" for i in keep_sorted), encoding="utf-8")
    new_tok = AutoTokenizer.from_pretrained(out_dir)
    if len(new_tok.get_vocab()) != len(keep_sorted):
        raise AssertionError(f"trimmed tokenizer has {len(new_tok.get_vocab())} tokens, expected {len(keep_sorted)}")

    d = old_emb.embedding_dim
    info = {"vocab_before": len(vocab), "vocab_after": len(keep_sorted),
            "tokens_seen": len(counts), "params_removed": (old_emb.num_embeddings - len(keep_sorted)) * d,
            "fp32_bytes_saved": (old_emb.num_embeddings - len(keep_sorted)) * d * 4}
    if check_texts:
        info["eval_unk_rate_before"] = round(unk_rate(tokenizer, check_texts), 5)
        info["eval_unk_rate_after"] = round(unk_rate(new_tok, check_texts), 5)
    return model, new_tok, info


def trim_positions(model, max_positions: int) -> dict:
    """Keep the first ``max_positions`` absolute position embeddings [P, d] -> [P', d].

    Inputs are truncated to max_length tokens, so later positions are never read; the model's
    ``position_ids`` buffer is cut to match. Returns what was removed.
    """
    emb = model.base_model.embeddings
    pos = getattr(emb, "position_embeddings", None)
    if not isinstance(pos, nn.Embedding):
        raise InputError("vocab_trim.max_positions needs absolute position embeddings; set it to null")
    if max_positions >= pos.num_embeddings:
        return {"positions_before": pos.num_embeddings, "positions_after": pos.num_embeddings}
    new = nn.Embedding(max_positions, pos.embedding_dim)
    with torch.no_grad():
        new.weight.copy_(pos.weight[:max_positions])
    before = pos.num_embeddings
    emb.position_embeddings = new
    for name in ("position_ids", "token_type_ids"):
        buf = getattr(emb, name, None)
        if isinstance(buf, torch.Tensor) and buf.dim() == 2 and buf.shape[1] > max_positions:
            emb.register_buffer(name, buf[:, :max_positions].clone(), persistent=False)
    model.config.max_position_embeddings = max_positions
    return {"positions_before": before, "positions_after": max_positions}
