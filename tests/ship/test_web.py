"""The bundle outside Python: the JS runtime (ship/web/zuoxiao-runtime.mjs) in Node with onnxruntime-node, and
the web page in headless Chromium, each against the bundle's own Python runtime (zuoxiao_bundle.py).

Needs js/node_modules (`(cd js && npm ci --ignore-scripts)`) and, for the page, /usr/bin/chromium (Debian
package `chromium`; playwright-core drives it, no browser download). Skipped with the reason when missing,
failed instead under ZUOXIAO_REQUIRE_JS=1 / ZUOXIAO_REQUIRE_BROWSER=1 (.ci/run sets them after installing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.ship.handoff_fixtures import CHROMIUM, ROOT, TEXTS, need, node_modules_dir, python_probs, texts
from tests.student.compress.compress_fixtures import compressed_stage

TOL = 1e-4
BULK_TOL = 1e-2  # WASM vs native int8 kernels, worst single text (see test_page_matches_python)
BROWSER_TEXTS = ["good movie", "boring actors was very dull", "Café crème brûlée — naïve 東京 😀", "",
                 "the plot was fun " * 20]  # last: far longer than max_length, truncated


@pytest.fixture(scope="module")
def node_modules():
    return node_modules_dir()


@pytest.fixture(scope="module")
def bundle_dir():
    return compressed_stage()[1].bundle


@pytest.fixture(scope="module")
def node_result(bundle_dir, node_modules):
    return run_node(bundle_dir, node_modules)


def run_node(bundle, node_modules, model=None) -> dict:
    cmd = ["node", str(ROOT / "js" / "parity.mjs"), str(bundle), str(TEXTS), "--node-modules", str(node_modules)]
    out = subprocess.run(cmd + (["--model", model] if model else []), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


def test_texts_cover_truncation_and_edge_cases(bundle_dir):
    from tokenizers import Tokenizer

    max_length = json.loads((bundle_dir / "config.json").read_text())["zuoxiao"]["max_length"]
    tok = Tokenizer.from_file(str(bundle_dir / "tokenizer.json"))
    tok.no_truncation()
    items = texts()
    assert len(items) == 200 and "" in items and any(len(w) > 100 for t in items for w in t.split())
    assert sum(len(tok.encode(t).ids) > max_length for t in items) >= 20, "too few texts over max_length"


def test_node_matches_python(bundle_dir, node_result):
    """200 texts, one per run as in the page: max |dp| <= 1e-4, same argmax, same token counts."""
    from tokenizers import Tokenizer

    items = texts()
    logits, probs, labels = python_probs(bundle_dir, items)
    js = node_result
    meta = json.loads((bundle_dir / "config.json").read_text())["zuoxiao"]
    assert js["labels"] == labels
    assert js["temperature"] == meta.get("temperature", 1.0) and js["max_length"] == meta["max_length"]
    tok = Tokenizer.from_file(str(bundle_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=meta["max_length"])
    tok.no_padding()
    assert [r["n_tokens"] for r in js["results"]] == [len(tok.encode(t).ids) for t in items]
    js_probs = np.array([r["probs"] for r in js["results"]])
    dp = np.abs(js_probs - probs).max()
    dl = np.abs(np.array([r["logits"] for r in js["results"]]) - logits).max()
    print(f"\nnode vs python on {len(items)} texts: max|dp| {dp:.3g}, max|dlogit| {dl:.3g}")
    assert dp <= TOL and dl <= TOL  # logits too: a confident model's probabilities hide small differences
    assert (js_probs.argmax(1) == probs.argmax(1)).all()
    assert [r["label"] for r in js["results"]] == [labels[i] for i in probs.argmax(1)]


def test_node_applies_the_temperature(node_result):
    """The JS probabilities are softmax(logits / T), not softmax(logits)."""
    t = node_result["temperature"]
    assert t != 1.0, "the tiny bundle is calibrated on task.dev: its temperature should not be exactly 1"
    for r in node_result["results"][:20]:
        z = np.array(r["logits"], np.float64) / t
        expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        assert np.abs(np.array(r["probs"]) - expected).max() < 1e-12


def test_node_runs_the_ort_format_model(bundle_dir, node_modules):
    """model.ort through onnxruntime-node (the engine ORT Mobile shares) equals the Python runtime."""
    js = run_node(bundle_dir, node_modules, model="model.ort")
    logits, probs, _ = python_probs(bundle_dir, texts())
    assert np.abs(np.array([r["probs"] for r in js["results"]]) - probs).max() <= TOL
    assert np.abs(np.array([r["logits"] for r in js["results"]]) - logits).max() <= TOL


@pytest.fixture(scope="module")
def chromium():
    need(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: apt-get install -y chromium", "ZUOXIAO_REQUIRE_BROWSER")
    return CHROMIUM


@pytest.fixture(scope="module")
def served(bundle_dir, node_modules, tmp_path_factory):
    """A copy of the bundle with the vendored page (whatever the shared bundle was built with), on 127.0.0.1."""
    from zuoxiao.ship.serve import serve_in_thread
    from zuoxiao.ship.web_assets import add_web_page

    b = tmp_path_factory.mktemp("web") / "bundle"
    shutil.copytree(bundle_dir, b)
    add_web_page(b, node_modules)
    server, url = serve_in_thread(b)
    yield b, url
    server.shutdown()
    server.server_close()


def browse(url, items, shot, node_modules, bulk=None, timeout_ms=90000) -> dict:
    items_file = shot.with_suffix(".json")
    items_file.write_text(json.dumps(items))
    cmd = ["node", str(ROOT / "js" / "browser_check.mjs"), "--url", url, "--texts", str(items_file),
           "--screenshot", str(shot), "--chromium", CHROMIUM, "--node-modules", str(node_modules),
           "--timeout-ms", str(timeout_ms)] + (["--bulk", str(bulk)] if bulk else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


def test_page_matches_python(served, chromium, node_modules, tmp_path):
    b, url = served
    shot = tmp_path / "web_demo.png"
    report = browse(f"{url}/web/index.html", BROWSER_TEXTS, shot, node_modules, bulk=TEXTS)
    print(f"\nchromium {report['browser_version']}: ready in {report['ready_ms']} ms; "
          f"per text {[r['ms'] for r in report['results']]} ms; screenshot {shot}")
    assert report["status"].startswith("Ready"), report["status"]
    assert report["external_requests"] == [], "the page must not reach outside its own host"
    assert report["page_errors"] == [] and report["console_errors"] == [], report
    assert report["wasm_content_type"] == "application/wasm"
    assert [r["text"] for r in report["results"]] == BROWSER_TEXTS

    _, probs, labels = python_probs(b, BROWSER_TEXTS)
    page_probs = np.array([r["probs"] for r in report["results"]])
    print(f"page vs python (typed): max|dp| {np.abs(page_probs - probs).max():.3g}")
    assert np.abs(page_probs - probs).max() <= TOL
    assert [r["label"] for r in report["results"]] == [labels[i] for i in probs.argmax(1)]
    assert all(r["label"] == r["dom_label"] for r in report["results"])

    # The 200 texts through the page's classifier run WASM int8 kernels, not the native ones: the graph
    # quantises activations at run time (DynamicQuantizeLinear) and WASM can round an activation to the
    # neighbouring int8 level, moving a rare text by up to ~1e-2 (1 in 200 in the prototype). Node is exact.
    # Logits are compared too: this tiny bundle is so confident that probabilities alone hide differences.
    bulk_logits, bulk_probs, _ = python_probs(b, texts())
    page_bulk = np.array([r["probs"] for r in report["bulk"]])
    per_text = np.abs(page_bulk - bulk_probs).max(1)
    dlogit = np.abs(np.array([r["logits"] for r in report["bulk"]]) - bulk_logits).max(1)
    off = int(((per_text > TOL) | (dlogit > TOL)).sum())
    print(f"page vs python on 200 texts ({report['bulk_ms']} ms): max|dp| {per_text.max():.3g}, "
          f"max|dlogit| {dlogit.max():.3g}, {off} over {TOL}")
    assert off <= 2 and per_text.max() <= BULK_TOL and dlogit.max() <= 0.1
    top2 = np.sort(bulk_probs, 1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * BULK_TOL  # an argmax may only flip on a near-tie
    assert (page_bulk.argmax(1) == bulk_probs.argmax(1))[clear].all()
    assert shot.is_file() and shot.stat().st_size > 1000


def test_page_reports_a_missing_model(served, chromium, node_modules, tmp_path):
    """A wrong ?model= shows an error in #status instead of hanging."""
    _, url = served
    report = browse(f"{url}/web/index.html?model=nope.onnx", [], tmp_path / "error.png", node_modules, timeout_ms=60000)
    assert "HTTP 404" in report["status"] and "nope.onnx" in report["status"]


