"""Prompted causal LM scoring: the label distribution of a chat prompt, with a shared-prefix KV cache.

The teacher turns each row into a chat prompt, scores every label's verbaliser words as the
assistant's answer and returns a (N, C) log-probability matrix normalised over the labels, usable
directly as soft labels (log-probs are logits up to a per-row constant).

Cost model: the instructions and few-shot turns are identical for every row, so their key/value
cache is computed once (per scorer, i.e. per Beam worker) and shared; a row then costs only its own
tokens plus the verbaliser continuation. Shapes use N rows, C labels, W verbaliser words, B batch,
P prefix tokens, L padded row tokens, H heads, D head dim, V vocabulary.

transformers 5 notes (measured with 5.24, see docs/label.md): the forward's cache argument is
`cache` (was `past_key_values`); a DynamicCache is mutated in place, so the prefix is kept as plain
per-layer (k, v) tensors and a fresh cache is built per batch; `logits_to_keep` takes an index
tensor so the vocabulary head runs only where we read it.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from zuoxiao.core.errors import ConfigError

#: Inputs without content for contextual calibration (Zhao et al. 2021).
CONTENT_FREE = ("N/A", "", "[MASK]")
_SPLIT = "\x00ROW\x00"  # sentinel: marks where the row text goes inside the rendered chat


def few_shot_examples(texts: Sequence[str], labels: Sequence[int], k: int, seed: int = 0) -> list[tuple[str, int]]:
    """Pick k gold rows with a fixed seed, round-robin over labels so every class is shown."""
    rng = random.Random(seed)
    by_label: dict[int, list[str]] = {}
    for t, y in zip(texts, labels, strict=True):
        by_label.setdefault(int(y), []).append(t)
    pools = {y: rng.sample(v, min(len(v), k)) for y, v in sorted(by_label.items())}
    picked = []
    while len(picked) < k and any(pools.values()):
        for y, pool in pools.items():
            if pool and len(picked) < k:
                picked.append((pool.pop(), y))
    rng.shuffle(picked)  # no fixed label order: the LM copies the last answer otherwise
    return picked


def chat_messages(system: str | None, user: str, verbalizers: Sequence[Sequence[str]],
                  examples: Sequence[tuple[str, int]], text: str) -> list[dict]:
    """The chat of one row: system, few-shot user/assistant turns (answer = the label's first word), the row.
    Shared with the served teacher (teacher/endpoint.py), which sends exactly these messages."""
    msgs = [{"role": "system", "content": system}] if system else []
    for t, y in examples:
        msgs += [{"role": "user", "content": user.format(text=t)}, {"role": "assistant", "content": verbalizers[y][0]}]
    return msgs + [{"role": "user", "content": user.format(text=text)}]


@dataclass
class LLMScorer:
    """Scores labels as the assistant's answer to a chat prompt.

    `verbalizers[c]` lists the words for label c; a word of several tokens is scored by its full
    continuation log-probability, the words of a label are combined by logsumexp (sum of probs).
    `examples` are (text, label) gold pairs shown as earlier user/assistant turns; the first word of
    the label's verbaliser is the example answer.
    """

    model: torch.nn.Module
    tokenizer: object
    system: str | None
    user: str  # contains "{text}"
    verbalizers: Sequence[Sequence[str]]
    examples: Sequence[tuple[str, int]] = ()
    batch_size: int = 8
    use_prefix_cache: bool = True
    _prefix_ids: list[int] = field(init=False, default_factory=list)
    _tail: str = field(init=False, default="")
    _prefix_kv: list | None = field(init=False, default=None)

    def __post_init__(self):
        msgs = chat_messages(self.system, self.user, self.verbalizers, self.examples, _SPLIT)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError("the causal LM teacher's tokenizer has no chat template (a base model rather than an "
                              "instruct/chat model?); use an instruct model for label.teacher.kind: causal_lm")
        chat = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        head, self._tail = chat.split(_SPLIT)
        # cut the shared prefix at its last newline: BPE merges across a cut inside a line would
        # make "prefix ids + row ids" tokenise differently from the whole prompt
        cut = head.rfind("\n") + 1
        head, self._head_rest = head[:cut], head[cut:]
        self._prefix_ids = self._encode(head)
        # verbaliser token ids, flattened: word w belongs to label self._word_label[w]
        self._words = [self._encode(w) for ws in self.verbalizers for w in ws]
        self._word_label = torch.tensor([c for c, ws in enumerate(self.verbalizers) for _ in ws])
        for w, ids in zip((w for ws in self.verbalizers for w in ws), self._words, strict=True):
            if not ids:
                raise ConfigError(f"label.teacher.llm.verbalizers: the word {w!r} encodes to no token; "
                                      "give a non-empty word")
        # multi-token words as branches after the rows (_score_batch): (word index, tokens fed = all but the
        # last, tokens they predict = all but the first, offset of the branch after the padded rows); the
        # layout is the same for every batch
        self._branches, off = [], 0
        for i, ids in enumerate(self._words):
            if len(ids) > 1:
                self._branches.append((i, torch.tensor(ids[:-1]), torch.tensor(ids[1:]), off))
                off += len(ids) - 1
        self._branch_tokens = off
        params = inspect.signature(self.model.forward).parameters
        # transformers 5.x renamed past_key_values -> cache (old name deprecated until 5.40)
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._prefix_kv = None

    def _encode(self, s: str) -> list[int]:
        # the chat template already holds the special tokens: never add BOS/EOS here
        return self.tokenizer(s, add_special_tokens=False)["input_ids"]

    def _row_ids(self, text: str) -> list[int]:
        return self._encode(self._head_rest + text + self._tail)

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, kv: list | None, keep=0):
        """ids/pos: (B, L); mask: (B, kv_len + L), or a 4-D additive mask (B, 1, L, kv_len + L) that the model
        uses as given; kv: per-layer (k, v) of shape (B, H, kv_len, D).

        Returns logits (B, K, V) at the K positions `keep` (a 1-D index tensor, or an int: the last
        `keep` positions, 0 = all) and the new per-layer (k, v) including these L tokens. Only asking
        for the logits we read matters: the 49k-word head costs ~20% of the model per position.
        A fresh DynamicCache is built from the tensors every call: forward() mutates its cache in
        place (torch.cat into the layer), so a shared cache object would grow across batches.
        Index tensors are built on the CPU and moved here; the cache stays on the model's device and
        the (small: K positions only) logits come back to the CPU.
        """
        dev = self.model.device
        cache = DynamicCache(ddp_cache_data=kv, config=self.model.config) if kv else DynamicCache(config=self.model.config)
        if isinstance(keep, torch.Tensor):
            keep = keep.to(dev)
        out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), use_cache=True,
                         logits_to_keep=keep, **{self._cache_kw: cache})
        new = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        return out.logits.float().cpu(), [(layer.keys, layer.values) for layer in new.layers]

    def _prefix(self) -> tuple[list, int]:
        """Per-layer (k, v) of shape (1, H, P, D) for the shared prefix, computed once."""
        if self._prefix_kv is None:
            ids = torch.tensor([self._prefix_ids])
            _, self._prefix_kv = self._forward(ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None], None, 1)
        return self._prefix_kv, len(self._prefix_ids)

    @torch.no_grad()
    def _score_batch(self, rows: list[list[int]]) -> torch.Tensor:
        """rows: B lists of token ids (row suffix only). Returns (B, W) word log-probs.

        One forward per batch. The tokens of every multi-token word (all but its last) ride along after
        the padded rows as branches of a tree: a branch token sees the prefix, its own row's real tokens
        and the earlier tokens of its own word, and nothing else (a 4-D mask), at positions that continue
        from its row's end. So the words cost ~sum(len(word) - 1) extra tokens per row and no copy of the
        prefix's keys/values per word (repeating the cache per word was 60% of the few-shot time).
        """
        if self.use_prefix_cache:
            kv, p = self._prefix()
            kv = [(k.expand(len(rows), -1, -1, -1), v.expand(len(rows), -1, -1, -1)) for k, v in kv]
        else:  # reference path: the prefix is re-run for every row
            rows, kv, p = [self._prefix_ids + r for r in rows], None, 0
        b, lens = len(rows), torch.tensor([len(r) for r in rows])
        ln = int(lens.max())
        n = ln + self._branch_tokens  # (B, n) = padded rows, then every word's branch
        ids = torch.zeros(b, n, dtype=torch.long)  # right padding: real tokens never see pads (causal)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        pos = (p + torch.arange(n))[None].repeat(b, 1)
        q, k = torch.arange(n)[:, None], torch.arange(n)[None]
        real = k < lens[:, None, None]  # (B, 1, n): keys that are a row's real tokens
        see = (k <= q) & (k < ln) & (q < ln) & (real | (k == q))  # rows: causal over real tokens (pads: themselves)
        for _, f, _, off in self._branches:  # f: tokens 0..k-2 of a k-token word; they predict tokens 1..k-1
            st = ln + off
            branch = (q >= st) & (q < st + len(f))
            see = see | (branch & (real & (k < ln) | (k >= st) & (k <= q)))
            pos[:, st : st + len(f)] = p + lens[:, None] + torch.arange(len(f))[None]
            ids[:, st : st + len(f)] = f
        see = torch.cat([torch.ones(b, n, p, dtype=torch.bool), see], 2)[:, None]  # (B, 1, n, p + n)
        dtype = next(self.model.parameters()).dtype
        mask = torch.zeros(see.shape, dtype=dtype).masked_fill(~see, torch.finfo(dtype).min)
        ends, where = torch.unique(lens - 1, return_inverse=True)  # few distinct ends: rows are length-sorted
        keep = torch.cat([ends, torch.arange(ln, n)])
        logits, _ = self._forward(ids, mask, pos, kv, keep)  # (B, len(ends) + n - ln, V)
        last = logits[torch.arange(b), where].log_softmax(-1)  # (B, V): next token after each row
        scores = torch.stack([last[:, w[0]] for w in self._words], 1)  # (B, W): first token of each word
        branch_lp = logits[:, len(ends):].log_softmax(-1)  # (B, n - ln, V)
        for i, f, targets, off in self._branches:
            # the logits at branch token j predict token j+1 of the word, given the row and tokens 0..j
            at = torch.arange(off, off + len(f))
            scores[:, i] += branch_lp[:, at, targets].sum(-1)
        return scores

    def word_logprobs(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, W) log P(word | prompt) for every verbaliser word, unnormalised over labels."""
        rows = [self._row_ids(t) for t in texts]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths: less padding
        out = torch.empty(len(rows), len(self._words))
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            out[idx] = self._score_batch([rows[i] for i in idx])
        return out

    def score(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, C) label log-probs, rows normalised over the C labels (logsumexp over each label's words)."""
        w = self.word_logprobs(texts)
        c = len(self.verbalizers)
        per_label = torch.full((len(texts), c), float("-inf"))
        for label in range(c):
            per_label[:, label] = w[:, self._word_label == label].logsumexp(-1)
        return per_label.log_softmax(-1)

    def content_free_logprior(self, inputs: Sequence[str] = CONTENT_FREE) -> torch.Tensor:
        """(C,) log of the mean label distribution over content-free inputs (Zhao et al. 2021)."""
        p = self.score(list(inputs)).exp().mean(0)
        return p.log()


def calibrate(logp: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """(N, C), (C,) -> (N, C): divide out a label prior, renormalise (W = diag(p_cf)^-1 in prob space)."""
    return (logp - log_prior).log_softmax(-1)


def fit_prior(logp: torch.Tensor, target: torch.Tensor | None = None, iters: int = 50) -> torch.Tensor:
    """Fit a (C,) log-prior on unlabelled rows so that calibrate(logp, prior) has marginal `target`.

    logp: (N, C) label log-probs of unlabelled rows; target: (C,) probs (default uniform, or e.g. the
    gold label frequencies). Fixed-point iteration: raise the bias of labels predicted less often than
    wanted; converges in a few steps. Unlike the content-free prior it needs no prompt engineering, but
    needs a few hundred unlabelled rows from the same distribution as the ones it is applied to.
    """
    c = logp.shape[1]
    target = torch.full((c,), 1.0 / c) if target is None else target / target.sum()
    bias = torch.zeros(c)
    for _ in range(iters):
        marginal = (logp + bias).softmax(-1).mean(0)
        bias = bias + target.log() - marginal.log()
    return -bias  # as a log-prior: calibrate() subtracts it
