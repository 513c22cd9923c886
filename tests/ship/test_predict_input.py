"""`predict` on input the model cannot judge (issue 8): empty text, text over max_length, NaN outputs.

Before: an empty string got a confident label with no word, a long text was cut silently, and a model
with NaN outputs printed `NaN` probabilities (not valid JSON) with exit 0.
A hand-built ONNX model keeps this fast: logits = (number of tokens) x W, W [1, C].
"""

import hashlib
import json

import pytest

from tests.tiny import wordpiece_tokenizer
from zuoxiao.cli import main
from zuoxiao.core.errors import IntegrityError
from zuoxiao.ship.runtime import Bundle

MAX_LENGTH = 8


def _bundle(directory, weights):
    import onnx
    from onnx import TensorProto, helper

    directory.mkdir(parents=True)
    tok = wordpiece_tokenizer(directory / "tok", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"])
    tok.backend_tokenizer.save(str(directory / "tokenizer.json"))
    graph = helper.make_graph(
        [helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
         helper.make_node("ReduceSum", ["mask_f", "axes"], ["count"], keepdims=1),
         helper.make_node("Mul", ["count", "w"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "l"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "l"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", len(weights)])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
                     helper.make_tensor("w", TensorProto.FLOAT, [1, len(weights)], weights)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, directory / "model.onnx")
    (directory / "config.json").write_text(json.dumps({
        "id2label": {str(i): f"c{i}" for i in range(len(weights))},
        "zuoxiao": {"max_length": MAX_LENGTH, "onnx_file": "model.onnx"}}))
    sums = [f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()}  {n}"
            for n in ("model.onnx", "tokenizer.json", "config.json")]
    (directory / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return directory


def test_empty_and_truncated_input_are_flagged_in_the_json(tmp_path, capsys):
    d = _bundle(tmp_path / "b", [0.1, -0.1])
    out = Bundle.load(d).predict(["good film", "", "   ", "good " * 20])
    assert [o.get("warning") for o in out] == [None, "empty_input", "empty_input", None]
    assert [o["truncated"] for o in out] == [False, False, False, True]
    assert out[3]["num_tokens"] == 22 and out[3]["max_length"] == MAX_LENGTH  # 20 words + [CLS] [SEP]
    assert main(["predict", str(d), "good film", " ", "bad " * 20]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert printed[1]["warning"] == "empty_input" and printed[2]["truncated"] is True
    assert "text 1 is empty or blank" in captured.err and "text 2 has 22 tokens; only the first 8" in captured.err


def test_non_finite_model_output_exits_5_with_valid_stdout(tmp_path, capsys):
    d = _bundle(tmp_path / "b", [float("nan"), 0.0])
    with pytest.raises(IntegrityError, match=r"non-finite outputs \(NaN/inf\) for text\(s\) \[0\]"):
        Bundle.load(d).predict(["good film"])
    assert main(["predict", str(d), "good film"]) == 5
    captured = capsys.readouterr()
    assert captured.out == "" and "bundle is broken" in captured.err
