"""Transfer-set augmentation (Tang et al. 2019, "Distilling task-specific knowledge from BERT").

Each input row yields ``copies`` perturbed texts that the teacher labels too:
  - masking: each word becomes the tokenizer's mask token with probability p_mask;
  - same-data swap: otherwise each word becomes a random word of the data's own vocabulary with
    probability p_swap (the paper swaps within a part of speech; we have no tagger, so any word);
  - n-gram sampling: with probability p_ngram keep only a random span of 1-5 words.
Randomness comes from sha256(seed, row id, copy number): the same config and data give the same
augmented rows on every runner, in any order. Augmented rows have no gold label.
"""

from __future__ import annotations

import hashlib
import random

import apache_beam as beam

MAX_VOCAB = 200_000  # cap on the swap vocabulary side input (most frequent words are kept)


def words_of(text: str) -> list[str]:
    return text.split()


def rng_for(seed: int, row_id: str, copy: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}\0{row_id}\0{copy}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def augment_text(text: str, vocab: list[str], rng: random.Random, p_mask: float, p_swap: float,
                 p_ngram: float, mask_token: str = "[MASK]") -> str:
    words = words_of(text)
    out = []
    for w in words:
        u = rng.random()
        if u < p_mask:
            out.append(mask_token)
        elif u < p_mask + p_swap and vocab:
            out.append(vocab[rng.randrange(len(vocab))])
        else:
            out.append(w)
    if out and rng.random() < p_ngram:
        n = rng.randint(1, min(5, len(out)))
        start = rng.randrange(len(out) - n + 1)
        out = out[start:start + n]
    return " ".join(out)


def augment_record(rec: dict, vocab: list[str], cfg, mask_token: str) -> list[dict]:
    """One original record -> up to cfg.copies augmented records (copies equal to the original or to
    an earlier copy are dropped: labelling the same text twice teaches nothing)."""
    from zuoxiao.core.rows import text_hash

    seen = {rec["text"]}
    out = []
    for c in range(cfg.copies):
        text = augment_text(rec["text"], vocab, rng_for(cfg.seed, rec["id"], c), cfg.p_mask, cfg.p_swap,
                            cfg.p_ngram, mask_token)
        if not text.strip() or text in seen:
            continue
        seen.add(text)
        out.append({"id": f"{rec['id']}~aug{c}", "text": text, "text_hash": text_hash(text), "gold": None,
                    "augmented": True, "source": rec["source"], "pos": rec["pos"]})
    return out


def _top_words(counts: list[tuple[str, int]]) -> list[str]:
    # Most frequent first, ties by word: deterministic whatever order the counts arrive in.
    ranked = sorted(counts, key=lambda wc: (-wc[1], wc[0]))[:MAX_VOCAB]
    return sorted(w for w, _ in ranked)


class Augment(beam.PTransform):
    """Records -> augmented records (the originals are not re-emitted)."""

    def __init__(self, cfg, mask_token: str):
        super().__init__()
        self.cfg = cfg
        self.mask_token = mask_token

    def expand(self, records):
        vocab = (
            records
            | "Words" >> beam.FlatMap(lambda r: words_of(r["text"]))
            | "CountWords" >> beam.combiners.Count.PerElement()
            | "AllCounts" >> beam.combiners.ToList()
            | "Vocab" >> beam.Map(_top_words)
        )
        return records | "Perturb" >> beam.FlatMap(
            augment_record, vocab=beam.pvalue.AsSingleton(vocab), cfg=self.cfg, mask_token=self.mask_token
        )
