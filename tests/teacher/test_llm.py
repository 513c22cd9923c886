"""The prompted-LLM teacher on a tiny random 2-layer Llama: scoring, calibration, config, label stage, eval hook."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.teacher.tiny_llm import save_tiny_llm, tiny_llm
from zuoxiao.core.config import parse_config
from zuoxiao.core.config.base import EMBEDDED_LLM
from zuoxiao.core.errors import ConfigError
from zuoxiao.teacher.llm.scorer import LLMScorer, calibrate, few_shot_examples, fit_prior

TEXTS = ["the movie was great fun", "boring", "a plot", "the film was awful and boring the plot not fun"]


@pytest.fixture(scope="module")
def lm():
    return tiny_llm()


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    return save_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny-llama")


def scorer(lm, **kw):
    model, tok = lm
    args = dict(system="review is good or bad", user="review : {text} is this good",
                verbalizers=[["bad", "very bad", "not good"], ["good", "very good"]],
                examples=[("great fun", 1), ("awful", 0)], batch_size=3)
    args.update(kw)
    return LLMScorer(model, tok, **args)


def test_proper_distribution(lm):
    lp = scorer(lm).score(TEXTS)
    assert lp.shape == (4, 2)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(4), atol=1e-6)
    assert (lp[:, 0] - lp[:, 1]).std() > 1e-3  # rows really get different distributions


@pytest.mark.parametrize("batch_size", [1, 3])
def test_prefix_cache_equals_no_cache(lm, batch_size):
    a = scorer(lm, batch_size=batch_size).word_logprobs(TEXTS)
    b = scorer(lm, batch_size=1, use_prefix_cache=False).word_logprobs(TEXTS)
    assert (a - b).abs().max() < 1e-4
    # the cached prefix is reusable: a second call must not see tokens of the first one
    s = scorer(lm, batch_size=batch_size)
    assert (s.word_logprobs(TEXTS) - s.word_logprobs(TEXTS)).abs().max() == 0


@pytest.mark.parametrize("verbalizers", [None, [["bad", "not good at all"], ["good", "very good", "fun"]]])
def test_multi_token_word_is_sum_of_token_logprobs(lm, verbalizers):
    """Hand-computed reference with a plain forward: caught a real off-by-one that cache==no-cache did not.
    The second case has words of 1, 2 and 4 tokens side by side (branches of different lengths)."""
    model, _ = lm
    s = scorer(lm, **({"verbalizers": verbalizers} if verbalizers else {}))
    got = s.word_logprobs(TEXTS)
    for n, text in enumerate(TEXTS):
        ctx = s._prefix_ids + s._row_ids(text)
        for w, word in enumerate(s._words):
            ids = torch.tensor([ctx + word])
            with torch.no_grad():
                lp = model(ids).logits[0].log_softmax(-1)
            want = sum(lp[len(ctx) - 1 + j, t] for j, t in enumerate(word))
            assert abs(got[n, w] - want) < 1e-4
    assert max(len(w) for w in s._words) == (4 if verbalizers else 2)  # the check covered multi-token words
    nc = scorer(lm, use_prefix_cache=False, batch_size=1, **({"verbalizers": verbalizers} if verbalizers else {}))
    assert (nc.word_logprobs(TEXTS) - got).abs().max() < 1e-4


def test_calibration_makes_content_free_uniform(lm):
    s = scorer(lm)
    prior = s.content_free_logprior(["N/A"])
    assert torch.allclose(calibrate(s.score(["N/A"]), prior).exp(), torch.full((1, 2), 0.5), atol=1e-5)
    lp = s.score(TEXTS)
    assert torch.allclose(calibrate(lp, prior).exp().sum(-1), torch.ones(4), atol=1e-6)
    # the fitted prior makes the marginal over unlabelled rows uniform
    fitted = calibrate(lp, fit_prior(lp)).exp().mean(0)
    assert torch.allclose(fitted, torch.full((2,), 0.5), atol=1e-4)


def test_few_shot_draw_is_seeded_and_covers_every_label():
    texts, labels = [f"t{i}" for i in range(20)], [i % 3 for i in range(20)]
    a = few_shot_examples(texts, labels, 5, seed=1)
    assert a == few_shot_examples(texts, labels, 5, seed=1) != few_shot_examples(texts, labels, 5, seed=2)
    assert len(a) == 5 and {y for _, y in a} == {0, 1, 2}


def _raw(teacher: dict, **top) -> dict:
    return {"label": {"input": {"path": "in.jsonl"}, "teacher": teacher},
            "train": {"student": {"kind": "config"}}, **top}


def test_config_of_llm_teachers():
    t = parse_config(_raw({"kind": "causal_lm", "llm": {"verbalizers": {"neg": "bad", "pos": ["good", "great"]}}}))
    assert t.label.teacher.path == EMBEDDED_LLM  # kind causal_lm defaults to the embedded LLM, not MiniLM
    assert t.label.teacher.llm.verbalizers == {"neg": ["bad"], "pos": ["good", "great"]}
    for llm, msg in [({"prompt": "no slot"}, "exactly once"), ({"prompt": "{text} and {text}"}, "exactly once"),
                     ({"prompt": "{text} {label}"}, "no other"), ({"prompt": "{text"}, "literal braces"),
                     ({"verbalizers": {"neg": []}}, "empty verbaliser"), ({"calibration": "zhao"}, "calibration")]:
        with pytest.raises(ConfigError, match=msg):
            parse_config(_raw({"kind": "causal_lm", "llm": llm}))
    for teacher, top, msg in [
        ({"kind": "causal_lm", "path": "embedded:all-MiniLM-L6-v2"}, {}, "is an encoder"),
        ({"kind": "causal_lm", "members": ["a", "b"]}, {}, "remove members"),
        ({"kind": "causal_lm"}, {"finetune": {"data": {"path": "g.jsonl"}}}, "finetune is set"),
        ({"kind": "causal_lm"}, {"train": {"student": {"kind": "from_teacher"}}}, "from_teacher"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            parse_config({**_raw(teacher), **top})
    ft = parse_config({"label": {"input": {"path": "x"}}, "finetune": {"data": {"path": "g"}, "adapter": "lora",
                                                                    "teacher": {"path": "d"}}}).finetune
    assert ft.adapter == "lora" and ft.lora.r == 8 and ft.lora.target_modules is None


def _launch(cfg, names=("neg", "pos")):
    """The label stage's launcher teacher for cfg: few-shot examples and prior rows drawn from its LabelView."""
    from zuoxiao.core.config.views import LabelView
    from zuoxiao.pipelines.label_teacher import teacher_source
    from zuoxiao.teacher import load_teacher

    return load_teacher(teacher_source(LabelView.of(cfg), cfg.label.teacher.path, list(names)), list(names))


