import json
import shutil

import numpy as np
import pytest
import yaml

from tests.student.compress.compress_fixtures import FULL_STEPS, compressed_stage
from zuoxiao.cli import main
from zuoxiao.core.config import parse_config
from zuoxiao.core.errors import EXIT_GATE_FAILED, ConfigError, GateFailed, InputError
from zuoxiao.core.paths import StagePaths
from zuoxiao.ship.runtime import Bundle
from zuoxiao.student.compress.stage import compress, export_bundle


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


def test_bundle_published_with_card_and_gate(stage):
    cfg, paths, result = stage
    assert result["gate"]["passed"] and result["bundle"] == str(paths.bundle)
    files = {p.name for p in paths.bundle.iterdir()}
    assert {"model.onnx", "tokenizer.json", "config.json", "README.md", "metrics.json", "SHA256SUMS", "config.resolved.yaml",
            "report.md", "pareto.png", "zuoxiao_bundle.py", "vocab.txt"} <= files
    card = (paths.bundle / "README.md").read_text()
    assert "tiny-sentiment" in card and "calibration error" in card and "disagree" in card and "PASSED" in card
    metrics = json.loads((paths.bundle / "metrics.json").read_text())
    assert metrics["bundle"]["accuracy"] == result["final"]["accuracy"]
    cfgjson = json.loads((paths.bundle / "config.json").read_text())
    assert cfgjson["id2label"] == {"0": "neg", "1": "pos"} and cfgjson["zuoxiao"]["max_length"] == 16
    assert not list(paths.root.glob(".bundle.*"))
    # calibration: a temperature fitted on task.dev, applied by predict(), label unchanged
    t = cfgjson["zuoxiao"]["temperature"]
    assert t > 0 and metrics["bundle"]["temperature"] == t and "task.dev" in metrics["bundle"]["calibrated_on"]
    assert "fitted on task.dev" in card
    b = Bundle.load(paths.bundle)
    logits = b.logits(["good fun movie", "awful boring film"])
    z = logits / t
    want = np.exp(z - z.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    got = b.predict(["good fun movie", "awful boring film"])
    for row, w, raw in zip(got, want, logits, strict=True):
        assert [row["probabilities"][n] for n in ("neg", "pos")] == pytest.approx(w, abs=1e-5)
        assert row["label"] == ("neg", "pos")[int(raw.argmax())]


def test_gate_blocks_and_publishes_nothing(stage, tmp_path):
    cfg, paths, _ = stage
    before = (paths.bundle / "SHA256SUMS").read_text()
    strict = cfg.model_copy(deep=True)
    strict.compress.gate.max_size_mb = 0.001
    with pytest.raises(GateFailed, match="max_size_mb FAILED"):
        export_bundle(strict, paths)
    assert (paths.bundle / "SHA256SUMS").read_text() == before  # the old bundle is untouched
    assert not list(paths.root.glob(".bundle.*"))
    # with no previous bundle, none appears
    moved = tmp_path / "old-bundle"
    shutil.move(paths.bundle, moved)
    try:
        with pytest.raises(GateFailed):
            export_bundle(strict, paths)
        assert not paths.bundle.exists()
        export_bundle(cfg, paths)  # the configured gate passes again and re-publishes
        assert Bundle.load(paths.bundle).predict(["good movie"])[0]["label"] in {"neg", "pos"}
    finally:
        if not paths.bundle.exists():
            shutil.move(moved, paths.bundle)


def test_cli_exit_code_3_and_reason(stage, tmp_path, capsys):
    cfg, paths, _ = stage
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    code = main(["export", str(path), "--set", "compress.gate.max_latency_ms_p50=0.00001",
                 "--set", "compress.gate.min_retention=1.2"])
    out = capsys.readouterr()
    assert code == EXIT_GATE_FAILED
    assert "max_latency_ms_p50 FAILED" in out.out + out.err and "nothing was published" in out.err
    assert "min_retention FAILED" in out.out + out.err


def test_config_errors_are_clear():
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
        compress(cfg, StagePaths(tmp_path))
    with pytest.raises(InputError, match="zuoxiao compress CONFIG"):
        (tmp_path / "student").mkdir()
        (tmp_path / "student" / "config.json").write_text("{}")
        export_bundle(cfg, StagePaths(tmp_path))


def test_torch_int8_and_layer_steps_ship_fp32_onnx(tmp_path):
    """quantize backend=torch is measured in the report; the bundle then ships the float graph."""
    from tests.student.compress.compress_fixtures import make_stage_root
    from zuoxiao.student.compress.latency import torch_threads

    with torch_threads(1):
        cfg, paths = make_stage_root(tmp_path, steps=[{"kind": "prune_layers", "keep": [1]},
                                                      {"kind": "quantize", "backend": "torch"}])
        result = compress(cfg, paths)
    kinds = [(r["name"], r["runtime"]) for r in result["steps"]]
    assert kinds == [("student", "torch"), ("01-prune_layers", "torch"), ("02-quantize", "torch-int8"),
                     ("03-export", "onnx")]
    assert result["steps"][1]["params"] < result["steps"][0]["params"]
    assert result["final"]["runtime"] == "onnx"
    card = (paths.bundle / "README.md").read_text()
    assert "fp32 (no ONNX int8 step was configured)" in card
