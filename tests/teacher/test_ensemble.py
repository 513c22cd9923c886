"""Teacher ensembles: two tiny teachers with different tokenizers, combined like one classifier."""

import numpy as np
import pytest
import torch

from tests.pipelines.tiny_teacher import build_tiny_teacher
from tests.student.conftest import make_tiny_bert, one_thread
from zuoxiao.core.config import parse_config
from zuoxiao.core.config.base import TeacherSpec
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.evaluate import predict_logits
from zuoxiao.core.fingerprint import teacher_fingerprint
from zuoxiao.teacher import TeacherSource, load_teacher
from zuoxiao.teacher.classifier import fingerprint, load_classifier, load_tokenizer
from zuoxiao.teacher.ensemble import EnsembleClassifier, combine_logits

__all__ = ["one_thread"]
TEXTS = ["the movie was good", "awful plot", "a very sad story", "great actor, fine film", "the"]


def load_ensemble(members, label_names=None, combine="prob", max_length=128):
    return load_teacher(TeacherSource.of_spec(TeacherSpec(members=members, combine=combine, max_length=max_length)),
                        label_names)


def load_spec(spec):
    return load_teacher(TeacherSource.of_spec(spec))


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two task-trained-looking teachers over different vocabularies (so different token ids)."""
    d = tmp_path_factory.mktemp("members")
    a = build_tiny_teacher(d / "a", label_names=["neg", "pos"], seed=1)
    b = make_tiny_bert(d / "b", num_labels=2, layers=1, seed=2)
    model = load_classifier(str(b), ["neg", "pos"])  # give b the same label names as a
    model.save_pretrained(str(b))
    c = build_tiny_teacher(d / "c", label_names=["pos", "neg"], seed=3)  # same classes, other order
    return {"a": str(a), "b": str(b), "c": str(c)}


def _member_logits(path, texts):
    return predict_logits(load_classifier(path), load_tokenizer(path), texts, 32)


def test_members_really_tokenise_differently(members):
    ta, tb = load_tokenizer(members["a"]), load_tokenizer(members["b"])
    assert ta("good movie")["input_ids"] != tb("good movie")["input_ids"]


def test_prob_combine_is_the_weighted_mean_of_member_probabilities(members):
    ens = load_ensemble([{"path": members["a"], "weight": 3}, {"path": members["b"]}], max_length=32)
    out = ens.predict_texts(TEXTS)  # [N, C]
    pa = torch.softmax(torch.tensor(_member_logits(members["a"], TEXTS)), -1).numpy()
    pb = torch.softmax(torch.tensor(_member_logits(members["b"], TEXTS)), -1).numpy()
    expected = 0.75 * pa + 0.25 * pb
    assert out.shape == (len(TEXTS), 2) and ens.label_names == ["neg", "pos"]
    np.testing.assert_allclose(torch.softmax(torch.tensor(out), -1).numpy(), expected, atol=1e-5)
    assert ens.kind == "ensemble" and ens.module is ens.members[0].teacher.model  # timed and counted


def test_logprob_combine_is_the_normalised_weighted_sum_of_log_probabilities(members):
    ens = load_ensemble([members["a"], members["b"]], combine="logprob", max_length=32)
    la = torch.log_softmax(torch.tensor(_member_logits(members["a"], TEXTS)), -1)
    lb = torch.log_softmax(torch.tensor(_member_logits(members["b"], TEXTS)), -1)
    expected = torch.log_softmax(0.5 * la + 0.5 * lb, -1).numpy()
    np.testing.assert_allclose(ens.predict_texts(TEXTS), expected, atol=1e-5)


def test_combine_logits_on_known_numbers():
    z1, z2 = np.log([[0.9, 0.1]]), np.log([[0.5, 0.5]])
    np.testing.assert_allclose(np.exp(combine_logits([z1, z2], [1, 1], "prob")), [[0.7, 0.3]], atol=1e-6)
    geo = np.sqrt([0.45, 0.05]) / np.sqrt([0.45, 0.05]).sum()
    np.testing.assert_allclose(np.exp(combine_logits([z1, z2], [1, 1], "logprob")), [geo], atol=1e-6)


def test_members_that_disagree_on_labels_are_a_config_error(members):
    with pytest.raises(ConfigError, match=r"disagree on label names.*\['neg', 'pos'\].*\['pos', 'neg'\]") as err:
        load_ensemble([members["a"], members["c"]])
    assert err.value.exit_code == 2
    with pytest.raises(ConfigError, match="task.label_names"):
        load_ensemble([members["a"], members["b"]], label_names=["x", "y"])


def test_fingerprint_covers_every_member_weight_and_rule(members):
    def fp(**kw):
        spec = TeacherSpec(members=kw.pop("members", [members["a"], members["b"]]), max_length=32, **kw)
        return load_spec(spec).fingerprint()

    base = fp()
    assert base == fp()  # stable across loads
    assert base != fp(combine="logprob")
    assert base != fp(members=[{"path": members["a"], "weight": 2}, members["b"]])
    single = fingerprint(load_classifier(members["a"]))
    assert base != single
    # the run's stage fingerprint (by file bytes) lists every member and its weight
    rec = teacher_fingerprint(TeacherSpec(members=[members["a"], {"path": members["b"], "weight": 2}]))
    assert [m["weight"] for m in rec["members"]] == [1.0, 2.0] and rec["combine"] == "prob"
    assert all(m["dir_files"] for m in rec["members"])


def test_the_label_handler_uses_an_ensemble_like_one_classifier(members):
    ens = load_spec(TeacherSpec(members=[members["a"], members["b"]], max_length=32))
    assert isinstance(ens, EnsembleClassifier)
    ids = [load_tokenizer(members["a"])(t)["input_ids"] for t in TEXTS]
    np.testing.assert_allclose(ens.to("cpu").predict_batch(ids, TEXTS), ens.predict_texts(TEXTS), atol=1e-6)
    # the manifest's record re-creates the same ensemble (train and compress, Beam workers)
    again = load_teacher(TeacherSource.of_record(ens.record()))
    assert again.fingerprint() == ens.fingerprint() and again.kind == "ensemble"


def test_config_of_members():
    t = parse_config({"label": {"input": {"path": "in.jsonl"}, "teacher": {"members": ["x", {"path": "y", "weight": 0.5}],
                                            "combine": "logprob"}}}).label.teacher
    assert [(m.path, m.weight) for m in t.members] == [("x", 1.0), ("y", 0.5)]
    for bad, msg in [({"members": ["x"]}, "at least 2"),
                     ({"members": ["x", "y"], "path": "z"}, "remove teacher.path"),
                     ({"members": ["x", "x"]}, "more than once"),
                     ({"members": ["x", {"path": "y", "weight": 0}]}, "weight"),
                     ({"members": ["x", "y"], "combine": "max"}, "combine")]:
        with pytest.raises(ConfigError, match=msg):
            parse_config({"label": {"input": {"path": "in.jsonl"}, "teacher": bad}})


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_label_stage_labels_with_the_ensemble(tmp_path, members, mode):
    """label.teacher.members through the Beam pipeline: shard logits = the ensemble's, fingerprint = its."""
    import json

    import pyarrow.parquet as pq

    from zuoxiao.pipelines.label import label_from_config

    texts = [t for t in TEXTS if t != "the"] * 2 + ["good", "bad bad"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "id": f"r{i}"}) + "\n"
                                               for i, t in enumerate(texts)))
    beam = {"direct_num_workers": 2, "direct_running_mode": mode} if mode != "in_memory" else {}
    cfg = parse_config({"output_dir": str(tmp_path / "o"), "label": {
        "input": {"path": str(tmp_path / "in.jsonl"), "label_column": None, "id_column": "id"},
        "teacher": {"members": [members["a"], {"path": members["b"], "weight": 2}], "max_length": 32,
                    "num_threads": 1},
        "batch_size": 4, "beam": beam}})
    m = label_from_config(cfg, tmp_path / "label")
    ens = load_spec(cfg.label.teacher)
    assert m["teacher"]["fingerprint"] == ens.fingerprint() and m["teacher"]["combine"] == "prob"
    assert [x["weight"] for x in m["teacher"]["members"]] == [1.0, 2.0] and m["label_names"] == ["neg", "pos"]
    rows = {r["id"]: r for s in m["shards"] for r in pq.read_table(tmp_path / "label" / s["file"]).to_pylist()}
    got = np.array([rows[f"r{i}"]["logits"] for i in range(len(texts))])
    np.testing.assert_allclose(got, ens.predict_texts(texts), atol=1e-4)
    with pytest.raises(ConfigError, match="members and finetune are both set"):
        label_from_config(parse_config({**cfg.model_dump(mode="json"), "finetune": {"data": {"path": "g.jsonl"}}}),
                          tmp_path / "x")
