"""The served teacher (teacher/endpoint.py) against a scripted server on 127.0.0.1: hand-computed soft labels,
calibration, dead letters, the cache, the fingerprint, and an API key that never reaches the manifest or logs."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from tests.teacher.fake_openai import FakeOpenAI, completion
from tests.teacher.tiny_llm import save_tiny_llm
from zuoxiao.core.config import parse_config
from zuoxiao.core.errors import ConfigError

KEY = "sk-zx-test-7d1f0c9e4b2a"
ROWS = [("i love this story", "pos"), ("great fun", "pos"), ("boring", "neg"), ("i hate it", "neg"),
        ("the plot was awful", "neg"), ("a great movie", "pos"), ("not good", "neg"), ("very good film", "pos")]


def sentiment(path, body, headers):
    """p(good) 0.6 / p(bad) 0.2 for rows with 'great' or 'love', swapped otherwise; rows with 'awful': HTTP 400."""
    prompt = body.get("prompt") or json.dumps(body.get("messages"))
    row = prompt.rsplit("review : ", 1)[-1]
    if "awful" in row:
        return 400, {"error": "prompt rejected by the content filter"}
    pos = "great" in row or "love" in row
    api = "completions" if "prompt" in body else "chat"
    return 200, completion({"good": 0.6 if pos else 0.2, "bad": 0.2 if pos else 0.6, "the": 0.1}, api)


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    return save_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny-llama")


def cfg_for(tmp_path, llm_dir, url, api="completions", **llm):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "label": y, "id": f"r{i}"}) + "\n"
                                               for i, (t, y) in enumerate(ROWS)))
    return parse_config({"output_dir": str(tmp_path / "o"), "task": {"label_names": ["neg", "pos"]},
                         "label": {"input": {"path": str(tmp_path / "in.jsonl"), "id_column": "id"},
                                   "teacher": {"kind": "endpoint", "path": str(llm_dir), "max_length": 32,
                                               "endpoint": {"base_url": url, "api": api, "model": "fake-model",
                                                            "api_key_env": "ZX_KEY", "concurrency": 3,
                                                            "max_retries": 1, "backoff_s": 0.01},
                                               "llm": {"system": "review is good or bad",
                                                       "prompt": "review : {text}",
                                                       "verbalizers": {"neg": ["bad"], "pos": ["good"]}, **llm}},
                                   "batch_size": 3},
                         "train": {"student": {"kind": "config"}}})


def launch(cfg, label_names=("neg", "pos")):
    """The label stage's launcher teacher (examples drawn, prior fitted), as pipelines/label.py loads it."""
    from zuoxiao.core.config.views import LabelView
    from zuoxiao.pipelines.label_teacher import launch_teacher, teacher_path_of

    view = LabelView.of(cfg)
    return launch_teacher(view, teacher_path_of(view, None), list(label_names))


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("ZX_KEY", KEY)
    monkeypatch.setenv("ZUOXIAO_CACHE_DIR", str(tmp_path / "zxcache"))


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_soft_labels_are_the_verbalizer_logprobs_normalised(tmp_path, llm_dir, api):
    with FakeOpenAI(sentiment) as srv:
        cfg = cfg_for(tmp_path, llm_dir, srv.url, api)
        t = launch(cfg)
        got = t.predict_texts(["a great movie", "boring", "the plot was awful"])
    # 0.6 / (0.6 + 0.2) = 0.75 for the favoured label; the 400 row is NaN (a dead letter in the stage)
    np.testing.assert_allclose(got[:2], np.log([[0.25, 0.75], [0.75, 0.25]]), atol=1e-6)
    assert np.isnan(got[2]).all()
    sent = next(b for b in srv.posts() if "awful" in json.dumps(b))  # 3 in flight: any order
    assert sent["max_tokens"] == 1 and sent["model"] == "fake-model"
    if api == "completions":  # the chat is rendered with the tokenizer's template, exactly once per row
        assert sent["prompt"] == ("<|im_start|>system\nreview is good or bad<|im_end|>\n<|im_start|>user\n"
                                  "review : the plot was awful<|im_end|>\n<|im_start|>assistant\n")
        assert sent["logprobs"] == 20
    else:
        assert sent["messages"][-1] == {"role": "user", "content": "review : the plot was awful"}
        assert sent["logprobs"] is True and sent["top_logprobs"] == 20


def test_missing_word_gets_the_smallest_returned_logprob(tmp_path, llm_dir):
    with FakeOpenAI(lambda p, b, h: (200, completion({"good": 0.5, "the": 0.3, "a": 0.1}))) as srv:
        cfg = cfg_for(tmp_path, llm_dir, srv.url)
        t = launch(cfg)
        got = t.predict_texts(["boring"])
    np.testing.assert_allclose(np.exp(got[0]), [0.1 / 0.6, 0.5 / 0.6], atol=1e-6)  # bad scored at p=0.1
    assert t.below_top_k == 2  # the probe row and this one


