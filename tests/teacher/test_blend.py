"""A fine-tuned teacher blended with its TF-IDF baseline: save/load without pickle, the choice on dev, the
label stage labelling with the blend, and fingerprints that follow the weight."""

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.pipelines.tiny_teacher import build_tiny_teacher
from tests.student.conftest import make_rows, make_tiny_bert, one_thread, write_jsonl
from zuoxiao.core.config import parse_config
from zuoxiao.core.config.base import TeacherSpec
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.evaluate import predict_logits
from zuoxiao.core.fingerprint import teacher_fingerprint
from zuoxiao.teacher import TeacherSource, load_teacher
from zuoxiao.teacher.blend import BLEND_FILE
from zuoxiao.teacher.classifier import fingerprint, label_names_of, load_classifier, load_tokenizer
from zuoxiao.teacher.finetune.blend_choice import choose_blend, save_blend, sign_test
from zuoxiao.teacher.finetune.stage import finetune_teacher
from zuoxiao.teacher.tfidf import ARRAYS_FILE, JSON_FILE, TfidfBaseline, fit_baseline

__all__ = ["one_thread"]
UNSEEN = ["a great film, love it", "awful boring plot", "the story", "best actor ever", "zzz qqq", ""]


def load_dir(path, label_names=None, max_length=128):
    """A teacher dir as the label stage loads it: its classifier, or the blend when it holds blend.json."""
    return load_teacher(TeacherSource.of_spec(TeacherSpec(path=str(path), max_length=max_length)), label_names)


def load_spec(spec):
    return load_teacher(TeacherSource.of_spec(spec))


def _xy(rows):
    return [r["text"] for r in rows], [r["y"] for r in rows]


def _three_class(n, seed):
    rng = np.random.default_rng(seed)
    words = [["good", "great", "fun"], ["bad", "awful", "boring"], ["news", "market", "stock"]]
    y = rng.integers(0, 3, n).tolist()
    return [f"the {rng.choice(words[c])} {rng.choice(['movie', 'plot', 'story'])} was" for c in y], y


# ---- 1. save / load without pickle --------------------------------------------------------------------

def test_baseline_round_trip_is_float32_close_and_pickle_free(tmp_path):
    """The arrays are stored as float32 (half the bytes): the round trip is no longer bit-exact, so the
    loaded baseline is compared with the fitted one within float32 rounding, not for equality."""
    from safetensors.numpy import load_file

    model, _ = fit_baseline(_three_class(120, 1), _three_class(30, 2), {}, num_classes=4)  # class 3 never seen
    d = model.save(tmp_path / "b")
    assert sorted(p.name for p in d.iterdir()) == [JSON_FILE, ARRAYS_FILE]
    meta = json.loads((d / JSON_FILE).read_text())
    assert meta["num_classes"] == 4 and meta["C"] == model.C and meta["kind"] == "tfidf+logreg"
    for v, (_, vec) in zip(meta["vectorizers"], model.vectorizer.transformer_list, strict=True):
        assert [vec.vocabulary_[t] for t in v["vocabulary"]] == list(range(len(vec.vocabulary_)))  # index order
    stored = load_file(str(d / ARRAYS_FILE))
    assert {k: str(a.dtype) for k, a in stored.items()} == {
        "word.idf": "float32", "char.idf": "float32", "coef": "float32", "intercept": "float32", "classes": "int64"}
    loaded = TfidfBaseline.load(d)
    assert loaded.model.coef_.dtype == np.float64 and loaded.model.intercept_.dtype == np.float64  # cast back
    np.testing.assert_allclose(loaded.model.coef_, model.model.coef_, rtol=1e-6)
    texts = UNSEEN + _three_class(200, 3)[0]
    got, want = loaded.predict_proba(texts), model.predict_proba(texts)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert (got.argmax(-1) == want.argmax(-1)).all() and (got[:, 3] == 0).all()
    assert b"pickle" not in (d / ARRAYS_FILE).read_bytes()[:200]  # safetensors header: plain JSON + arrays


