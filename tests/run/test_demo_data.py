"""The demo task is deterministic and has the promised properties."""

from __future__ import annotations

import json
import re
from collections import Counter

from zuoxiao.run.demo_data import GENERATOR_VERSION, SPLITS, generate, write_demo_data
from zuoxiao.run.demo_templates import HELD_OUT, INTENTS, TEMPLATES


def test_deterministic_and_cached_on_disk(tmp_path):
    a, b = generate(seed=3, n_gold=80, n_unlabeled=200, n_test=80), generate(seed=3, n_gold=80, n_unlabeled=200,
                                                                             n_test=80)
    assert a == b
    assert generate(seed=4, n_gold=80, n_unlabeled=200, n_test=80) != a
    meta = write_demo_data(tmp_path, seed=3, n_gold=80, n_unlabeled=200, n_test=80)
    assert meta["regenerated"] and meta["generator_version"] == GENERATOR_VERSION
    before = {s: (tmp_path / f"{s}.jsonl").read_bytes() for s in SPLITS}
    again = write_demo_data(tmp_path, seed=3, n_gold=80, n_unlabeled=200, n_test=80)
    assert not again["regenerated"]  # same version and sizes: left alone
    assert {s: (tmp_path / f"{s}.jsonl").read_bytes() for s in SPLITS} == before
    rows = [json.loads(x) for x in before["test"].decode().splitlines()]
    assert rows == a["test"] and set(rows[0]) == {"id", "text", "label"}
    assert write_demo_data(tmp_path, seed=3, n_gold=81, n_unlabeled=200, n_test=80)["regenerated"]


def test_realistic_properties():
    d = generate(seed=0)
    assert {k: len(v) for k, v in d.items()} == {"gold": 640, "unlabeled": 4000, "test": 800, "dev": 0}
    assert generate(seed=0, n_dev=40)["test"] == d["test"]  # the dev split comes last: others unchanged
    texts = [r["text"] for rows in d.values() for r in rows]
    assert len({t.lower() for t in texts}) == len(texts)  # no leakage between splits
    ids = [r["id"] for rows in d.values() for r in rows]
    assert len(set(ids)) == len(ids)
    test_counts = Counter(r["label"] for r in d["test"])
    assert set(test_counts) == set(INTENTS) and len(INTENTS) == 8 and set(test_counts.values()) == {100}
    # varied casing and phrasing
    assert sum(t == t.lower() for t in texts) > 0.2 * len(texts)
    assert sum(t == t.upper() for t in texts) > 0.02 * len(texts)
    assert len({t.split()[0].lower() for t in texts}) > 50
    # label noise: a few percent in the training splits, none in the test split (it measures)
    truth = generate(seed=0, keep_truth=True)
    assert [{k: v for k, v in r.items() if k not in ("true_label", "held_out")} for r in truth["gold"]] == d["gold"]
    truth["dev"] = generate(seed=0, keep_truth=True, n_dev=200)["dev"]
    for split, lo, hi in (("gold", 0.01, 0.06), ("unlabeled", 0.015, 0.05), ("test", 0, 0), ("dev", 0, 0)):
        rate = sum(r["label"] != r["true_label"] for r in truth[split]) / len(truth[split])
        assert lo <= rate <= hi, (split, rate)
    # typos: some words are not in the generator's vocabulary
    from zuoxiao.run.demo_templates import CONTEXTS, GREETINGS, SIGNOFFS, SLOTS

    vocab = {w.lower().strip(".,!?:()'") for src in (*TEMPLATES.values(), *HELD_OUT.values(), CONTEXTS, GREETINGS,
                                                     SIGNOFFS, *SLOTS.values())
             for t in src for w in t.replace("{", " ").replace("}", " ").split()}
    typoed = sum(any(w.lower().strip(".,!?:()'") not in vocab for w in t.split()) for t in texts)
    assert 0.2 < typoed / len(texts) < 0.7


def _matcher(template: str) -> re.Pattern:
    """A template as a regex over lowercased generated text: slots match anything, the template's longer words
    must appear in order. A keyboard typo in one of them hides that row from it (the held_out flag covers it)."""
    words = [re.escape(w.lower()) for w in re.sub(r"\{\w+\}", " ", template).split() if len(w) > 3]
    return re.compile(".*".join(words))


def test_held_out_phrasings_never_reach_gold():
    """The story of the demo: gold shows some phrasings of each intent, the transfer set and the measured
    splits also hold phrasings gold never saw, and only the teacher's labels teach them to the student."""
    assert set(HELD_OUT) == set(TEMPLATES) == set(INTENTS)
    for intent in INTENTS:
        assert len(HELD_OUT[intent]) >= 10 and not set(HELD_OUT[intent]) & set(TEMPLATES[intent])
    all_held = {t for ts in HELD_OUT.values() for t in ts}
    assert not all_held & {t for ts in TEMPLATES.values() for t in ts}
    d = generate(seed=0, n_dev=400, keep_truth=True)
    for split, rows in d.items():
        share = sum(r["held_out"] for r in rows) / len(rows)
        if split == "gold":
            assert share == 0
        else:  # half of every intent: the measured splits show both what gold taught and what it did not
            assert share == 0.5, (split, share)
            for intent in INTENTS:
                mine = [r for r in rows if r["true_label"] == intent]
                assert sum(r["held_out"] for r in mine) == len(mine) // 2, (split, intent)
    # on the text itself, not only the flag: no gold message carries a held-out phrasing, and every
    # held-out phrasing shows up in the transfer set (some of its rows are typo-free, so all words survive)
    matchers = {t: _matcher(t) for t in all_held}
    for r in d["gold"]:
        hits = [t for t, m in matchers.items() if m.search(r["text"].lower())]
        assert not hits, (r["text"], hits)
    used = {t for t, m in matchers.items() for r in d["unlabeled"] if r["held_out"] and m.search(r["text"].lower())}
    assert used == all_held