def _label_cfg(tmp_path, llm_dir, beam=None, **llm):
    rows = [("i love this story", "pos"), ("great fun", "pos"), ("boring", "neg"), ("i hate it", "neg"),
            ("the plot was awful", "neg"), ("a great movie", "pos"), ("not good", "neg"), ("very good film", "pos")]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "label": y, "id": f"r{i}"}) + "\n"
                                               for i, (t, y) in enumerate(rows)))
    return parse_config({"output_dir": str(tmp_path / "o"), "task": {"label_names": ["neg", "pos"]},
                         "label": {"input": {"path": str(tmp_path / "in.jsonl"), "id_column": "id"},
                                   "teacher": {"kind": "causal_lm", "path": str(llm_dir), "max_length": 32,
                                               "num_threads": 1,
                                               "llm": {"system": "review is good or bad",
                                                       "prompt": "review : {text} is this good",
                                                       "verbalizers": {"neg": ["bad", "not good"], "pos": ["good"]},
                                                       **llm}},
                                   "batch_size": 3, "beam": beam or {}},
                         "train": {"student": {"kind": "config"}}}), [t for t, _ in rows]


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_label_stage_labels_with_the_llm(tmp_path, llm_dir, monkeypatch, mode):
    """kind causal_lm through the Beam pipeline: shard logits are the teacher's calibrated log-probs.

    multi_processing: the workers rebuild the teacher from the launcher's recipe (nothing preloaded)."""
    import pyarrow.parquet as pq

    from zuoxiao.core.config.views import TrainView
    from zuoxiao.pipelines.label import label_from_config
    from zuoxiao.teacher import TeacherSource, load_teacher
    from zuoxiao.teacher.llm.teacher import LLMTeacher

    monkeypatch.setenv("ZUOXIAO_CACHE_DIR", str(tmp_path / "cache"))
    beam = {"direct_num_workers": 2, "direct_running_mode": mode} if mode != "in_memory" else None
    cfg, texts = _label_cfg(tmp_path, llm_dir, beam, few_shot=2, few_shot_seed=3, calibration="content_free")
    m = label_from_config(cfg, tmp_path / "label")
    t = m["teacher"]
    assert t["kind"] == "causal_lm" and t["few_shot"] == 2 and len(t["log_prior"]) == 2
    assert all(ex[0] in texts for ex in t["few_shot_examples"])  # drawn from label.input's gold rows
    rows = {r["id"]: r for s in m["shards"] for r in pq.read_table(tmp_path / "label" / s["file"]).to_pylist()}
    got = np.array([rows[f"r{i}"]["logits"] for i in range(len(texts))])
    np.testing.assert_allclose(np.exp(got).sum(-1), 1.0, atol=1e-5)  # normalised label log-probs
    # a fresh worker copy rebuilt from the recipe scores the same (one row at a time: no batching effect)
    worker = LLMTeacher.from_recipe(_launch(cfg).recipe)
    want = np.concatenate([worker.predict_texts([x]) for x in texts])
    np.testing.assert_allclose(got, want, atol=1e-4)
    # the train/compress hook re-creates the same teacher from the manifest's record (same fingerprint, logits)
    assert t["llm_recipe"]["prompt"] == cfg.label.teacher.llm.prompt
    ev = load_teacher(TeacherSource.of_record(t), ["neg", "pos"])
    assert ev.fingerprint() == t["fingerprint"] and ev.params() == sum(p.numel() for p in worker.model.parameters())
    np.testing.assert_allclose(ev.predict_texts(texts), want, atol=1e-4)
    assert ev.repr_dim is None  # an LLM offers no sentence representation
    from zuoxiao.student.train import teacher_on_eval

    gold = np.array([0 if i in (2, 3, 4, 6) else 1 for i in range(len(texts))])
    rec = teacher_on_eval(t, ["neg", "pos"], TrainView.of(cfg), texts, gold, dev_texts=texts[:3])
    assert rec["fingerprint"] == t["fingerprint"] and rec["params"] == ev.params()
    np.testing.assert_array_equal(rec["predictions"], want.argmax(-1))
    assert rec["accuracy"] == pytest.approx(float((want.argmax(-1) == gold).mean()))


