from zuoxiao.core.config import AugmentConfig
from zuoxiao.teacher.augment import augment_record, augment_text, rng_for

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
