import json

import pytest

from tests.student.compress.compress_fixtures import FULL_STEPS, compressed_stage
from zuoxiao.core.config import parse_config
from zuoxiao.core.config.views import CompressView, ShipView
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.paths import StagePaths
from zuoxiao.ship.stage import ship
from zuoxiao.student.compress.stage import compress


@pytest.fixture(scope="module")
def stage():
    return compressed_stage()


def test_every_step_recorded_and_shrinks_as_expected(stage):
    cfg, paths, result = stage
    names = [r["name"] for r in result["steps"]]
    assert names == ["student"] + [f"{i:02d}-{s['kind']}" for i, s in enumerate(FULL_STEPS, 1)]
    rec = {r["kind"]: r for r in result["steps"]}
    for r in result["steps"]:
        assert 0 <= r["accuracy"] <= 1 and r["n"] == 24 and 0 <= r["agreement"] <= 1
        assert r["bytes"] > 0 and r["latency_ms"]["b1"]["p50"] > 0 and r["latency_ms"]["b32"]["p95"] > 0
    # parameter counts: vocab 114 -> fewer rows of 32; heads 4 -> 2; FFN 64 -> 32; low rank 4
    p = [r["params"] for r in result["steps"]]
    assert p[0] > p[1] > p[2] > p[3] > p[4] and p[4] == p[5] == p[6] == p[7]
    assert rec["prune_heads"]["info"]["heads_after"] == [2, 2]
    assert rec["prune_neurons"]["info"]["intermediate_after"] == [32, 32]
    assert rec["low_rank"]["info"]["ranks"] == [4]
    assert rec["magnitude"]["bytes"] == rec["low_rank"]["bytes"]  # zeros in dense storage save nothing
    assert rec["quantize"]["runtime"] == "onnx-int8" and rec["quantize"]["info"]["onnx_max_abs_diff_vs_torch"] < 1e-4
    assert rec["student"]["accuracy"] == 1.0 and result["teacher"]["accuracy"] == 1.0
    for n in names[1:]:
        assert (paths.compress / n / "step.json").is_file() and (paths.compress / n / "config.resolved.yaml").is_file()
    md = (paths.compress / "report.md").read_text()
    assert "| teacher |" in md and "07-quantize" in md and "sparse storage" in md
    assert (paths.compress / "pareto.png").stat().st_size > 10_000


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="compress.gate moved to ship.gate"):
        parse_config({"label": {"input": {"path": "x"}}, "compress": {"gate": {"min_retention": 0.9}}})
    raw = {"label": {"input": {"path": "x"}}, "compress": {"steps": [{"kind": "quantize"}, {"kind": "vocab_trim"}]}}
    with pytest.raises(ConfigError, match="quantize must be the last step"):
        parse_config(raw)
    raw["compress"]["steps"] = [{"kind": "prune_layers", "keep": []}]
    with pytest.raises(ConfigError, match="keep is empty"):
        parse_config(raw)
    raw["compress"]["steps"] = [{"kind": "low_rank", "modules": ["(unclosed"]}]
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        parse_config(raw)


def test_missing_inputs_are_input_errors(tmp_path):
    cfg = parse_config({"output_dir": str(tmp_path), "label": {"input": {"path": "x"}},
                        "task": {"eval": {"path": str(tmp_path / "e.jsonl")}}})
    with pytest.raises(InputError, match="run `zuoxiao train CONFIG` first"):
        compress(CompressView.of(cfg), StagePaths(tmp_path))
    with pytest.raises(InputError, match="zuoxiao compress CONFIG"):
        (tmp_path / "student").mkdir()
        (tmp_path / "student" / "config.json").write_text("{}")
        ship(ShipView.of(cfg), StagePaths(tmp_path))


def test_torch_int8_and_layer_steps_ship_fp32_onnx(tmp_path):
    """quantize backend=torch is measured in the report; the bundle then ships the float graph."""
    from tests.student.compress.compress_fixtures import make_stage_root
    from zuoxiao.student.compress.latency import torch_threads

    with torch_threads(1):
        cfg, paths = make_stage_root(tmp_path, steps=[{"kind": "prune_layers", "keep": [1]},
                                                      {"kind": "quantize", "backend": "torch"}])
        compress(CompressView.of(cfg), paths)
        shipped = ship(ShipView.of(cfg), paths)
    result = json.loads((paths.compress / "report.json").read_text())
    kinds = [(r["name"], r["runtime"]) for r in result["steps"]]
    assert kinds == [("student", "torch"), ("01-prune_layers", "torch"), ("02-quantize", "torch-int8"),
                     ("03-export", "onnx")]
    assert result["steps"][1]["params"] < result["steps"][0]["params"]
    assert result["steps"][-1]["runtime"] == "onnx" and shipped.passed
    card = (paths.bundle / "README.md").read_text()
    assert "fp32 (no ONNX int8 step was configured)" in card
