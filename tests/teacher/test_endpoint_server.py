"""The served teacher against a REAL server started here on 127.0.0.1: llama-cpp-python's OpenAI-compatible
server on the embedded SmolLM2 GGUF (bench/served_teacher.py LlamaServer).

Skipped (with the reason) when llama-cpp-python[server] is not installed, unless ZUOXIAO_REQUIRE_LLM_SERVER
is set (CI sets it when `make llm-server` succeeded): then a missing server is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from served_teacher import LlamaServer, endpoint_config, launch_teacher, llama_server_available  # noqa: E402

if not llama_server_available():
    if os.environ.get("ZUOXIAO_REQUIRE_LLM_SERVER"):
        raise RuntimeError("ZUOXIAO_REQUIRE_LLM_SERVER is set but llama-cpp-python[server] is not importable: "
                           "run `make llm-server`")
    pytest.skip("llama-cpp-python[server] is not installed (make llm-server); the served-teacher tests on a real "
                "server are skipped", allow_module_level=True)

KEY = "sk-served-test-5c0ffee5"
TEXTS = ["a gripping , beautifully acted film", "the plot is dull and the jokes fall flat",
         "i loved every minute of it", "a tedious , overlong mess", "it 's fine , nothing special",
         "one of the best movies of the year", "bad acting and a worse script", "charming and funny"]


@pytest.fixture(scope="module")
def server():
    os.environ["ZX_SERVED_KEY"] = KEY
    with LlamaServer(api_key=KEY) as srv:
        yield srv
    os.environ.pop("ZX_SERVED_KEY", None)


def _in_process(cfg):
    """The causal_lm teacher on the same model (the GGUF de-quantised into torch fp32) and prompt."""
    from zuoxiao.core.config import parse_config

    raw = cfg.model_dump(mode="json")
    raw["label"]["teacher"].update(kind="causal_lm", endpoint=None, num_threads=2)
    cfg2 = parse_config(raw)
    return launch_teacher(cfg2)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_served_soft_labels_match_the_in_process_teacher(server, api):
    cfg = endpoint_config(server.url, api=api, api_key_env="ZX_SERVED_KEY", concurrency=4)
    served = launch_teacher(cfg)
    got = np.exp(served.predict_texts(TEXTS))
    want = np.exp(_in_process(cfg).predict_texts(TEXTS))
    diff = float(np.abs(got - want).max())
    print(f"\n{api}: served vs in-process soft labels, max |dp| = {diff:.2e}; served {got[:, 1].round(4).tolist()} "
          f"in-process {want[:, 1].round(4).tolist()}; words below top-k: {served.below_top_k}")
    assert served.below_top_k == 0  # every verbaliser word came back: full verbaliser log-probs
    assert (got.argmax(1) == want.argmax(1)).all()
    # NOT within 1e-3: llama.cpp multiplies the Q4_1 weights with Q8-quantised activations, torch runs the
    # de-quantised weights in fp32; measured max |dp| 0.040 on these 8 rows (docs/label.md, "A served teacher")
    assert diff < 0.06
    # ...so the exact check is against the server's own log-probs: one raw request, normalised by hand
    import json as _json
    import urllib.request

    if api != "completions":  # chat: the server rendered the same template (equal soft labels above)
        return
    text = TEXTS[0]
    body = {"model": "smollm2", "max_tokens": 1, "temperature": 0.0, "logprobs": 20,
            "prompt": served._head + text + served._tail}
    req = urllib.request.Request(f"{server.url}/completions", data=_json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    top = _json.loads(urllib.request.urlopen(req, timeout=60).read())["choices"][0]["logprobs"]["top_logprobs"][0]
    p = {c: sum(np.exp(top[w]) for w in ws) for c, ws in enumerate([["negative", "Negative"], ["positive", "Positive"]])}
    np.testing.assert_allclose(got[0], [p[0] / (p[0] + p[1]), p[1] / (p[0] + p[1])], atol=1e-6)


def _run(cfg_path: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zuoxiao.cli", "run", str(cfg_path)], capture_output=True,
                          text=True, env=env, timeout=600)


def test_server_killed_mid_run_fails_clearly_and_rerun_completes_from_cache(server, tmp_path):
    rows = [(f"{t} ({i})", str(i % 2)) for i, t in enumerate(TEXTS * 5)]  # 40 distinct rows
    (tmp_path / "in.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    cfg = endpoint_config(server.url, str(tmp_path / "in.tsv"), concurrency=1, output_dir=str(tmp_path / "out"),
                          api_key_env="ZX_SERVED_KEY", max_retries=2, backoff_s=0.2, timeout_s=20)
    raw = cfg.model_dump(mode="json")
    raw["label"]["batch_size"] = 4
    raw["run"]["stages"] = ["label"]
    cfg_path = tmp_path / "c.json"  # YAML is a superset of JSON
    cfg_path.write_text(json.dumps(raw))
    env = {**os.environ, "ZX_SERVED_KEY": KEY, "HF_HUB_OFFLINE": "1"}

    before = server.requests()
    proc = subprocess.Popen([sys.executable, "-m", "zuoxiao.cli", "run", str(cfg_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while server.requests() - before < 12 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    server.kill()  # mid-run: the probe and ~11 rows answered, ~29 to go
    out, err = proc.communicate(timeout=300)
    try:
        assert proc.returncode == 2, err[-3000:]
        assert "did not answer after 3 attempts" in err and server.url in err and "Traceback" not in err
        cached = list((tmp_path / "out" / "cache").rglob("*-endpoint.parquet"))
        assert cached, "no answered batch reached the cache"
    finally:
        server.start()  # the module's other tests (and the rerun) need it back
    again = _run(cfg_path, env)
    assert again.returncode == 0, again.stderr[-3000:]
    label = next((tmp_path / "out").rglob("label/manifest.json"))
    m = json.loads(label.read_text())
    c = m["counts"]
    assert c["labeled"] == 40 and c["cache_hits"] >= 4 and c["cache_hits"] + c["cache_misses"] == 40
    assert c["cache_hits"] <= 12 and c["teacher_rows"] == c["cache_misses"]
    for text in (label.read_text(), out, err, again.stdout, again.stderr, server.log.read_text(errors="replace")):
        assert KEY not in text
