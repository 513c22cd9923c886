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