def test_content_free_calibration_divides_out_the_prior(tmp_path, llm_dir):
    def respond(path, body, headers):  # content-free inputs: p(good) 0.6, p(bad) 0.4; rows: 0.5 / 0.5
        row = body["prompt"].rsplit("review : ", 1)[-1].split("<|im_end|>")[0]
        top = {"good": 0.6, "bad": 0.4} if row in ("N/A", "", "[MASK]") else {"good": 0.5, "bad": 0.5}
        return 200, completion(top)

    with FakeOpenAI(respond) as srv:
        cfg = cfg_for(tmp_path, llm_dir, srv.url, calibration="content_free")
        t = launch(cfg)
        got = t.predict_texts(["boring"])
    np.testing.assert_allclose(t.recipe["log_prior"], np.log([0.4, 0.6]), atol=1e-6)
    # (0.5 / 0.4, 0.5 / 0.6) renormalised = (0.6, 0.4)
    np.testing.assert_allclose(np.exp(got[0]), [0.6, 0.4], atol=1e-6)


def test_fingerprint_has_model_name_and_server_model_id_not_transport(tmp_path, llm_dir):
    def fp(model_id, **endpoint):
        with FakeOpenAI(sentiment, model_id=model_id) as srv:
            cfg = cfg_for(tmp_path, llm_dir, srv.url)
            for k, v in endpoint.items():
                setattr(cfg.label.teacher.endpoint, k, v)
            return launch(cfg)

    a = fp("fake-model")
    assert a.recipe["server_model_id"] == "fake-model"
    assert fp("fake-model", concurrency=7, timeout_s=3).fingerprint() == a.fingerprint()  # another port too
    assert fp("other-weights").fingerprint() != a.fingerprint()  # the only model served: its id counts
    assert fp("fake-model", model="renamed").fingerprint() != a.fingerprint()  # the name sent counts too
    with pytest.raises(ConfigError, match="not among the served models"):
        fp(["fake-model", "other"], model="nope")


def test_multi_token_verbalizer_and_missing_endpoint_are_config_errors(tmp_path, llm_dir):
    with FakeOpenAI(sentiment) as srv:
        cfg = cfg_for(tmp_path, llm_dir, srv.url, verbalizers={"neg": ["bad", "not good"], "pos": ["good"]})
        with pytest.raises(ConfigError, match="'not good' is 2 tokens"):
            launch(cfg)
        cfg = cfg_for(tmp_path, llm_dir, srv.url)
        with pytest.raises(ValueError, match="needs label.teacher.endpoint"):  # the config refuses it first
            cfg.label.teacher.endpoint = None
    with pytest.raises(ValueError, match="not an environment variable name"):
        cfg_for(tmp_path, llm_dir, "http://127.0.0.1:1/v1").label.teacher.endpoint.api_key_env = KEY + "-x"


def test_label_stage_dead_letters_refused_rows_caches_and_never_shows_the_key(tmp_path, llm_dir, caplog):
    from zuoxiao.core.labelout import read_rows
    from zuoxiao.pipelines.label import label_from_config
    from zuoxiao.teacher import TeacherSource, load_teacher

    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(sentiment) as srv:
        cfg = cfg_for(tmp_path, llm_dir, srv.url)
        m = label_from_config(cfg, tmp_path / "label", cache_dir=tmp_path / "cache")
        first = len(srv.posts())
        c = m["counts"]
        assert (c["read"], c["labeled"], c["rejected"]) == (8, 7, 1)
        rejected = read_rows(tmp_path / "label", "rejected")
        assert [r["reason"] for r in rejected] == ["endpoint_error"]
        assert "HTTP 400" in rejected[0]["detail"] and "content filter" in rejected[0]["detail"]
        rows = {r["text"]: np.exp(r["logits"]) for r in read_rows(tmp_path / "label")}
        np.testing.assert_allclose(rows["great fun"], [0.25, 0.75], atol=1e-6)
        np.testing.assert_allclose(rows["boring"], [0.75, 0.25], atol=1e-6)
        t = m["teacher"]
        assert t["kind"] == "endpoint" and t["server_model_id"] == "fake-model"
        assert t["endpoint_recipe"]["endpoint"]["api_key_env"] == "ZX_KEY"
        # every row went out once (+ the launcher's probe); the 400 row is not retried
        assert first == 8 + 1
        # a rerun pays only for the row that was refused: the 7 answers come from the cache
        m2 = label_from_config(cfg, tmp_path / "label2", cache_dir=tmp_path / "cache")
        assert m2["counts"]["cache_hits"] == 7 and len(srv.posts()) - first == 1 + 1
        # train / compress re-create the same served teacher from the manifest
        ev = load_teacher(TeacherSource.of_record(t), ["neg", "pos"])
        assert ev.kind == "endpoint" and ev.fingerprint() == t["fingerprint"]
        np.testing.assert_allclose(np.exp(ev.predict_texts(["great fun"])), [[0.25, 0.75]], atol=1e-6)
    text = (tmp_path / "label" / "manifest.json").read_text() + caplog.text
    text += "".join(p.read_text(errors="replace") for p in (tmp_path / "label").rglob("*.json"))
    assert KEY not in text and srv.requests[-1][2]["Authorization"] == f"Bearer {KEY}"
    assert not math.isnan(m["timings"]["pipeline_s"])


