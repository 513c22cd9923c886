"""4-bit word-embedding rows (student/compress/nbit.py): the packing by hand, the ONNX rewrite against the
fp32 graph, and the int8 + 4-bit graph that the quantize step writes."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.student.compress.compress_fixtures import dataset, wide_exported
from zuoxiao.core.config.compress import Quantize
from zuoxiao.core.errors import InputError
from zuoxiao.student.compress.export import onnx_logits, onnx_session
from zuoxiao.student.compress.nbit import pack_rows, quantize_embeddings_4bit, unpack_rows
from zuoxiao.student.compress.quantize import quantize_onnx


def test_pack_rows_by_hand():
    # row 0: min -1, max 2 -> step 0.2; -1 -> code 0, 0 -> 5, 2 -> 15, 0.5 -> 7.5 rounds to 8 (0.6)
    a = np.array([[-1.0, 0.0, 2.0, 0.5], [3.0, 3.0, 3.0, 3.0]], np.float32)
    packed, lo_step = pack_rows(a)
    assert packed.dtype == np.uint8 and packed.shape == (2, 2) and lo_step.dtype == np.float16
    # byte j = code(2j) | code(2j+1) << 4
    assert packed[0].tolist() == [0 | 5 << 4, 15 | 8 << 4]
    assert lo_step[0].tolist() == pytest.approx([-1.0, 0.2], abs=1e-3)
    back = unpack_rows(packed, lo_step)
    assert back[0] == pytest.approx([-1.0, 0.0, 2.0, 0.6], abs=2e-3)
    assert back[1] == pytest.approx([3.0] * 4, abs=2e-3)  # a constant row: step 0, every value exact


def test_pack_rows_error_is_half_a_step():
    a = np.random.default_rng(0).normal(size=(50, 64)).astype(np.float32) * np.linspace(0.01, 3, 50)[:, None]
    packed, lo_step = pack_rows(a)
    err = np.abs(unpack_rows(packed, lo_step) - a).max(1)
    step = lo_step[:, 1].astype(np.float32)
    assert np.all(err <= 0.5 * step + 2e-3 * np.abs(a).max(1))  # + fp16 rounding of lo and step
    assert packed.nbytes + lo_step.nbytes < 0.6 * a.size  # vs 1 byte per value in int8


def test_pack_rows_needs_an_even_width():
    with pytest.raises(ValueError, match="even width"):
        pack_rows(np.zeros((3, 5), np.float32))


@pytest.fixture(scope="module")
def exported():
    return wide_exported()


def _texts():
    texts, gold = dataset(1)
    return texts + [f"{a} {b} {c}" for a in ("good", "bad", "dull") for b in ("movie", "plot") for c in ("fun", "not")], gold


def test_rewrite_matches_the_fp32_graph_on_the_widened_table(exported):
    model, tok, path, d = exported
    vocab = model.config.vocab_size
    info = quantize_embeddings_4bit(path, d / "q4.onnx", vocab)
    (table,) = info["tables"]
    assert table["shape"] == [vocab, model.config.hidden_size]
    assert table["q4_bytes"] == vocab * model.config.hidden_size // 2 + vocab * 4
    g = onnx.load(str(d / "q4.onnx")).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    assert table["table"] not in inits  # the float table is gone
    # the graph on the 4-bit table computes what the fp32 graph computes on the unpacked table
    ref = onnx.load(str(path))
    for init in ref.graph.initializer:
        if init.name == table["table"]:
            widened = unpack_rows(inits[table["table"] + "_q4_packed"], inits[table["table"] + "_q4_lo_step"])
            init.CopyFrom(numpy_helper.from_array(widened.astype(np.float32), init.name))
    onnx.save(ref, str(d / "widened.onnx"))
    texts, _ = _texts()
    a = onnx_logits(onnx_session(d / "widened.onnx"), tok, texts, 32)
    b = onnx_logits(onnx_session(d / "q4.onnx"), tok, texts, 32)
    assert np.abs(a - b).max() < 1e-5
    # and stays close to the original fp32 graph
    fp32 = onnx_logits(onnx_session(path), tok, texts, 32)
    assert np.mean(fp32.argmax(-1) == b.argmax(-1)) >= 0.95


def test_quantize_with_4bit_embeddings(exported):
    model, tok, path, d = exported
    vocab, width = model.config.vocab_size, model.config.hidden_size
    i8 = quantize_onnx(path, d / "int8.onnx", embedding_bits=8, vocab_size=vocab)
    i4 = quantize_onnx(path, d / "int4.onnx", embedding_bits=4, vocab_size=vocab)
    assert i4["embedding_bits"] == 4 and "nodes" not in i4
    # the word table: vocab*width int8 bytes -> vocab*width/2 + 4 bytes of fp16 lo/step per row, plus a fixed
    # ~3.5 kB (the 2 kB byte -> codes lookup table and the new nodes' names): a real table saves ~0.3 MB
    assert i8["int8_bytes"] - i4["int8_bytes"] > vocab * (width // 2 - 4) - 3500
    g = onnx.load(str(d / "int4.onnx")).graph
    shapes = {i.name: (i.data_type, list(i.dims)) for i in g.initializer}
    packed = [n for n in shapes if n.endswith("_q4_packed")]
    assert len(packed) == 1 and shapes[packed[0]] == (onnx.TensorProto.UINT8, [vocab, width // 2])
    assert not any(n.startswith(packed[0][: -len("_q4_packed")] + "_quantized") for n in shapes)  # int8 left it
    assert any(n.op_type == "MatMulInteger" for n in g.node)  # the layers are still int8
    texts, gold = _texts()
    a = onnx_logits(onnx_session(d / "int8.onnx"), tok, texts, 32)
    b = onnx_logits(onnx_session(d / "int4.onnx"), tok, texts, 32)
    assert np.mean(a.argmax(-1) == b.argmax(-1)) >= 0.9
    assert np.mean(b[: len(gold)].argmax(-1) == np.asarray(gold)) >= 0.9


def test_no_vocabulary_table_is_a_clear_error(exported):
    model, _, path, d = exported
    with pytest.raises(InputError, match=r"no Gather over a \[7, k\] float table.*embedding_bits: 8"):
        quantize_embeddings_4bit(path, d / "none.onnx", 7)


def test_config_needs_the_onnx_backend():
    assert Quantize(kind="quantize", embedding_bits=4).embedding_bits == 4
    with pytest.raises(ValueError, match="embedding_bits=4 needs backend=onnx"):
        Quantize(kind="quantize", backend="torch", embedding_bits=4)