def test_a_float64_baseline_saved_before_still_loads_exactly(tmp_path):
    """Teacher dirs written before the float32 change hold float64 arrays: they load, and exactly."""
    from safetensors.numpy import save

    model, _ = fit_baseline(_three_class(120, 1), None, {}, num_classes=3)
    d = model.save(tmp_path / "b")
    arrays = {"word.idf": model.vectorizer.transformer_list[0][1].idf_,
              "char.idf": model.vectorizer.transformer_list[1][1].idf_,
              "coef": model.model.coef_, "intercept": model.model.intercept_,
              "classes": np.asarray(model.model.classes_, dtype=np.int64)}
    (d / ARRAYS_FILE).write_bytes(save({k: np.ascontiguousarray(a) for k, a in arrays.items()}))
    assert TfidfBaseline.load(d).predict_proba(UNSEEN).tolist() == model.predict_proba(UNSEEN).tolist()


def test_single_class_baseline_round_trips(tmp_path):
    model, _ = fit_baseline((["red", "red car", "a red"], [1, 1, 1]), None, {}, num_classes=2)
    loaded = TfidfBaseline.load(model.save(tmp_path / "b"))
    assert loaded.predict_proba(["blue"]).tolist() == [[0.0, 1.0]]


def test_missing_or_damaged_baseline_files_name_the_file(tmp_path):
    model, _ = fit_baseline(_three_class(60, 1), None, {}, num_classes=3)
    d = model.save(tmp_path / "b")
    (d / ARRAYS_FILE).rename(tmp_path / "keep")
    with pytest.raises(InputError, match=f"{ARRAYS_FILE} is missing") as err:
        TfidfBaseline.load(d)
    assert err.value.exit_code == 2
    (tmp_path / "keep").rename(d / ARRAYS_FILE)
    good = (d / JSON_FILE).read_text()
    (d / JSON_FILE).write_text(good[: len(good) // 2])
    with pytest.raises(InputError, match=rf"baseline in .*b is damaged.*{JSON_FILE}"):
        TfidfBaseline.load(d)
    (d / JSON_FILE).write_text(good)
    raw = (d / ARRAYS_FILE).read_bytes()
    (d / ARRAYS_FILE).write_bytes(raw[: len(raw) - 100])  # truncated arrays
    with pytest.raises(InputError, match=rf"damaged.*{ARRAYS_FILE}"):
        TfidfBaseline.load(d)


# ---- 2. the choice on dev -------------------------------------------------------------------------------

class _Planted:
    """A baseline stand-in with planted probabilities per text (the selection rule is what is tested)."""

    def __init__(self, table):
        self.table = table

    def predict_proba(self, texts):
        return np.asarray([self.table[t] for t in texts], dtype=np.float32)


def _planted_case():
    # rows 0-13: the teacher is right at p=0.6, the baseline wrong (p_right 0.3);
    # rows 14-19: the teacher is wrong (p_right 0.44), the baseline right at 0.95.
    # (1-w) 0.6 + 0.3 w > 0.5 iff w < 1/3; (1-w) 0.44 + 0.95 w > 0.5 iff w > 0.118
    # -> dev accuracy 0.7 at w=0 and 0.1, 1.0 at w=0.2 and 0.3, 0.3 at w=0.4 and 0.5.
    texts, y, table, z = [], [], {}, []
    for i in range(20):
        right = i < 14
        t_right, b_right = (0.6, 0.3) if right else (0.44, 0.95)
        texts.append(f"row{i}")
        y.append(i % 2)
        pt = np.array([1 - t_right, t_right])[:: 1 if i % 2 else -1]
        table[f"row{i}"] = np.array([1 - b_right, b_right])[:: 1 if i % 2 else -1]
        z.append(np.log(pt))
    return texts, y, _Planted(table), np.asarray(z, dtype=np.float32)


def test_the_blend_weight_is_chosen_on_dev_ties_to_the_smaller_one():
    texts, y, base, z = _planted_case()
    splits = SimpleNamespace(dev=(texts, y), eval=(texts[:10], y[:10]))
    ft = _ft(blend_min_gain=0.5)
    b = choose_blend(ft, base, {"dev": z, "eval": z[:10]}, splits, 2)
    assert b["grid"] == {"0": 0.7, "0.1": 0.7, "0.2": 1.0, "0.3": 1.0, "0.4": 0.3, "0.5": 0.3}
    assert b["chosen"] and b["baseline_weight"] == 0.2 and b["gain_points"] == 30.0
    assert b["dev"]["accuracy"] == 1.0 and b["eval"]["accuracy"] == 1.0 and b["combine"] == "prob"
    # 6 rows only the blend gets right, none only the transformer: p = 2^-6
    assert (b["rows_gained"], b["rows_lost"], b["p_value"]) == (6, 0, pytest.approx(1 / 64)) and b["max_p"] == 0.05
    # the same gain below the threshold: not kept, no blend metrics
    b = choose_blend(_ft(blend_min_gain=30.01), base, {"dev": z}, splits, 2)
    assert not b["chosen"] and b["baseline_weight"] == 0.0 and b["dev"] is None and b["gain_points"] == 30.0
    assert b["reason"].startswith("gain 30 points < finetune.blend_min_gain=30.01 (6 vs 0 rows, p = 0.016)")


def _ft(**kw):
    return SimpleNamespace(**{"blend_baseline": "auto", "blend_min_gain": 0.5, "blend_max_p": 0.05, **kw})


def _binom_tail(b, c):
    """P(X >= b), X ~ Binomial(b + c, 1/2), by counting (independent of blend.sign_test's scipy call)."""
    from math import comb

    n = b + c
    return sum(comb(n, k) for k in range(b, n + 1)) / 2 ** n


def test_sign_test_matches_hand_computed_tails():
    assert sign_test(3, 1) == pytest.approx(5 / 16, abs=1e-12)  # (C(4,3) + C(4,4)) / 2^4
    assert sign_test(9, 1) == pytest.approx(11 / 1024, abs=1e-12)  # (C(10,9) + C(10,10)) / 2^10
    assert sign_test(6, 0) == pytest.approx(1 / 64, abs=1e-12)
    assert sign_test(0, 0) == 1.0 and sign_test(0, 5) == 1.0  # nothing changed / only losses
    for b, c in [(1, 1), (7, 3), (12, 5), (30, 18), (2, 9)]:
        assert sign_test(b, c) == pytest.approx(_binom_tail(b, c), abs=1e-12), (b, c)


def _mixed_case(n_both, n_gained, n_lost):
    """Planted rows of three kinds (label 1 throughout; probabilities of the right class):
    n_both: transformer right at 0.6, baseline wrong (0.3) -> the blend right for w < 1/3;
    n_gained: transformer wrong (0.44), baseline right (0.95) -> the blend right for w > 0.118;
    n_lost: transformer barely right (0.52), baseline confidently wrong (0.05) -> the blend wrong for w >= 0.1.
    So w = 0.2 is best, with b = n_gained rows gained and c = n_lost lost against the transformer alone."""
    kinds = [(0.6, 0.3)] * n_both + [(0.44, 0.95)] * n_gained + [(0.52, 0.05)] * n_lost
    texts = [f"row{i}" for i in range(len(kinds))]
    table = {t: np.array([1 - pb, pb]) for t, (_, pb) in zip(texts, kinds, strict=True)}
    z = np.log(np.asarray([[1 - pt, pt] for pt, _ in kinds], dtype=np.float32))
    splits = SimpleNamespace(dev=(texts, [1] * len(kinds)), eval=None)
    return splits, _Planted(table), {"dev": z}


def test_a_large_gain_on_a_tiny_dev_set_is_refused_by_the_sign_test(caplog):
    splits, base, logits = _mixed_case(4, 3, 1)  # 8 dev rows: 5/8 -> 7/8 right, +25 points
    with caplog.at_level(logging.INFO, logger="zuoxiao.teacher.finetune.blend_choice"):
        b = choose_blend(_ft(), base, logits, splits, 2)
    assert b["gain_points"] == 25.0 and b["grid"]["0.2"] == 0.875 and b["grid"]["0"] == 0.625
    assert (b["rows_gained"], b["rows_lost"]) == (3, 1) and b["p_value"] == pytest.approx(5 / 16)
    assert not b["chosen"] and not b["saved"] and b["baseline_weight"] == 0.0 and b["dev"] is None
    assert b["reason"] == "gain 25 points, 3 vs 1 rows, p = 0.31 > finetune.blend_max_p=0.05"
    assert "blend with the TF-IDF baseline not kept (best weight 0.2): gain 25 points, 3 vs 1 rows, p = 0.31 > " \
        "finetune.blend_max_p=0.05" in caplog.text
    # blend_max_p: 1 switches the test off: the point threshold alone keeps it
    b = choose_blend(_ft(blend_max_p=1.0), base, logits, splits, 2)
    assert b["chosen"] and b["baseline_weight"] == 0.2 and b["p_value"] == pytest.approx(5 / 16)


def test_the_same_kind_of_gain_on_more_rows_is_kept():
    splits, base, logits = _mixed_case(10, 9, 1)  # 20 dev rows: 11/20 -> 19/20 right
    b = choose_blend(_ft(), base, logits, splits, 2)
    assert (b["rows_gained"], b["rows_lost"]) == (9, 1) and b["p_value"] == pytest.approx(11 / 1024)
    assert b["chosen"] and b["baseline_weight"] == 0.2 and b["gain_points"] == 40.0 and b["dev"]["accuracy"] == 0.95
    assert b["reason"] == "gain 40 points, 9 vs 1 rows, p = 0.011 <= 0.05"
    # a stricter p refuses it, and so does the point threshold, each saying why
    assert choose_blend(_ft(blend_max_p=0.01), base, logits, splits, 2)["reason"].endswith("p = 0.011 > "
                                                                                          "finetune.blend_max_p=0.01")
    assert not choose_blend(_ft(blend_min_gain=41), base, logits, splits, 2)["chosen"]


def test_no_weight_that_gains_is_reported_as_such():
    splits, base, logits = _mixed_case(6, 0, 0)  # the baseline is always wrong: w = 0 wins
    b = choose_blend(_ft(), base, logits, splits, 2)
    assert not b["chosen"] and b["baseline_weight"] == 0.0 and (b["rows_gained"], b["rows_lost"]) == (0, 0)
    assert b["p_value"] == 1.0 and b["reason"] == "no weight beats the transformer alone on dev"


def test_blend_max_p_is_validated():
    ft = parse_config({"finetune": {"data": {"path": "g.jsonl"}}}).finetune
    assert ft.blend_max_p == 0.05 and ft.blend_min_gain == 0.5
    assert parse_config({"finetune": {"data": {"path": "g.jsonl"}, "blend_max_p": 1}}).finetune.blend_max_p == 1.0
    for bad, why in ((0, "greater than 0"), (-0.1, "greater than 0"), (1.5, "less than or equal to 1"),
                     ("often", "valid number")):
        with pytest.raises(ConfigError, match=rf"finetune.blend_max_p: got {bad!r}: .*{why}") as err:
            parse_config({"finetune": {"data": {"path": "g.jsonl"}, "blend_max_p": bad}})
        assert err.value.exit_code == 2


def _ft_cfg(tmp_path, teacher, **finetune):
    train = write_jsonl(tmp_path / "gold.jsonl", make_rows(192, seed=11))
    ev = write_jsonl(tmp_path / "test.jsonl", make_rows(64, seed=12))
    dev = write_jsonl(tmp_path / "dev.jsonl", make_rows(48, seed=13))
    optim = finetune.pop("optim", {})
    return parse_config({
        "task": {"name": "toy", "eval": {"path": str(ev)}, "dev": {"path": str(dev)}},
        "finetune": {"data": {"path": str(train)}, "teacher": {"path": str(teacher), "max_length": 32},
                     "optim": {"lr": 3e-3, "epochs": 5, "batch_size": 16, "warmup_ratio": 0.1, **optim},
                     "allow_below_baseline": True, **finetune},
    })


def test_finetune_keeps_a_blend_that_wins_on_dev_and_labels_with_it(tmp_path, caplog):
    """An untrained teacher (near-uniform probabilities) next to a baseline that solves the keyword task:
    the blend wins on dev by a wide margin, is saved, and is what the dir labels with."""
    base = make_tiny_bert(tmp_path / "base", layers=1, seed=3)
    cfg = _ft_cfg(tmp_path, base, optim={"max_steps": 1, "lr": 1e-9, "head_lr": 1e-9})
    out = tmp_path / "teacher"
    with caplog.at_level(logging.INFO, logger="zuoxiao.teacher.finetune.blend_choice"):
        m = finetune_teacher(cfg, out)
    b = m["blend"]
    assert b["chosen"] and b["saved"] and b["gain_points"] >= 20 and 0 < b["baseline_weight"] <= 0.5, b
    assert "blend with the TF-IDF baseline kept at baseline weight" in caplog.text
    # the gate still judges the transformer alone (it misses the baseline here; allow_below_baseline)
    assert m["gate"]["teacher"] == m["teacher"]["dev"]["accuracy"] and not m["gate"]["passed"]
    # the top level is the labelling teacher's (the blend's); "teacher" keeps the transformer's own numbers
    assert m["accuracy"] == b["eval"]["accuracy"] > m["teacher"]["eval"]["accuracy"]
    assert (out / BLEND_FILE).is_file() and (out / "baseline" / JSON_FILE).is_file()
    rec = json.loads((out / BLEND_FILE).read_text())
    assert rec["baseline_weight"] == b["baseline_weight"] and rec["combine"] == "prob"
    from zuoxiao.core.results import FinetuneResult

    line = FinetuneResult.from_metrics(out, m).headline_text()  # the run console's finetune line says so
    assert f"labels with the teacher + baseline blend (baseline weight {b['baseline_weight']:g})" in line, line
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["blend"]["grid"] == b["grid"] and on_disk["accuracy"] == m["accuracy"]
    # the dir loads as the blend; measured on task.eval it reproduces the recorded blend accuracy
    teacher = load_teacher(TeacherSource.of_record({"path": str(out), "max_length": 32}), ["neg", "pos"])
    assert teacher.kind == "blend" and teacher.blend["baseline_weight"] == b["baseline_weight"]
    ev_x, ev_y = _xy(make_rows(64, seed=12))
    assert float((teacher.predict_texts(ev_x).argmax(-1) == np.asarray(ev_y)).mean()) == pytest.approx(m["accuracy"])
    assert teacher.params() == sum(p.numel() for p in teacher.module.parameters())  # the baseline counts 0
    # a from_teacher student still reads the transformer weights alone (extra files are ignored)
    from zuoxiao.core.config.train import StudentConfig
    from zuoxiao.student.models import build_student

    spec = StudentConfig(kind="from_teacher", layers=[0])
    student, _ = build_student(spec, str(out), ["neg", "pos"], 32)
    assert label_names_of(student) == ["neg", "pos"]
    assert torch.equal(student.get_input_embeddings().weight, load_classifier(str(out)).get_input_embeddings().weight)
    # a later run that keeps no blend removes the old blend files
    finetune_teacher(_ft_cfg(tmp_path, base, blend_baseline="off", optim={"max_steps": 1, "lr": 1e-9,
                                                                          "head_lr": 1e-9}), out)
    assert not (out / BLEND_FILE).exists() and not (out / "baseline").exists()
    assert load_dir(out).kind == "classifier"


def test_a_teacher_stopped_by_the_gate_saves_no_blend(tmp_path):
    """The gate judges the transformer alone: a blend that would win on dev does not rescue it."""
    from zuoxiao.core.errors import GateFailed

    base = make_tiny_bert(tmp_path / "base", layers=1, seed=3)
    cfg = _ft_cfg(tmp_path, base, allow_below_baseline=False, optim={"max_steps": 1, "lr": 1e-9, "head_lr": 1e-9})
    with pytest.raises(GateFailed, match="min_gain_over_baseline"):
        finetune_teacher(cfg, tmp_path / "teacher")
    m = json.loads((tmp_path / "teacher" / "metrics.json").read_text())
    assert m["blend"]["chosen"] and not m["blend"]["saved"] and m["accuracy"] == m["teacher"]["eval"]["accuracy"]
    assert not (tmp_path / "teacher" / BLEND_FILE).exists() and not (tmp_path / "teacher" / "baseline").exists()


def test_finetune_writes_no_blend_when_it_does_not_gain_on_dev(tmp_path):
    """A trained teacher that gets the keyword task right: no weight gains blend_min_gain, no blend files."""
    base = make_tiny_bert(tmp_path / "base", layers=2, seed=1)
    out = tmp_path / "teacher"
    m = finetune_teacher(_ft_cfg(tmp_path, base), out)
    b = m["blend"]
    assert not b["chosen"] and b["gain_points"] < 0.5 and b["grid"]["0"] == m["teacher"]["dev"]["accuracy"]
    assert m["accuracy"] == m["teacher"]["eval"]["accuracy"]  # the top level is the transformer's
    assert not (out / BLEND_FILE).exists() and not (out / "baseline").exists()
    assert (out / "model.safetensors").is_file()


# ---- 3. labelling with a blend, fingerprints ------------------------------------------------------------

@pytest.fixture(scope="module")
def blended(tmp_path_factory):
    """A tiny classifier dir with a fitted baseline saved beside it at weight 0.3."""
    d = build_tiny_teacher(tmp_path_factory.mktemp("blend") / "t", label_names=["neg", "pos"], seed=5)
    base, _ = fit_baseline(_xy(make_rows(120, seed=1)), None, {}, num_classes=2)
    save_blend(d, base, {"baseline_weight": 0.3, "gain_points": 2.0, "dev": None, "grid": {}}, ["neg", "pos"])
    return d


def _hand_blend(d, texts, w):
    z = torch.tensor(predict_logits(load_classifier(str(d)), load_tokenizer(str(d)), texts, 32))
    return (1 - w) * torch.softmax(z, -1).numpy() + w * TfidfBaseline.load(d / "baseline").predict_proba(texts)


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_label_stage_labels_with_the_blend(tmp_path, blended, mode, caplog):
    import pyarrow.parquet as pq

    from zuoxiao.pipelines.label import label_from_config

    texts = [r["text"] for r in make_rows(10, seed=7)]
    write_jsonl(tmp_path / "in.jsonl", [{"text": t, "id": f"r{i}"} for i, t in enumerate(texts)])
    beam = {"direct_num_workers": 2, "direct_running_mode": mode} if mode != "in_memory" else {}
    cfg = parse_config({"output_dir": str(tmp_path / "o"), "label": {
        "input": {"path": str(tmp_path / "in.jsonl"), "label_column": None, "id_column": "id"},
        "teacher": {"path": str(blended), "max_length": 32, "num_threads": 1}, "batch_size": 4, "beam": beam}})
    with caplog.at_level(logging.INFO, logger="zuoxiao.pipelines.label_teacher"):
        m = label_from_config(cfg, tmp_path / "label")
    assert "blended with its TF-IDF baseline at weight 0.3" in caplog.text
    assert m["teacher"]["blend"]["baseline_weight"] == 0.3
    assert m["teacher"]["fingerprint"] == load_spec(cfg.label.teacher).fingerprint()
    rows = {r["id"]: r for s in m["shards"] for r in pq.read_table(tmp_path / "label" / s["file"]).to_pylist()}
    got = torch.softmax(torch.tensor([rows[f"r{i}"]["logits"] for i in range(len(texts))]), -1).numpy()
    np.testing.assert_allclose(got, _hand_blend(blended, texts, 0.3), atol=1e-4)
    # one row by hand: (1 - w) softmax(z) + w p_baseline
    z0 = predict_logits(load_classifier(str(blended)), load_tokenizer(str(blended)), texts[:1], 32)[0]
    p0 = np.exp(z0) / np.exp(z0).sum()
    pb0 = TfidfBaseline.load(blended / "baseline").predict_proba(texts[:1])[0]
    np.testing.assert_allclose(got[0], 0.7 * p0 + 0.3 * pb0, atol=1e-4)
    # train/compress re-create the same teacher from the manifest's record
    again = load_teacher(TeacherSource.of_record(m["teacher"]), m["label_names"])
    np.testing.assert_allclose(torch.softmax(torch.tensor(again.predict_texts(texts)), -1).numpy(), got, atol=1e-4)


def test_fingerprints_follow_the_blend_weight_and_baseline(tmp_path, blended):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(blended, d)
    spec = TeacherSpec(path=str(d), max_length=32)
    fp, stage_fp = load_spec(spec).fingerprint(), teacher_fingerprint(spec)
    assert fp == load_spec(spec).fingerprint()  # stable
    assert fp != fingerprint(load_classifier(str(d)))  # the transformer alone
    rec = json.loads((d / BLEND_FILE).read_text())
    (d / BLEND_FILE).write_text(json.dumps({**rec, "baseline_weight": 0.2}))
    assert load_spec(spec).fingerprint() != fp  # the teacher cache is keyed by this
    assert teacher_fingerprint(spec) != stage_fp  # and the run's stage fingerprint by the dir's files
    (d / BLEND_FILE).write_text(json.dumps(rec))
    base, _ = fit_baseline(_xy(make_rows(60, seed=9)), None, {}, num_classes=2)
    base.save(d / "baseline")  # another baseline, same weight
    assert load_spec(spec).fingerprint() != fp


def test_a_damaged_blend_json_is_a_clear_error(tmp_path, blended):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(blended, d)
    (d / BLEND_FILE).write_text("{not json")
    with pytest.raises(InputError, match="blend.json is damaged"):
        load_dir(d)
    (d / BLEND_FILE).write_text(json.dumps({"baseline_weight": 1.5}))
    with pytest.raises(InputError, match=r"baseline_weight=1.5 must lie in \(0, 1\)"):
        load_dir(d)
    (d / BLEND_FILE).write_text(json.dumps({"baseline_weight": 0.3}))
    shutil.rmtree(d / "baseline")
    with pytest.raises(InputError, match=f"{JSON_FILE} is missing"):
        load_dir(d)


def test_a_blended_dir_as_an_ensemble_member_joins_as_its_blend(tmp_path, blended):
    def load_ensemble(members, combine="prob", max_length=128):
        return load_spec(TeacherSpec(members=members, combine=combine, max_length=max_length))

    other = build_tiny_teacher(tmp_path / "other", label_names=["neg", "pos"], seed=6)
    texts = [r["text"] for r in make_rows(6, seed=8)]
    ens = load_ensemble([str(blended), {"path": str(other), "weight": 1}], max_length=32)
    z = torch.tensor(predict_logits(load_classifier(str(other)), load_tokenizer(str(other)), texts, 32))
    expected = 0.5 * _hand_blend(blended, texts, 0.3) + 0.5 * torch.softmax(z, -1).numpy()
    np.testing.assert_allclose(torch.softmax(torch.tensor(ens.predict_texts(texts)), -1).numpy(), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="blended teacher.*combine: prob"):
        load_ensemble([str(blended), str(other)], combine="logprob")


def test_the_console_line_says_why_a_blend_that_gained_was_not_kept(tmp_path):
    from zuoxiao.core.results import FinetuneResult

    m = {"accuracy": 0.886, "eval_source": "task.eval", "teacher": {"dev": {"accuracy": 0.9125}},
         "baseline": {"dev": {"accuracy": 0.7975}},
         "blend": {"chosen": False, "saved": False, "gain_points": 0.5,
                   "reason": "gain 0.5 points, 2 vs 0 rows, p = 0.25 > finetune.blend_max_p=0.05"}}
    line = FinetuneResult.from_metrics(tmp_path, m).headline_text()
    assert line.endswith("; the teacher labels alone (blend with the baseline not kept: gain 0.5 points, "
                         "2 vs 0 rows, p = 0.25 > finetune.blend_max_p=0.05)"), line
    m["blend"] = {"chosen": False, "saved": False, "gain_points": 0.0, "reason": "no weight beats the transformer"}
    assert "blend" not in FinetuneResult.from_metrics(tmp_path, m).headline_text()  # nothing gained: nothing to say
