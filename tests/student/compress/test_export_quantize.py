import numpy as np
import pytest

from tests.student.compress.compress_fixtures import dataset, wide_exported
from zuoxiao.core.evaluate import predict_logits
from zuoxiao.student.compress.export import max_abs_diff, onnx_logits, onnx_session
from zuoxiao.student.compress.quantize import quantize_onnx, quantize_torch


@pytest.fixture(scope="module")
def exported():
    return wide_exported()


def test_onnx_matches_pytorch_with_dynamic_batch_and_length(exported):
    model, tok, path, _ = exported
    texts, _ = dataset(1)
    texts = texts + ["a much longer text about the plot and the actors and the story of the film " * 2]
    assert max_abs_diff(model, tok, path, texts, max_length=48) < 1e-4
    sess = onnx_session(path)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert onnx_logits(sess, tok, texts[:1], 48).shape == (1, 2)


def test_quantised_predictions_agree_with_fp32(exported):
    model, tok, path, d = exported
    info = quantize_onnx(path, d / "int8.onnx", per_channel=True, reduce_range="auto")
    assert info["int8_bytes"] < info["fp32_bytes"]
    texts, gold = dataset(1)
    texts = texts + [f"{a} {b} {c}" for a in ("good", "bad", "dull") for b in ("movie", "plot") for c in ("fun", "not")]
    fp32 = onnx_logits(onnx_session(path), tok, texts, 32)
    int8 = onnx_logits(onnx_session(d / "int8.onnx"), tok, texts, 32)
    assert np.mean(fp32.argmax(-1) == int8.argmax(-1)) >= 0.9
    assert np.abs(fp32 - int8).max() < 0.5 * np.abs(fp32).max()
    assert np.mean(int8[: len(gold)].argmax(-1) == np.asarray(gold)) >= 0.9


def test_torch_dynamic_int8_agrees(exported):
    model, tok, _, _ = exported
    import copy

    texts, _ = dataset(1)
    q = quantize_torch(copy.deepcopy(model))
    assert any("quantized" in type(m).__module__ for m in q.modules())
    a = predict_logits(model, tok, texts, 32).argmax(-1)
    b = predict_logits(q, tok, texts, 32).argmax(-1)
    assert np.mean(a == b) >= 0.9
