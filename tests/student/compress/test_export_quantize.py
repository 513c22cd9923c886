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


def test_export_uses_the_short_additive_mask_and_leaves_the_model_as_it_was(exported):
    import onnx

    model, tok, path, _ = exported
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    # transformers' SDPA mask builder traces to Range/And/IsNaN/Where over [B, 1, T, T]; the short mask has none
    assert not ops & {"Range", "IsNaN", "Where", "And"}, ops
    assert not model.training and model.config._attn_implementation != "eager"


def test_export_falls_back_to_the_plain_trace_when_the_forward_rejects_a_4d_mask(tmp_path):
    import onnx
    from transformers import BertForSequenceClassification

    from tests.student.compress.compress_fixtures import make_model, make_tokenizer
    from zuoxiao.student.compress.export import export_onnx

    class TwoDMaskOnly(BertForSequenceClassification):
        def forward(self, attention_mask=None, **kw):
            assert attention_mask.dim() == 2, "this model takes [batch, sequence] masks only"
            return super().forward(attention_mask=attention_mask, **kw)

    base = make_model()
    model = TwoDMaskOnly(base.config).eval()
    model.load_state_dict(base.state_dict())
    tok = make_tokenizer(tmp_path / "tok")
    path = export_onnx(model, tok, tmp_path / "m.onnx")
    assert "Where" in {n.op_type for n in onnx.load(str(path)).graph.node}  # the plain trace
    texts, _ = dataset(1)
    assert max_abs_diff(model, tok, path, texts + ["the plot " * 9], max_length=48) < 1e-4


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


def test_residual_adds_become_sums_so_onnxruntime_does_not_fuse_skip_layernorm(exported, tmp_path):
    import onnx
    import onnxruntime as ort

    model, tok, path, _ = exported
    fused = quantize_onnx(path, tmp_path / "fused.onnx", residual_sum=False)
    summed = quantize_onnx(path, tmp_path / "summed.onnx")
    # 2 layers x 2 residual LayerNorms + the embeddings' LayerNorm
    assert "residual_sums" not in fused and summed["residual_sums"] == 5

    def loaded_ops(p):  # the graph as ONNX Runtime runs it, after its load-time fusions
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(p.with_suffix(".opt.onnx"))
        ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        return {n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node}

    assert "SkipLayerNormalization" in loaded_ops(tmp_path / "fused.onnx")
    ops = loaded_ops(tmp_path / "summed.onnx")
    assert "SkipLayerNormalization" not in ops and {"Sum", "LayerNormalization"} <= ops
    texts, _ = dataset(1)
    a = onnx_logits(onnx_session(tmp_path / "fused.onnx"), tok, texts, 32)
    b = onnx_logits(onnx_session(tmp_path / "summed.onnx"), tok, texts, 32)
    assert np.allclose(a, b, atol=1e-5)


def test_torch_dynamic_int8_agrees(exported):
    model, tok, _, _ = exported
    import copy

    texts, _ = dataset(1)
    q = quantize_torch(copy.deepcopy(model))
    assert any("quantized" in type(m).__module__ for m in q.modules())
    a = predict_logits(model, tok, texts, 32).argmax(-1)
    b = predict_logits(q, tok, texts, 32).argmax(-1)
    assert np.mean(a == b) >= 0.9
