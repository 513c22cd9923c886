import pytest
from pydantic import ValidationError

from zuoxiao.core.config import AugmentConfig
from zuoxiao.pipelines.augment import augment_record, augment_text, join_text, rng_for

REC = {"id": "r1", "text": "the plot is very boring and long", "text_hash": "h", "gold": 1,
       "augmented": False, "source": "f", "pos": 0}
VOCAB = ["alpha", "beta", "gamma"]


def test_augmentation_is_deterministic_per_seed_id_and_copy():
    cfg = AugmentConfig(enabled=True, copies=3, p_mask=0.3, p_swap=0.3, p_ngram=0.0, seed=7)
    a = augment_record(REC, VOCAB, cfg, "[MASK]")
    b = augment_record(dict(REC), VOCAB, cfg, "[MASK]")
    assert a == b and 1 <= len(a) <= 3
    assert all(r["augmented"] and r["gold"] is None and r["id"].startswith("r1~aug") for r in a)
    other = augment_record(REC, VOCAB, cfg.model_copy(update={"seed": 8}), "[MASK]")
    assert [r["text"] for r in other] != [r["text"] for r in a]


def test_each_operation():
    words = REC["text"].split()
    masked = augment_text(REC["text"], VOCAB, rng_for(0, "x", 0), 1.0, 0.0, 0.0, "<mask>")
    assert masked == " ".join(["<mask>"] * len(words))
    swapped = augment_text(REC["text"], VOCAB, rng_for(0, "x", 0), 0.0, 1.0, 0.0)
    assert all(w in VOCAB for w in swapped.split()) and len(swapped.split()) == len(words)
    span = augment_text(REC["text"], VOCAB, rng_for(0, "x", 0), 0.0, 0.0, 1.0)
    assert 1 <= len(span.split()) <= 5 and span in REC["text"]
    assert augment_text(REC["text"], VOCAB, rng_for(0, "x", 0), 0.0, 0.0, 0.0) == REC["text"]


def test_copies_equal_to_the_original_are_dropped():
    cfg = AugmentConfig(enabled=True, copies=4, p_mask=0.0, p_swap=0.0, p_ngram=0.0)
    assert augment_record(REC, VOCAB, cfg, "[MASK]") == []


POOL = ["a fine cast", "dull and slow", "the ending"]


def test_join_keeps_the_row_and_adds_one_to_join_max_minus_one_partners():
    pool = ["AA", "BB", "CC"]  # one word each: what is left after taking the row's words out are the partners
    counts = set()
    for i in range(50):
        words = join_text("the plot", pool, rng_for(0, f"r{i}", 10_000), join_max=3).split()
        partners = [w for w in words if w not in ("the", "plot")]
        assert len(words) == 2 + len(partners) and set(partners) <= set(pool)
        counts.add(len(partners))
    assert counts == {1, 2}
    assert join_text("x", [], rng_for(0, "r", 0), 3) == "x"
    assert join_text("x", ["x"], rng_for(0, "r", 0), 3) == "x"  # its own text is not a partner


def test_joins_are_deterministic_and_independent_of_copies():
    cfg = AugmentConfig(enabled=True, copies=0, joins=2, seed=3)
    a = augment_record(REC, VOCAB, cfg, "[MASK]", POOL)
    assert [r["id"] for r in a] == ["r1~join0", "r1~join1"] or len(a) == 1  # a duplicate join is dropped
    assert all(REC["text"] in r["text"] and r["gold"] is None and r["augmented"] for r in a)
    with_copies = augment_record(REC, VOCAB, cfg.model_copy(update={"copies": 2, "p_mask": 0.5}), "[MASK]", POOL)
    assert [r for r in with_copies if "~join" in r["id"]] == a
    assert augment_record(dict(REC), VOCAB, cfg, "[MASK]", list(POOL)) == a


def test_augment_that_adds_nothing_is_a_config_error():
    with pytest.raises(ValidationError, match="copies: 0 and joins: 0"):
        AugmentConfig(enabled=True, copies=0, joins=0)
    AugmentConfig(enabled=False, copies=0)  # off: nothing to check