def test_missing_tools_skip_with_the_install_hint(monkeypatch):
    monkeypatch.delenv("ZUOXIAO_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        need(False, "/nonexistent/chromium not found: apt-get install -y chromium", "ZUOXIAO_REQUIRE_BROWSER")
    monkeypatch.setenv("ZUOXIAO_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="ZUOXIAO_REQUIRE_BROWSER=1"):
        need(False, "chromium not found", "ZUOXIAO_REQUIRE_BROWSER")


# --- explanations (issue 30): the same words, offsets and attributions in Python, Node and the page ---------
EXPLAIN_TOL = 1e-3
EXPLAIN_TEXTS = 60  # the 44 edge cases of parity_texts.json and 16 word salads, most over max_length


@pytest.fixture(scope="module")
def hot_bundle(bundle_dir, node_modules, tmp_path_factory):
    """The tiny bundle at temperature 30: its calibrated probabilities are ~0/1, so every attribution would be
    0 and agree trivially; at T = 30 masking a word moves p by up to ~0.1."""
    from zuoxiao.ship.package import write_checksums
    from zuoxiao.ship.web_assets import add_web_page

    b = tmp_path_factory.mktemp("hot") / "bundle"
    shutil.copytree(bundle_dir, b)
    config = json.loads((b / "config.json").read_text())
    config["zuoxiao"]["temperature"] = 30.0
    (b / "config.json").write_text(json.dumps(config))
    add_web_page(b, node_modules)
    write_checksums(b)
    return b


def assert_same_explanations(py: list[dict], other: list[dict], who: str) -> float:
    worst = 0.0
    for i, (a, b) in enumerate(zip(py, other, strict=True)):
        where = f"{who} text {i}"
        assert (a["label"], a["words_total"]) == (b["label"], b["words_total"]), where
        assert [(w["word"], w["start"], w["end"]) for w in a["words"]] == \
               [(w["word"], w["start"], w["end"]) for w in b["words"]], where
        diffs = [abs(x["attribution"] - y["attribution"]) for x, y in zip(a["words"], b["words"], strict=True)]
        worst = max([worst, abs(a["probability"] - b["probability"]), *diffs])
    return worst


def test_node_explanations_match_python(hot_bundle, node_modules, tmp_path):
    items = texts()[:EXPLAIN_TEXTS]
    (tmp_path / "explain.json").write_text(json.dumps(items))
    cmd = ["node", str(ROOT / "js" / "parity.mjs"), str(hot_bundle), str(tmp_path / "explain.json"),
           "--explain", str(tmp_path / "explain.json"), "--node-modules", str(node_modules)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    from tests.ship.handoff_fixtures import load_runtime

    py = load_runtime(hot_bundle).Bundle.load(hot_bundle, threads=1).explain(items)
    worst = assert_same_explanations(py, json.loads(out.stdout)["explanations"], "node")
    biggest = max(abs(w["attribution"]) for e in py for w in e["words"])
    print(f"\nnode vs python explanations on {len(items)} texts: max|d| {worst:.3g} (largest attribution {biggest:.3g})")
    assert worst <= EXPLAIN_TOL and biggest > 0.02
    assert sum(e["words_total"] > len(e["words"]) for e in py) >= 5  # texts cut by max_length are covered


def test_page_highlights_words_like_python(hot_bundle, chromium, node_modules, tmp_path):
    from zuoxiao.ship.serve import serve_in_thread

    items = texts()[:EXPLAIN_TEXTS]
    (tmp_path / "explain.json").write_text(json.dumps(items))
    typed = ["boring actors was very dull", "good movie, love the story!"]
    server, url = serve_in_thread(hot_bundle)
    try:
        cmd = ["node", str(ROOT / "js" / "browser_check.mjs"), "--url", f"{url}/web/index.html", "--texts",
               str(tmp_path / "typed.json"), "--screenshot", str(tmp_path / "explain.png"), "--chromium", CHROMIUM,
               "--node-modules", str(node_modules), "--explain-bulk", str(tmp_path / "explain.json")]
        (tmp_path / "typed.json").write_text(json.dumps(typed))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["page_errors"] == [] and report["console_errors"] == [], report
    from tests.ship.handoff_fixtures import load_runtime

    runtime = load_runtime(hot_bundle).Bundle.load(hot_bundle, threads=1)
    worst = assert_same_explanations(runtime.explain(items), report["explanations"], "page")
    typed_worst = assert_same_explanations(runtime.explain(typed), [r["explanation"] for r in report["results"]], "typed")
    print(f"\npage vs python explanations: max|d| {worst:.3g} ({len(items)} texts), typed {typed_worst:.3g}")
    assert max(worst, typed_worst) <= EXPLAIN_TOL
    for r in report["results"]:  # one coloured span per explained word, the strongest at full colour
        assert [h["word"] for h in r["highlighted"]] == [w["word"] for w in r["explanation"]["words"]]
        strongest = max(r["highlighted"], key=lambda h: abs(h["attribution"]))
        assert strongest["background"] in ("rgb(48, 164, 108)", "rgb(229, 72, 77)"), strongest
