"""Transfer-set augmentation (Tang et al. 2019, "Distilling task-specific knowledge from BERT").

Each input row yields ``copies`` perturbed texts that the teacher labels too:
  - masking: each word becomes the tokenizer's mask token with probability p_mask;
  - same-data swap: otherwise each word becomes a random word of the data's own vocabulary with
    probability p_swap (the paper swaps within a part of speech; we have no tagger, so any word);
  - n-gram sampling: with probability p_ngram keep only a random span of 1-5 words.
And ``joins`` joined texts: the row's text with 1 to join_max - 1 other texts of the data, in random
order. They are for a transfer set of short texts (SST-2's training phrases, median 7 words) whose
student is used on longer ones (its test sentences, median 19): the teacher's labels of longer texts
teach the student how parts combine, which short rows alone do not show. Partners come from a pool of
at most JOIN_POOL texts, chosen by text hash (deterministic, whatever the runner's order).
Randomness comes from sha256(seed, row id, copy number): the same config and data give the same
augmented rows on every runner, in any order. Augmented rows have no gold label.
"""

from __future__ import annotations

import hashlib
import random

import apache_beam as beam

MAX_VOCAB = 200_000  # cap on the swap vocabulary side input (most frequent words are kept)
JOIN_POOL = 100_000  # cap on the join partners side input (~10 MB of short texts)


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


def join_text(text: str, pool: list[str], rng: random.Random, join_max: int) -> str:
    """``text`` and 1 to join_max - 1 texts drawn from ``pool`` (with replacement), shuffled, joined by spaces."""
    partners = [pool[rng.randrange(len(pool))] for _ in range(rng.randint(1, join_max - 1))] if pool else []
    # a draw of the row's own text is left out (the row joined with itself is not a new text); with no
    # partner left the result equals the row and augment_record drops it
    parts = [text] + [p for p in partners if p != text]
    rng.shuffle(parts)
    return " ".join(p.strip() for p in parts)


def augment_record(rec: dict, vocab: list[str], cfg, mask_token: str, pool: list[str] = ()) -> list[dict]:
    """One original record -> up to cfg.copies perturbed and cfg.joins joined records (texts equal to
    the original or to an earlier one are dropped: labelling the same text twice teaches nothing).
    Ids: ``<id>~aug<c>`` for copy c, ``<id>~join<j>`` for join j."""
    from zuoxiao.core.rows import text_hash

    seen = {rec["text"]}
    made = [(f"aug{c}", augment_text(rec["text"], vocab, rng_for(cfg.seed, rec["id"], c), cfg.p_mask,
                                     cfg.p_swap, cfg.p_ngram, mask_token)) for c in range(cfg.copies)]
    # the copy number space of joins starts after 10_000 so adding copies never changes a join
    made += [(f"join{j}", join_text(rec["text"], pool, rng_for(cfg.seed, rec["id"], 10_000 + j), cfg.join_max))
             for j in range(cfg.joins)]
    out = []
    for suffix, text in made:
        if not text.strip() or text in seen:
            continue
        seen.add(text)
        out.append({"id": f"{rec['id']}~{suffix}", "text": text, "text_hash": text_hash(text), "gold": None,
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
        # each side input is one global combine over every record: build only those the config uses
        vocab = pool = []
        if self.cfg.copies:
            vocab = beam.pvalue.AsSingleton(
                records
                | "Words" >> beam.FlatMap(lambda r: words_of(r["text"]))
                | "CountWords" >> beam.combiners.Count.PerElement()
                | "AllCounts" >> beam.combiners.ToList()
                | "Vocab" >> beam.Map(_top_words)
            )
        if self.cfg.joins:
            pool = beam.pvalue.AsSingleton(
                records
                | "JoinCandidates" >> beam.Map(lambda r: (r["text_hash"], r["text"]))
                # the JOIN_POOL largest hashes: a deterministic sample whatever order rows arrive in
                | "JoinPool" >> beam.combiners.Top.Of(JOIN_POOL)
                | "PoolTexts" >> beam.Map(lambda pairs: sorted(t for _, t in pairs))
            )
        return records | "Perturb" >> beam.FlatMap(
            augment_record, vocab=vocab, cfg=self.cfg, mask_token=self.mask_token, pool=pool,
        )
