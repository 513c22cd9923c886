"""The gate's verdicts, computed by hand: bounds, and the always-on refusal of non-finite outputs."""

from zuoxiao.core.config.ship import GateConfig
from zuoxiao.ship.gate import check_gate, gate_message

SHIPPED = {"accuracy": 0.9, "bytes": 2_000_000, "latency_ms": {"b1": {"p50": 3.0}}, "non_finite_rows": 0}
REPORT = {"teacher": {"accuracy": 0.95}}


def test_bounds_are_checked_with_the_real_numbers():
    g = check_gate(GateConfig(min_retention=0.95, max_size_mb=1.5, max_latency_ms_p50=5), REPORT, SHIPPED)
    checks = {c["name"]: c for c in g["checks"]}
    assert checks["min_retention"]["value"] == 0.9 / 0.95 and not checks["min_retention"]["ok"]
    assert not checks["max_size_mb"]["ok"] and checks["max_latency_ms_p50"]["ok"] and not g["passed"]
    assert "min_retention FAILED" in gate_message(g)


def test_a_model_with_nan_outputs_never_ships_even_without_bounds():
    """Issue 8 case 2: with no accuracy floor a NaN model used to pass."""
    open_gate = GateConfig(min_retention=None)
    assert check_gate(open_gate, REPORT, SHIPPED)["passed"]
    g = check_gate(open_gate, REPORT, {**SHIPPED, "non_finite_rows": 3})
    assert not g["passed"] and "3 eval rows with NaN/inf logits" in gate_message(g)


def test_retention_on_the_floor_passes_as_shown():
    """Seen on a 502-row eval set: bundle 0.30279 (stored to 5 decimals) over teacher 152+8 = 160/502 read
    0.949989 and failed min_retention 0.95 while the gate line printed '= 0.9500'. Compared as shown now;
    one eval row fewer (151/502) still fails."""
    report = {"teacher": {"accuracy": 160 / 502}}
    at_floor = check_gate(GateConfig(min_retention=0.95), report, {**SHIPPED, "accuracy": 0.30278538})
    assert at_floor["passed"] and "= 0.9500" in gate_message(at_floor)
    below = check_gate(GateConfig(min_retention=0.95), report, {**SHIPPED, "accuracy": 151 / 502})
    assert not below["passed"]
