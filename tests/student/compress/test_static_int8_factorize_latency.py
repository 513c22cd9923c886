"""Static int8 quantisation and saved graph optimisation (quantize.py), embedding factorisation
(embeddings.py), tokenizer-inclusive latency and CPU info (latency.py), and a compress stage run of those steps."""

import copy
import json

import numpy as np
import pytest
import torch

from tests.student.compress.compress_fixtures import (
    dataset,
    make_stage_root,
    wide_exported,
)
from zuoxiao.core.config import parse_config
from zuoxiao.core.config.views import CompressView
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.evaluate import predict_logits
from zuoxiao.student.compress.embeddings import factorize_embeddings, token_counts
from zuoxiao.student.compress.export import export_onnx, input_names, max_abs_diff, onnx_logits, onnx_session
from zuoxiao.student.compress.latency import measure, torch_threads
from zuoxiao.student.compress.lowrank import LowRankEmbedding, low_rank
from zuoxiao.student.compress.modelio import load_model, save_model
from zuoxiao.student.compress.quantize import optimize_onnx, quantize_onnx_static

TEXTS = dataset(1)[0] + [f"{a} {b} {c}" for a in ("good", "bad", "dull") for b in ("movie", "plot") for c in ("fun", "not")]


@pytest.fixture(scope="module")
def trained():
    return wide_exported()


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_static_int8_is_smaller_and_close_to_fp32(trained, method):
    _, tok, path, d = trained
    dst = d / f"static-{method}.onnx"
    info = quantize_onnx_static(path, dst, tok, TEXTS, ["input_ids", "attention_mask", "token_type_ids"], 32,
                                method=method)
    assert info["mode"] == "static" and info["format"] == "QDQ" and info["calibration_rows"] == len(TEXTS)
    assert info["int8_bytes"] < 0.6 * info["fp32_bytes"]
    import onnx

    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format, not QOperator
    fp32 = onnx_logits(onnx_session(path), tok, TEXTS, 32)
    int8 = onnx_logits(onnx_session(dst), tok, TEXTS, 32)
    assert np.mean(fp32.argmax(-1) == int8.argmax(-1)) >= 0.9
    assert np.abs(fp32 - int8).max() < 0.5 * np.abs(fp32).max()


@pytest.mark.parametrize("level", ["basic", "extended"])
def test_saved_graph_optimisation_keeps_outputs(trained, level):
    _, tok, path, d = trained
    dst = d / f"opt-{level}.onnx"
    info = optimize_onnx(path, dst, level)
    assert dst.is_file() and info["optimize"] == level
    ref = onnx_logits(onnx_session(path), tok, TEXTS, 32)
    got = onnx_logits(onnx_session(dst), tok, TEXTS, 32)
    assert np.abs(ref - got).max() < 1e-4


def test_factorize_embeddings_params_reload_and_onnx(trained, tmp_path):
    model, tok, _, _ = trained
    m = copy.deepcopy(model)
    vocab, dim = m.bert.embeddings.word_embeddings.weight.shape
    before = sum(p.numel() for p in m.parameters())
    info = factorize_embeddings(m, tok, TEXTS * 3, rank=8)
    assert isinstance(m.bert.embeddings.word_embeddings, LowRankEmbedding)
    assert info["params_saved"] == vocab * dim - 8 * (vocab + dim)
    assert before - sum(p.numel() for p in m.parameters()) == info["params_saved"]
    ref = predict_logits(m, tok, TEXTS, 32)
    save_model(m, tok, tmp_path / "fact")
    assert json.loads((tmp_path / "fact" / "structure.json").read_text())["low_rank"] == {
        "bert.embeddings.word_embeddings": 8}
    back, tok2 = load_model(tmp_path / "fact")
    assert np.abs(predict_logits(back, tok2, TEXTS, 32) - ref).max() < 1e-5
    onnx_path = export_onnx(back, tok2, tmp_path / "fact.onnx")
    assert max_abs_diff(back, tok2, onnx_path, TEXTS, 32) < 1e-4


