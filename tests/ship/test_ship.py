"""The ship stage on the tiny compressed job: bundle contents, model card, calibration, the gate."""

import json
import shutil

import numpy as np
import pytest
import yaml

from tests.student.compress.compress_fixtures import compressed_stage
from zuoxiao.cli import main
from zuoxiao.core.config.views import ShipView
from zuoxiao.core.errors import EXIT_GATE_FAILED, GateFailed
from zuoxiao.ship.runtime import Bundle
from zuoxiao.ship.stage import ship


@pytest.fixture(scope="module")
def stage():
    return compressed_stage()


def test_bundle_published_with_card_and_gate(stage):
    cfg, paths, result = stage
    assert result["ship"].passed and result["ship"].bundle == str(paths.bundle)
    files = {p.name for p in paths.bundle.iterdir()}
    assert {"model.onnx", "tokenizer.json", "config.json", "README.md", "metrics.json", "SHA256SUMS", "config.resolved.yaml",
            "report.md", "pareto.png", "zuoxiao_bundle.py", "vocab.txt"} <= files
    card = (paths.bundle / "README.md").read_text()
    assert "tiny-sentiment" in card and "calibration error" in card and "disagree" in card and "PASSED" in card
    metrics = json.loads((paths.bundle / "metrics.json").read_text())
    # FULL_STEPS quantises with embedding_bits: 4; the card says so
    assert metrics["bundle"]["embedding_bits"] == 4 and "word-embedding table at 4 bits" in card
    assert metrics["bundle"]["accuracy"] == result["ship"].accuracy
    # latency is reported with the CPU it ran on (int8 speed depends on VNNI)
    machine = metrics["bundle"]["latency_measured_on"]
    assert machine["cores"] >= 1 and f"CPU: {machine['cpu']}" in card and "int8 dot-product" in card
    cfgjson = json.loads((paths.bundle / "config.json").read_text())
    assert cfgjson["id2label"] == {"0": "neg", "1": "pos"} and cfgjson["zuoxiao"]["max_length"] == 16
    assert not list(paths.root.glob(".bundle.*"))
    # tokenizer.json ships compact (one line: no indentation bytes) and still says max_length, no padding
    tok_text = (paths.bundle / "tokenizer.json").read_text()
    assert "\n" not in tok_text.strip()
    tok = json.loads(tok_text)
    assert tok["truncation"]["max_length"] == 16 and tok["padding"] is None
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
    strict.ship.gate.max_size_mb = 0.001
    with pytest.raises(GateFailed, match="max_size_mb FAILED"):
        ship(ShipView.of(strict), paths)
    assert (paths.bundle / "SHA256SUMS").read_text() == before  # the old bundle is untouched
    assert not list(paths.root.glob(".bundle.*"))
    # with no previous bundle, none appears
    moved = tmp_path / "old-bundle"
    shutil.move(paths.bundle, moved)
    try:
        with pytest.raises(GateFailed):
            ship(ShipView.of(strict), paths)
        assert not paths.bundle.exists()
        ship(ShipView.of(cfg), paths)  # the configured gate passes again and re-publishes
        assert Bundle.load(paths.bundle).predict(["good movie"])[0]["label"] in {"neg", "pos"}
    finally:
        if not paths.bundle.exists():
            shutil.move(moved, paths.bundle)


def test_cli_exit_code_3_and_reason(stage, tmp_path, capsys):
    cfg, paths, _ = stage
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    code = main(["export", str(path), "--set", "ship.gate.max_latency_ms_p50=0.00001",
                 "--set", "ship.gate.min_retention=1.2"])
    out = capsys.readouterr()
    assert code == EXIT_GATE_FAILED
    assert "max_latency_ms_p50 FAILED" in out.out + out.err and "nothing was published" in out.err
    assert "min_retention FAILED" in out.out + out.err
