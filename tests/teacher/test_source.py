"""TeacherSource decides a teacher's kind once, from the config (of_spec) or the manifest's record (of_record)."""

import json

import pytest

from zuoxiao.core.config.base import TeacherSpec
from zuoxiao.teacher import TeacherSource, load_teacher


def test_of_record_decides_the_kind_from_what_the_label_stage_recorded(tmp_path):
    blended = tmp_path / "blended"
    blended.mkdir()
    (blended / "blend.json").write_text(json.dumps({"baseline_weight": 0.3}))
    recipe = {"path": "/x", "max_length": 16}
    cases = [({"path": "a", "llm_recipe": recipe}, "causal_lm"),
             ({"path": "a", "members": [{"path": "a", "weight": 1.0}, {"path": "b", "weight": 2.0}]}, "ensemble"),
             ({"path": str(blended)}, "blend"),
             ({"path": str(tmp_path / "plain")}, "classifier"),
             ({"path": "embedded:all-MiniLM-L6-v2"}, "classifier")]
    for record, kind in cases:
        src = TeacherSource.of_record(record, trust_remote_code=True)
        assert src.kind == kind and src.trust_remote_code and src.max_length == 128, (record, src)
    src = TeacherSource.of_record({"path": "a", "max_length": 32, "llm_recipe": recipe})
    assert src.recipe is recipe and src.max_length == 32 and not src.trust_remote_code
    ens = TeacherSource.of_record(cases[1][0])
    assert ens.members == ({"path": "a", "weight": 1.0}, {"path": "b", "weight": 2.0}) and ens.combine == "prob"


def test_of_spec_carries_trust_remote_code_and_an_ensembles_first_member():
    spec = TeacherSpec(members=["m1", {"path": "m2", "weight": 2}], combine="logprob", max_length=64,
                       trust_remote_code=True)
    src = TeacherSource.of_spec(spec)
    assert (src.kind, src.path, src.combine, src.max_length, src.trust_remote_code) == \
        ("ensemble", "m1", "logprob", 64, True)
    assert src.members == ({"path": "m1", "weight": 1.0}, {"path": "m2", "weight": 2.0})
    llm = TeacherSource.of_spec(TeacherSpec(kind="causal_lm"))
    assert llm.kind == "causal_lm" and llm.path == "embedded:smollm2-135m-instruct" and llm.spec.llm.few_shot == 0
    drawn = llm.with_llm_inputs([["good", 1], ["bad", 0]], ["a", "b"])
    assert drawn.examples == (("good", 1), ("bad", 0)) and drawn.prior_texts == ("a", "b") and drawn.kind == "causal_lm"
    with pytest.raises(TypeError, match="label_names"):
        load_teacher(llm)
    with pytest.raises(KeyError):
        load_teacher(TeacherSource("mystery", "x"))


def test_endpoint_kind_from_the_spec_and_from_the_recorded_recipe():
    """A served teacher (label.teacher.kind: endpoint) is built from the spec and rebuilt from endpoint_recipe."""
    from zuoxiao.core.config.endpoint import LabelTeacherSpec

    spec = LabelTeacherSpec(kind="endpoint", path="tok", max_length=48,
                            endpoint={"base_url": "http://127.0.0.1:1/v1/", "model": "m"})
    src = TeacherSource.of_spec(spec).with_llm_inputs([["good", 1]], None)
    assert (src.kind, src.path, src.max_length, src.recipe, src.examples) == ("endpoint", "tok", 48, None, (("good", 1),))
    assert src.spec.endpoint.base_url == "http://127.0.0.1:1/v1"  # the trailing / is cut
    with pytest.raises(TypeError, match="label_names"):
        load_teacher(src)
    recipe = {"path": "/tok", "max_length": 48, "endpoint": {"api_key_env": "K"}}
    rec = TeacherSource.of_record({"path": "tok", "max_length": 48, "endpoint_recipe": recipe})
    assert rec.kind == "endpoint" and rec.recipe is recipe and rec.max_length == 48