def test_weighted_centred_fit_beats_plain_svd_on_used_tokens(trained):
    """The mean folded into token types is exact; the weighted affine fit has the lower weighted error."""
    model, tok, _, _ = trained
    emb = model.bert.embeddings
    counts = token_counts(tok, TEXTS, emb.word_embeddings.num_embeddings)
    w = torch.as_tensor(counts + 1.0)

    def weighted_err(m):
        e = m.bert.embeddings
        # what a token contributes before LayerNorm: its word row + token-type row 0
        got = e.word_embeddings.weight + e.token_type_embeddings.weight[0]
        ref = emb.word_embeddings.weight + emb.token_type_embeddings.weight[0]
        return float(((got - ref).pow(2).sum(1) * w).sum().detach())

    plain, ours = copy.deepcopy(model), copy.deepcopy(model)
    low_rank(plain, [r"word_embeddings$"], rank=6)
    factorize_embeddings(ours, tok, TEXTS, rank=6)
    assert weighted_err(ours) < weighted_err(plain)


def test_factorize_rejects_useless_rank_and_second_factorisation(trained):
    model, tok, _, _ = trained
    m = copy.deepcopy(model)
    with pytest.raises(InputError, match="rank=64 is not below the embedding width 64"):
        factorize_embeddings(m, tok, TEXTS, rank=64)
    factorize_embeddings(m, tok, TEXTS, rank=8)
    with pytest.raises(InputError, match="already factorised"):
        factorize_embeddings(m, tok, TEXTS, rank=4)


def test_latency_with_tokenizer_is_at_least_model_only(trained):
    model, tok, path, _ = trained
    names = input_names(tok, model)
    with torch_threads(1):
        for kind, obj in (("onnx", path), ("torch", model)):
            lat = measure(kind, obj, model.config.vocab_size, names, seq_len=16, batches=(1,), runs=5,
                          tokenizer=tok, texts=TEXTS)
            t = lat["b1_with_tokenizer"]
            assert t["tokens"] == 16 and t["p50"] >= t["model_p50"] > 0 and lat["b1"]["p50"] > 0


def test_cpu_info_reads_x86_and_arm_cpuinfo():
    from zuoxiao.student.compress.latency import cpu_info

    x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n"
    info = cpu_info(x86)
    assert info["cpu"] == "AMD EPYC 7B13" and info["simd"] == ["avx2"] and info["int8_dot_product"] is False
    vnni = x86.replace("avx2 fma", "avx2 avx512f avx512_vnni")
    assert cpu_info(vnni)["simd"] == ["avx512_vnni", "avx512f", "avx2"] and cpu_info(vnni)["int8_dot_product"]
    arm = "processor\t: 0\nFeatures\t: fp asimd asimddp crc32\n"
    assert cpu_info(arm)["simd"] == ["asimddp", "asimd"] and cpu_info(arm)["int8_dot_product"]
    assert cpu_info("")["simd"] == [] and cpu_info()["cores"] >= 1


def test_static_mode_needs_onnx_backend():
    with pytest.raises(ConfigError, match="static needs backend=onnx"):
        parse_config({"task": {"name": "x"}, "compress": {"steps": [{"kind": "quantize", "backend": "torch",
                                                                       "mode": "static"}]}})


def test_stage_runs_new_steps_and_reports_them(tmp_path):
    from zuoxiao.student.compress.stage import compress

    steps = [{"kind": "vocab_trim"}, {"kind": "factorize_embeddings", "rank": 8},
             {"kind": "recover", "steps": 2, "batch_size": 8},
             {"kind": "quantize", "mode": "static", "calibration_rows": 16, "optimize": "extended"}]
    with torch_threads(1):
        cfg, paths = make_stage_root(tmp_path, steps=steps)
        compress(CompressView.of(cfg), paths)
    report = json.loads((paths.compress / "report.json").read_text())
    rec = {r["kind"]: r for r in report["steps"]}
    fact = rec["factorize_embeddings"]
    assert fact["params"] == rec["vocab_trim"]["params"] - fact["info"]["params_saved"]
    q = rec["quantize"]["info"]
    assert q["mode"] == "static" and q["calibration_rows"] == 16 and q["optimize_max_abs_diff"] < 1e-3
    for r in report["steps"] + [report["teacher"]]:
        t = r["latency_ms"]["b1_with_tokenizer"]
        assert t["p50"] >= t["model_p50"] > 0
    md = (paths.compress / "report.md").read_text()
    assert "02-factorize_embeddings" in md and "with tokenizer" in md
