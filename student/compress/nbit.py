"""4-bit word-embedding rows in the ONNX graph: the vocabulary table at half its int8 bytes.

After vocab_trim and factorize_embeddings, the table ``A [V, r]`` (or the plain ``[V, d]`` table) is
still the largest tensor of a 2-layer student (V * r bytes in int8, ~30% of the bundle). Only the rows
of the tokens in a text are ever read, so the table can be stored at 4 bits per value and widened on the
fly, row by row, after the Gather:

    packed [V, r/2] uint8   two 4-bit codes per byte (low nibble = even column, high nibble = odd)
    lo_step [V, 2] float16  per row: the row's minimum and its step (max - min) / 15

    row(v) = lo(v) + code(v, j) * step(v),  code in 0..15

An asymmetric per-row grid uses all 16 levels on every row, whatever its scale (rare tokens' rows are
small, frequent ones large). The subgraph uses only standard ONNX ops (Gather, Cast, Reshape, Mul,
Add), so ONNX Runtime on CPU, in Node, in the browser and on phones (ORT format) runs it as it is; the
cost is 10 small ops on [batch, tokens, r/2] after the lookup. The rewrite runs on the fp32 graph,
before dynamic int8 quantisation, which then leaves the uint8/fp16 tables alone.
"""

from __future__ import annotations

import numpy as np

PACKED_SUFFIX = "_q4_packed"
SCALE_SUFFIX = "_q4_lo_step"


def pack_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a [V, k] float (k even) -> (packed [V, k/2] uint8, lo_step [V, 2] float16)."""
    a = np.asarray(a, np.float32)
    if a.ndim != 2 or a.shape[1] % 2:
        raise ValueError(f"4-bit rows need a 2-D table with an even width, got shape {a.shape}")
    lo = a.min(1, keepdims=True).astype(np.float16).astype(np.float32)
    step = ((a.max(1, keepdims=True) - lo) / 15).astype(np.float16).astype(np.float32)
    # quantise against the fp16-rounded lo/step the graph will use, so the codes fit what is stored
    codes = np.rint((a - lo) / np.where(step > 0, step, 1)).clip(0, 15).astype(np.uint8)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    return packed, np.concatenate([lo, step], 1).astype(np.float16)


def unpack_rows(packed: np.ndarray, lo_step: np.ndarray) -> np.ndarray:
    """The float table [V, k] the graph computes (numpy reference for tests and error reports)."""
    codes = np.stack([packed & 15, packed >> 4], -1).reshape(packed.shape[0], -1).astype(np.float32)
    lo, step = lo_step.astype(np.float32).T
    return lo[:, None] + codes * step[:, None]


def embedding_gathers(graph, vocab_size: int) -> list:
    """Gather nodes whose data input is a float32 initializer with ``vocab_size`` rows (the word table)."""
    from onnx import TensorProto

    inits = {i.name: i for i in graph.initializer}
    return [n for n in graph.node if n.op_type == "Gather" and n.input[0] in inits
            and inits[n.input[0]].data_type == TensorProto.FLOAT and len(inits[n.input[0]].dims) == 2
            and inits[n.input[0]].dims[0] == vocab_size and inits[n.input[0]].dims[1] % 2 == 0]


def quantize_embeddings_4bit(src, dst, vocab_size: int) -> dict:
    """Rewrite every vocabulary-sized float Gather table of the ONNX file ``src`` to 4-bit rows; write ``dst``.
    Returns what was replaced (name, shape, bytes before/after, max |error|) and the names of the new
    nodes, which int8 quantisation must leave alone."""
    import onnx
    from onnx import numpy_helper

    from zuoxiao.core.errors import InputError

    model = onnx.load(str(src))
    graph = model.graph
    gathers = embedding_gathers(graph, vocab_size)
    if not gathers:
        raise InputError(f"no Gather over a [{vocab_size}, k] float table (k even) in {src}: nothing to store "
                         "in 4 bits; set quantize.embedding_bits: 8")
    inits = {i.name: i for i in graph.initializer}
    tables, names, report = {}, [], []
    for k, g in enumerate(gathers):
        name = g.input[0]
        if name not in tables:
            a = numpy_helper.to_array(inits[name])
            packed, lo_step = pack_rows(a)
            tables[name] = a.shape[1]
            graph.initializer.remove(inits[name])
            graph.initializer.extend([numpy_helper.from_array(packed, name + PACKED_SUFFIX),
                                      numpy_helper.from_array(lo_step, name + SCALE_SUFFIX)])
            err = float(np.abs(unpack_rows(packed, lo_step) - a).max())
            report.append({"table": name, "shape": list(a.shape), "fp32_bytes": a.nbytes, "int8_bytes": a.size,
                           "q4_bytes": packed.nbytes + lo_step.nbytes, "max_abs_error": round(err, 6)})
        nodes, consts = _widen(name, tables[name], g.input[1], g.output[0], f"q4emb{k}")
        graph.initializer.extend(consts)
        at = list(graph.node).index(g)  # the Gather's inputs exist here and its consumers come later
        graph.node.remove(g)
        for i, n in enumerate(nodes):
            graph.node.insert(at + i, n)
        names += [n.name for n in nodes]
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return {"embedding_bits": 4, "tables": report, "nodes": names}


def _widen(table: str, width: int, ids: str, out: str, p: str) -> tuple[list, list]:
    """Nodes + constants computing ``out`` [..., width] float from ``ids`` [...] and the 4-bit table.

    A byte's two codes come from a 256-row lookup table (byte -> [low nibble, high nibble] as floats): one
    Gather instead of integer division and remainder, so the widening is 10 small ops."""
    from onnx import TensorProto, helper, numpy_helper

    byte = np.arange(256)
    nibbles = np.stack([byte & 15, byte >> 4], 1).astype(np.float32)  # [256, 2]
    consts = [numpy_helper.from_array(nibbles, f"{p}/nibbles"),
              numpy_helper.from_array(np.array([0, 0, width], np.int64), f"{p}/shape"),
              numpy_helper.from_array(np.array([0], np.int64), f"{p}/i0"),
              numpy_helper.from_array(np.array([1], np.int64), f"{p}/i1")]
    nodes = []

    def node(op, ins, name, **kw):
        nodes.append(helper.make_node(op, ins, [name], name=f"{name}/{op}", **kw))
        return name

    b = node("Cast", [node("Gather", [table + PACKED_SUFFIX, ids], f"{p}/bytes", axis=0)], f"{p}/b32",
             to=TensorProto.INT32)  # [..., width/2]
    pair = node("Gather", [f"{p}/nibbles", b], f"{p}/pair", axis=0)  # [..., width/2, 2]
    codes = node("Reshape", [pair, f"{p}/shape"], f"{p}/codes")  # [..., width]: 0 keeps batch and tokens
    ls = node("Cast", [node("Gather", [table + SCALE_SUFFIX, ids], f"{p}/ls16", axis=0)], f"{p}/ls",
              to=TensorProto.FLOAT)  # [..., 2]: the row's lo and step
    lo_v = node("Gather", [ls, f"{p}/i0"], f"{p}/lo_v", axis=-1)  # [..., 1]
    step_v = node("Gather", [ls, f"{p}/i1"], f"{p}/step_v", axis=-1)
    nodes.append(helper.make_node("Add", [node("Mul", [codes, step_v], f"{p}/scaled"), lo_v], [out],
                                  name=f"{p}/Add"))
    return nodes, consts