def test_server_gone_mid_run_stops_the_stage_and_the_rerun_pays_only_the_rest(tmp_path, llm_dir):
    """A server that stops answering after the probe + 4 rows: the stage raises EndpointUnavailable (exit 2,
    through Beam's wrapping), the answered batch is in the cache, the rerun sends only the other rows."""
    import pyarrow.parquet as pq

    from zuoxiao.core.errors import user_error
    from zuoxiao.pipelines.label import label_from_config
    from zuoxiao.teacher.http_client import EndpointUnavailable

    state = {"n": 0, "alive": 5}

    def dying(path, body, headers):
        state["n"] += 1
        if state["n"] > state["alive"]:
            raise ConnectionAbortedError("the server went away")  # the handler drops the connection
        return sentiment(path, body, headers)

    with FakeOpenAI(dying) as srv:
        cfg = cfg_for(tmp_path, llm_dir, srv.url)
        cfg.label.teacher.endpoint.concurrency = 1
        with pytest.raises(Exception) as err:
            label_from_config(cfg, tmp_path / "label", cache_dir=tmp_path / "cache")
        found = user_error(err.value)
        assert isinstance(found, EndpointUnavailable) and found.exit_code == 2
        assert "did not answer after 2 attempts" in str(found) and srv.url in str(found)
        assert not (tmp_path / "label" / "manifest.json").exists()
        cached = sum(pq.read_metadata(f).num_rows for f in (tmp_path / "cache").rglob("*.parquet"))
        assert 3 <= cached <= 4  # the first batch of 3, and maybe a row of the second (4 rows were answered)
        sent = len(srv.posts())
        state["alive"] = 10 ** 6
        m = label_from_config(cfg, tmp_path / "label", cache_dir=tmp_path / "cache")
    c = m["counts"]
    assert (c["labeled"], c["rejected"], c["cache_hits"]) == (7, 1, cached)
    # the rerun's requests: the probe + every row not cached (the refused one included)
    assert len(srv.posts()) - sent == 1 + (8 - cached)


def test_cli_run_with_the_server_gone_says_so_without_a_traceback(tmp_path, llm_dir):
    """`zuoxiao run` (label only) when the server stops answering mid-run: exit 2, one `zuoxiao: error:` line
    naming the endpoint, no traceback (zuoxiao/run/noise.py drops Beam's), no key; the rerun succeeds."""
    import os
    import subprocess
    import sys

    state = {"n": 0, "alive": 5}

    def dying(path, body, headers):
        state["n"] += 1
        if state["n"] > state["alive"]:
            raise ConnectionAbortedError("the server went away")
        return sentiment(path, body, headers)

    with FakeOpenAI(dying) as srv:
        raw = cfg_for(tmp_path, llm_dir, srv.url).model_dump(mode="json")
        raw["run"]["stages"] = ["label"]
        raw["label"]["teacher"]["endpoint"]["concurrency"] = 1
        (tmp_path / "c.json").write_text(json.dumps(raw))
        cmd = [sys.executable, "-m", "zuoxiao.cli", "run", str(tmp_path / "c.json")]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert first.returncode == 2, first.stderr[-3000:]
        assert "zuoxiao: error: the teacher endpoint " + srv.url in first.stderr and "did not answer" in first.stderr
        assert "Traceback" not in first.stderr
        state["alive"] = 10 ** 6
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    for text in (first.stdout, first.stderr, again.stdout, again.stderr):
        assert KEY not in text


def test_endpoint_settings_and_kind_must_agree():
    from zuoxiao.core.config.endpoint import LabelTeacherSpec

    ep = {"base_url": "http://127.0.0.1:1/v1", "model": "m"}
    with pytest.raises(ValueError, match="needs label.teacher.endpoint"):
        LabelTeacherSpec(kind="endpoint", path="embedded:smollm2-135m-instruct")
    with pytest.raises(ValueError, match="takes one served model"):
        LabelTeacherSpec(kind="endpoint", endpoint=ep, members=["a", "b"])
    with pytest.raises(ValueError, match="set kind: endpoint"):
        LabelTeacherSpec(endpoint=ep)
    assert LabelTeacherSpec(kind="endpoint", endpoint=ep).endpoint.model == "m"
