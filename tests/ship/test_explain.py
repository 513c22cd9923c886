"""Bundle.explain (issue 30): word attributions by occlusion, checked by hand on a hand-built ONNX model.

logits = sum over the unmasked positions of W[token id] (Gather + ReduceSum), so masking a word removes
exactly its sub-tokens' rows of W ([MASK]'s row is zero) and every probability can be worked out on paper.
"""

import hashlib
import json
import math

import pytest

from tests.tiny import wordpiece_tokenizer
from zuoxiao.cli import main
from zuoxiao.core.errors import InputError
from zuoxiao.ship.runtime import EXPLAIN_MAX_WORDS, Bundle

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "##s"]
#: logit rows per token id: good -> c1 +2, bad -> c0 +1, ##s -> c1 +0.5, everything else 0
W = {"good": [0.0, 2.0], "bad": [1.0, 0.0], "##s": [0.0, 0.5]}
MAX_LENGTH = 8


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def occlusion_bundle(directory, max_length=MAX_LENGTH):
    import onnx
    from onnx import TensorProto, helper

    directory.mkdir(parents=True)
    tok = wordpiece_tokenizer(directory / "tok", VOCAB)
    tok.backend_tokenizer.save(str(directory / "tokenizer.json"))
    table = [W.get(t, [0.0, 0.0]) for t in VOCAB]
    graph = helper.make_graph(
        [helper.make_node("Gather", ["w", "input_ids"], ["rows"]),
         helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
         helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
         helper.make_node("Mul", ["rows", "mask3"], ["kept"]),
         helper.make_node("ReduceSum", ["kept", "axis1"], ["logits"], keepdims=0)],
        "occlusion",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "l"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "l"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 2])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [len(VOCAB), 2], [x for r in table for x in r]),
                     helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
                     helper.make_tensor("axis2", TensorProto.INT64, [1], [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, directory / "model.onnx")
    (directory / "config.json").write_text(json.dumps({
        "id2label": {"0": "c0", "1": "c1"}, "zuoxiao": {"max_length": max_length, "onnx_file": "model.onnx"}}))
    sums = [f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()}  {n}"
            for n in ("model.onnx", "tokenizer.json", "config.json")]
    (directory / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return directory


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return occlusion_bundle(tmp_path_factory.mktemp("explain") / "b")


def test_attributions_by_hand(bundle_dir):
    # "good films bad" = [CLS] good film ##s bad [SEP]: logits [1, 2.5], p(c1) = sigmoid(1.5) = 0.817574.
    # good masked: [1, 0.5] -> sigmoid(-0.5) = 0.377541; films (film + ##s, both masked): [1, 2] -> sigmoid(1)
    # = 0.731059; bad masked: [0, 2.5] -> sigmoid(2.5) = 0.924142.
    (e,) = Bundle.load(bundle_dir).explain(["good films bad"])
    p = sigmoid(1.5)
    assert e["label"] == "c1" and e["probability"] == pytest.approx(p, abs=1e-6) and e["words_total"] == 3
    assert [(w["word"], w["start"], w["end"]) for w in e["words"]] == [("good", 0, 4), ("films", 5, 10), ("bad", 11, 14)]
    expected = [p - sigmoid(-0.5), p - sigmoid(1.0), p - sigmoid(2.5)]  # 0.440033, 0.086515, -0.106568
    assert [w["attribution"] for w in e["words"]] == pytest.approx(expected, abs=1e-6)


def test_a_requested_label_and_offsets_into_odd_text(bundle_dir):
    b = Bundle.load(bundle_dir)
    (by_name,), (by_id,) = b.explain(["good films bad"], label="c0"), b.explain(["good films bad"], label=0)
    assert by_name == by_id and by_name["label"] == "c0"
    assert by_name["probability"] == pytest.approx(1 - sigmoid(1.5), abs=1e-6)
    assert by_name["words"][0]["attribution"] == pytest.approx(-(sigmoid(1.5) - sigmoid(-0.5)), abs=1e-6)
    text = "  GOOD,\tfilm  "  # case, punctuation as its own word, tabs: offsets still slice the original text
    (e,) = b.explain([text])
    assert [(text[w["start"]:w["end"]], w["word"]) for w in e["words"]] == [("GOOD", "GOOD"), (",", ","), ("film", "film")]
    with pytest.raises(InputError, match=r"label 'c7' is not one of this bundle's labels \['c0', 'c1'\]"):
        b.explain(["good"], label="c7")


def test_cap_truncation_and_empty_text(bundle_dir):
    b = Bundle.load(bundle_dir)
    (capped,) = b.explain(["good films bad"], max_words=2)
    assert [w["word"] for w in capped["words"]] == ["good", "films"] and capped["words_total"] == 3
    # max_length 8 leaves 6 text tokens: bad x5 + film fit, ##s does not: "films" is cut, so not explained.
    (cut,) = b.explain(["bad bad bad bad bad films"])
    assert [w["word"] for w in cut["words"]] == ["bad"] * 5 and cut["words_total"] == 6
    (empty,) = b.explain([""])
    assert empty["words"] == [] and empty["words_total"] == 0 and empty["label"] == "c0"  # logits [0, 0]: a tie
    assert EXPLAIN_MAX_WORDS == 64  # the model card states this number


def test_cli_predict_explain_json_and_text(bundle_dir, capsys):
    assert main(["predict", str(bundle_dir), "good films bad", "--explain"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["label"] == r["explanation"]["label"] == "c1"
    assert [w["word"] for w in r["explanation"]["words"]] == ["good", "films", "bad"]
    assert main(["predict", str(bundle_dir), "good films bad", "--explain", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "good films bad" in out and "why c1 (p 0.8176): 'good' +0.44, 'bad' -0.107, 'films' +0.0865" in out
    assert main(["predict", str(bundle_dir), "good films bad"]) == 0
    assert "explanation" not in json.loads(capsys.readouterr().out)[0]  # only when asked for