def test_fingerprint_covers_prompt_verbalizers_examples_and_calibration(tmp_path, llm_dir, monkeypatch):
    monkeypatch.setenv("ZUOXIAO_CACHE_DIR", str(tmp_path / "cache"))

    def fp(**llm):
        cfg, _ = _label_cfg(tmp_path, llm_dir, **llm)
        return _launch(cfg).fingerprint()

    base = fp()
    assert base == fp()
    variants = [fp(prompt="review : {text} is this good ."), fp(verbalizers={"neg": ["bad"], "pos": ["good"]}),
                fp(few_shot=2), fp(few_shot=2, few_shot_seed=1), fp(calibration="content_free"),
                fp(calibration="prior", prior_rows=8)]
    assert len({base, *variants}) == 1 + len(variants)


def test_prior_calibration_is_fitted_once_and_cached(tmp_path, llm_dir, monkeypatch):
    from zuoxiao.teacher.llm import teacher as llm_teacher

    monkeypatch.setenv("ZUOXIAO_CACHE_DIR", str(tmp_path / "cache"))
    cfg, texts = _label_cfg(tmp_path, llm_dir, calibration="prior", prior_rows=8)
    t = _launch(cfg)
    np.testing.assert_allclose(np.exp(t.predict_texts(texts)).mean(0), [0.5, 0.5], atol=1e-3)
    assert len(list((tmp_path / "cache" / "llm-priors").glob("*.json"))) == 1
    monkeypatch.setattr(llm_teacher, "fit_prior", lambda *_: pytest.fail("prior refitted instead of cached"))
    assert _launch(cfg).recipe["log_prior"] == t.recipe["log_prior"]


def test_llm_config_errors_name_the_key(tmp_path, llm_dir):
    cfg, _ = _label_cfg(tmp_path, llm_dir, verbalizers={"neg": ["bad"], "positive": ["good"]})
    with pytest.raises(ConfigError, match=r"verbalizers .*missing \['pos'\], unknown \['positive'\]"):
        _launch(cfg)
    cfg, _ = _label_cfg(tmp_path, llm_dir, few_shot=50)
    with pytest.raises(ConfigError, match="few_shot=50"):
        _launch(cfg)
