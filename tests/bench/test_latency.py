"""bench/latency.py's schedule: who runs when, and which calls are counted."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from latency import schedule  # noqa: E402


def test_per_call_schedule_alternates_and_counts_every_call_after_warmup():
    order = []
    times = schedule({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, runs=4, block=1)
    assert order == ["a", "b"] * 7  # 3 warm-up rounds + 4 counted
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}


def test_block_schedule_drops_each_blocks_first_call():
    order = []
    times = schedule({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, runs=5, block=3)
    # 3 warm-up rounds, then 2 counted per block: 3 rounds give 6 >= 5 of each
    assert order == (["a"] * 3 + ["b"] * 3) * 6
    assert {k: len(v) for k, v in times.items()} == {"a": 5, "b": 5}


def test_repeat_reports_the_median_ratio_its_range_and_the_median_repeats_detail(monkeypatch):
    import latency

    ratios = iter([0.07, 0.042, 0.053])

    def fake(*args, **kw):
        r = next(ratios)
        return {"latency_ratio": r, "latency_ratio_with_tokenizer": r + 0.01, "latency_ratio_per_call": r + 0.02,
                "latency_ratio_per_call_with_tokenizer": r + 0.03, "warm": {"tag": r}, "per_call": {"tag": r}}

    monkeypatch.setattr(latency, "both_schedules", fake)
    out = latency.repeated(object(), ["x"], runs=5, block=2, repeat=3)
    assert out["latency_ratio"] == 0.053 and out["latency_ratio_with_tokenizer"] == 0.063
    assert out["latency_ratio_range"] == [0.042, 0.07] and out["warm"] == {"tag": 0.053}
    assert [r["latency_ratio"] for r in out["repeats"]] == [0.07, 0.042, 0.053]
