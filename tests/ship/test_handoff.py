"""What the bundle hands to non-Python app teams: model.ort (phones), web/ (browsers), checksums over both,
the model card's instructions, a consistent tokenizer.json and the `serve-page` server. No Node needed."""

from __future__ import annotations

import json
import shutil
import urllib.request

import numpy as np
import pytest

from tests.ship.handoff_fixtures import python_probs, texts
from tests.student.compress.compress_fixtures import compressed_stage
from zuoxiao.cli import main
from zuoxiao.core.errors import InputError, IntegrityError
from zuoxiao.ship.package import write_checksums
from zuoxiao.ship.runtime import Bundle, verify_checksums
from zuoxiao.ship.serve import serve_in_thread
from zuoxiao.ship.web_assets import PAGE_FILES, add_web_page


@pytest.fixture(scope="module")
def bundle_dir():
    return compressed_stage()[1].bundle


def test_bundle_carries_ort_model_and_web_page_under_checksums(bundle_dir):
    listed = {line.split(maxsplit=1)[1] for line in (bundle_dir / "SHA256SUMS").read_text().splitlines()}
    assert {"model.onnx", "model.ort", "required_operators.config", "README.md"} <= listed
    assert {f"web/{name}" for name in PAGE_FILES} <= listed  # subfolders are covered, as POSIX paths
    on_disk = {p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()}
    assert listed == on_disk - {"SHA256SUMS"}
    verify_checksums(bundle_dir)


def test_checksums_catch_a_changed_page_and_reject_paths_outside(bundle_dir, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(bundle_dir, b)
    (b / "web" / "app.js").write_text("alert('changed')")
    with pytest.raises(IntegrityError, match="web/app.js is missing or does not match"):
        Bundle.load(b)
    write_checksums(b)
    Bundle.load(b)  # rewritten sums verify again
    (b / "SHA256SUMS").write_text(f"{'0' * 64}  ../outside.txt\n")
    with pytest.raises(IntegrityError, match="outside the bundle"):
        verify_checksums(b)


def test_old_top_level_checksums_still_verify(bundle_dir, tmp_path):
    """Bundles built before subfolders were covered list top-level names only: they must still load."""
    b = tmp_path / "old"
    shutil.copytree(bundle_dir, b)
    lines = [ln for ln in (b / "SHA256SUMS").read_text().splitlines() if "/" not in ln.split(maxsplit=1)[1]]
    (b / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    Bundle.load(b).predict(["good movie"])


def test_tokenizer_json_limits_match_config(bundle_dir):
    """tokenizer.json's own truncation says zuoxiao.max_length (not the export's sample call) and no padding."""
    tok = json.loads((bundle_dir / "tokenizer.json").read_text())
    max_length = json.loads((bundle_dir / "config.json").read_text())["zuoxiao"]["max_length"]
    assert tok["truncation"]["max_length"] == max_length
    assert tok["padding"] is None


def test_model_card_has_browser_and_mobile_sections(bundle_dir):
    card = (bundle_dir / "README.md").read_text()
    meta = json.loads((bundle_dir / "config.json").read_text())["zuoxiao"]
    vocab = json.loads((bundle_dir / "tokenizer.json").read_text())["model"]["vocab"]
    assert "zuoxiao serve-page path/to/this/dir" in card and "python -m http.server" in card
    assert "## Running this model on Android and iOS" in card and "```kotlin" in card and "```swift" in card
    assert f"`zuoxiao.max_length` = {meta['max_length']}" in card
    assert f"(ids {vocab['[CLS]']} and {vocab['[SEP]']} in this vocab)" in card
    mobile = card[card.index("## Running this model on Android and iOS"):]
    assert ("`vocab.txt`" in mobile) == (bundle_dir / "vocab.txt").is_file()  # never point at a missing file
    for placeholder in ("{max_length}", "{temperature}", "{labels}", "{cls_id}", "{ort_version}"):
        assert placeholder not in card


@pytest.mark.parametrize("batch_size", [1, 16])
def test_ort_format_model_matches_onnx(bundle_dir, batch_size):
    """model.ort (what ORT Mobile loads) gives the outputs of model.onnx through the same runtime."""
    items = texts()
    onnx_logits, onnx_p, _ = python_probs(bundle_dir, items, batch_size=batch_size)
    ort_logits, ort_p, _ = python_probs(bundle_dir, items, "model.ort", batch_size=batch_size)
    print(f"\nbatch {batch_size}: max|dlogit| {np.abs(onnx_logits - ort_logits).max():.3g}, "
          f"max|dp| {np.abs(onnx_p - ort_p).max():.3g}")
    assert np.abs(onnx_p - ort_p).max() <= 1e-4 and np.abs(onnx_logits - ort_logits).max() <= 1e-4
    assert (onnx_p.argmax(1) == ort_p.argmax(1)).all()


def test_required_operators_config(bundle_dir):
    text = (bundle_dir / "required_operators.config").read_text()
    ops = {op for line in text.splitlines() if not line.startswith("#") for op in line.split(";")[2].split(",")}
    assert "Gather" in ops and ("DynamicQuantizeLinear" in ops or "DynamicQuantizeMatMul" in ops), ops
    assert "/tmp" not in text  # the converter's temporary paths are stripped


def test_page_without_node_modules_is_written_and_says_so(bundle_dir, tmp_path, monkeypatch):
    b = tmp_path / "b"
    shutil.copytree(bundle_dir, b)
    monkeypatch.setenv("ZUOXIAO_NODE_MODULES", str(tmp_path / "no_node_modules"))
    info = add_web_page(b)
    assert info["vendored"] is False and not (b / "web" / "vendor").exists()
    assert all((b / "web" / name).is_file() for name in PAGE_FILES)
    from zuoxiao.ship.card import _browser_section

    assert "npm ci --ignore-scripts" in _browser_section(info)


def test_server_content_types(bundle_dir):
    server, url = serve_in_thread(bundle_dir)
    try:
        for path, expected in [("/web/zuoxiao-runtime.mjs", "text/javascript"), ("/web/app.js", "text/javascript"),
                               ("/web/index.html", "text/html"), ("/config.json", "application/json")]:
            req = urllib.request.Request(url + path, method="HEAD")  # HEAD: no body left unread
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200 and r.headers["Content-Type"].split(";")[0] == expected, path
        from zuoxiao.ship.serve import MIME

        assert MIME[".wasm"] == "application/wasm"
    finally:
        server.shutdown()
        server.server_close()


def test_serve_page_rejects_a_non_bundle(tmp_path, capsys):
    with pytest.raises(InputError, match="not a bundle"):
        serve_in_thread(tmp_path)
    assert main(["serve-page", str(tmp_path), "--port", "0"]) == 2
    assert "not a bundle" in capsys.readouterr().err


def test_model_card_states_explanations_and_optimum(bundle_dir):
    """The card states the explanation method and its cost bound, and how Optimum users apply the temperature."""
    card = (bundle_dir / "README.md").read_text()
    t = json.loads((bundle_dir / "config.json").read_text())["zuoxiao"]["temperature"]
    assert "## Why this label: word attributions" in card and "capped at **64 words**" in card
    assert "at most 65x the work of one prediction" in card and "--explain" in card
    assert "ORTModelForSequenceClassification" in card and "optimum-onnx 0.1 and transformers 4.57" in card
    assert f"**T = {t:.6g}**" in card and f"torch.softmax(logits / {t:.6g}, dim=-1)" in card
    assert "not tested" not in card
