"""One function per compression step kind, and the measurement every step gets afterwards.

A step takes the current ``State`` (a PyTorch model, or after quantisation an ONNX file) and writes its
result to its own directory under paths.compress, so every intermediate model can be inspected, reloaded
(zuoxiao.student.compress.modelio.load_model) or exported again.
"""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from zuoxiao.core.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class State:
    model: object  # torch model (float or torch.ao int8); None once the model is an ONNX file
    tokenizer: object
    onnx: Path | None  # set once the model lives as an ONNX graph
    runtime: str  # "torch", "torch-int8", "onnx", "onnx-int8"
    dir: Path  # artefact directory of this state
    float_model: object = None  # the float model behind a torch-int8 one (for ONNX export)
    params: int = 0
    extra: dict = field(default_factory=dict)


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _save(state: State, out: Path) -> State:
    from zuoxiao.student.compress.modelio import save_model

    save_model(state.model, state.tokenizer, out)
    return replace(state, dir=out, params=_params(state.model))


def apply(ctx, state: State, step, out: Path) -> tuple[State, dict]:
    """Run one configured step; returns the new state and what the step reports about itself."""
    if state.model is None and step.kind != "quantize":
        raise InputError(f"step {step.kind} comes after the model became ONNX; move it before quantize")
    if state.runtime == "torch-int8":
        raise InputError("no step can follow a torch int8 quantize step; make quantize the last step")
    _refuse_for_static(state.model, step.kind)
    fn = {"vocab_trim": _vocab, "prune_heads": _structured, "prune_neurons": _structured,
          "prune_layers": _layers, "magnitude": _magnitude, "low_rank": _low_rank, "recover": _recover,
          "factorize_embeddings": _factorize, "quantize": _quantize}[step.kind]
    shutil.rmtree(out, ignore_errors=True)  # a rerun replaces the step's old artefacts
    out.mkdir(parents=True)
    return fn(ctx, state, step, out)


def _refuse_for_static(model, kind: str) -> None:
    """A static student (student/static.py) is a token table and a head: steps that cut transformer blocks
    have nothing to cut, so they are refused (not skipped: the recipe asked for a size it would not get)."""
    from zuoxiao.core.config.train import STATIC_REFUSED_STEPS
    from zuoxiao.student.static import is_static

    if model is not None and is_static(model) and kind in STATIC_REFUSED_STEPS:
        raise InputError(f"compress step {kind}: {STATIC_REFUSED_STEPS[kind]}; remove it from compress.steps "
                         "(vocab_trim, recover and quantize apply to a static student)")


def _vocab(ctx, state, step, out):
    from zuoxiao.student.compress import vocab_auto as A
    from zuoxiao.student.compress.vocab import token_counts, trim_vocab, unk_rate
    from zuoxiao.student.transfer import read_transfer

    ts = read_transfer(ctx.paths.label, limit=step.max_rows, seed=ctx.cfg.seed)
    dev = _dev_rows(ctx, step.dev_rows)
    bs = ctx.cc.eval_batch_size
    dev_before = A.accuracy(state.model, state.tokenizer, dev, ctx.max_length, bs) if dev else None
    report: dict = {"min_count_setting": step.min_count, "transfer_rows": len(ts.texts)}
    min_count = step.min_count
    if min_count == "auto":
        cap = A.size_cap(len(ts.texts), step.auto_rows_per_count)
        report["auto"] = {"cap": cap, "tolerance_points": step.auto_tolerance, "trials": []}
        if dev is None:
            min_count = 1
            report["auto"]["why"] = "no task.dev to measure a larger cut-off on: keep every token the transfer set uses"
        else:  # cap 1 (a small transfer set) still measures 1: it may cost too much to trim at all
            min_count, report["auto"]["trials"] = A.choose_min_count(
                state.model, state.tokenizer, ts.texts, dev, cap=cap, tolerance=step.auto_tolerance,
                keep_chars=step.keep_chars, max_length=ctx.max_length, batch_size=bs, base_accuracy=dev_before)
            report["auto"]["why"] = (
                f"the largest cut-off <= {cap} within {step.auto_tolerance:g} points of the untrimmed dev accuracy"
                if min_count else f"even min_count 1 costs more than {step.auto_tolerance:g} points on task.dev "
                "(the transfer set misses too many of its words): the vocabulary is kept whole")
    if min_count == 0:
        vocab = len(state.tokenizer)
        log.info("vocab_trim auto: not trimming (%s)", report["auto"]["why"])
        return _save(state, out), {**report, "min_count": 0, "skipped": True, "vocab_before": vocab,
                                   "vocab_after": vocab, "transfer_token_coverage": 1.0,
                                   "dev_accuracy_before": round(dev_before, 5), "dev_accuracy_after": round(dev_before, 5)}
    before_tok = state.tokenizer
    model, tok, info = trim_vocab(state.model, state.tokenizer, ts.texts, out, min_count=min_count,
                                  keep_chars=step.keep_chars, check_texts=ctx.texts)
    info.update(report, min_count=min_count,
                transfer_token_coverage=round(A.token_coverage(token_counts(before_tok, ts.texts), min_count), 5))
    if dev:
        info.update(dev_rows=len(dev[0]), dev_unk_rate_before=round(unk_rate(before_tok, dev[0]), 5),
                    dev_unk_rate_after=round(unk_rate(tok, dev[0]), 5),
                    dev_texts_changed=round(A.changed_share(before_tok, tok, dev[0]), 5),
                    dev_accuracy_before=round(dev_before, 5),
                    dev_accuracy_after=round(A.accuracy(model, tok, dev, ctx.max_length, bs), 5))
    from zuoxiao.student.static import is_static

    if step.max_positions is not None and is_static(model):
        log.info("vocab_trim.max_positions=%s skipped: a static student has no position embeddings",
                 step.max_positions)
        info["max_positions"] = "skipped: a static student has no position embeddings"
    elif step.max_positions is not None:
        from zuoxiao.student.compress.vocab import trim_positions

        if step.max_positions < ctx.max_length:
            raise InputError(f"vocab_trim.max_positions={step.max_positions} is below the max_length "
                             f"{ctx.max_length} used for eval/export; raise it to at least {ctx.max_length}")
        info.update(trim_positions(model, step.max_positions))
    return _save(replace(state, model=model, tokenizer=tok), out), info


def _dev_rows(ctx, rows: int | None):
    """(texts, gold) of a seeded sample of task.dev, or None without task.dev."""
    if ctx.cfg.task.dev is None:
        return None
    from zuoxiao.core.goldsets import read_labelled
    from zuoxiao.student.compress.vocab_auto import sample_dev

    data = read_labelled(ctx.cfg.task.dev, ctx.label_names)
    return sample_dev(data.texts, data.labels, rows, ctx.cfg.seed) if data.texts else None


def _structured(ctx, state, step, out):
    from zuoxiao.student.compress import prune
    from zuoxiao.student.transfer import batches, read_transfer

    model = state.model
    what = "heads" if step.kind == "prune_heads" else "neurons"
    before = prune.structure_of(model)
    if what == "neurons" and any(not hasattr(la.intermediate.dense, "weight") for la in prune.encoder_layers(model)):
        raise InputError("prune_neurons after low_rank is not supported; put low_rank after the pruning steps")
    ts = read_transfer(ctx.paths.label, limit=step.rows, seed=ctx.cfg.seed)
    scores = prune.importance(model, list(batches(ts, state.tokenizer, ctx.max_length, 32)), what, step.importance)
    keep = prune.top_k(scores, step.keep)
    (prune.prune_heads if what == "heads" else prune.prune_neurons)(model, keep)
    after = prune.structure_of(model)
    key = "heads" if what == "heads" else "intermediate"
    info = {"importance": step.importance, "rows": len(ts.texts), f"{key}_before": before[key],
            f"{key}_after": after[key], "kept": keep if what == "heads" else None}
    return _save(state, out), info


def _layers(ctx, state, step, out):
    from zuoxiao.student.compress import prune

    before = prune.structure_of(state.model)["num_layers"]
    prune.prune_layers(state.model, step.keep)
    return _save(state, out), {"layers_before": before, "kept": step.keep}


def _magnitude(ctx, state, step, out):
    from zuoxiao.student.compress.magnitude import magnitude_prune

    info = magnitude_prune(state.model, step.sparsity, step.scope)
    return _save(state, out), info


def _low_rank(ctx, state, step, out):
    from zuoxiao.student.compress.lowrank import low_rank

    per = low_rank(state.model, step.modules, step.rank, step.energy)
    ranks = sorted({v["rank"] for v in per.values()})
    info = {"layers_matched": len(per), "layers_replaced": sum(v["replaced"] for v in per.values()),
            "ranks": ranks, "per_layer": per}
    return _save(state, out), info


def _factorize(ctx, state, step, out):
    from zuoxiao.student.compress.embeddings import factorize_embeddings
    from zuoxiao.student.transfer import read_transfer

    ts = read_transfer(ctx.paths.label, limit=step.max_rows, seed=ctx.cfg.seed)
    info = factorize_embeddings(state.model, state.tokenizer, ts.texts, rank=step.rank, energy=step.energy,
                                smoothing=step.smoothing, max_length=ctx.max_length)
    return _save(state, out), info


def _recover(ctx, state, step, out):
    from zuoxiao.student.compress.recover import recover

    model, how = recover(state.model, state.tokenizer, ctx.paths.label, ctx.cfg.train_view, steps=step.steps, lr=step.lr,
                         batch_size=step.batch_size, max_length=ctx.max_length)
    return _save(replace(state, model=model), out), {"steps": step.steps, "lr": step.lr, "via": how}


def export_state(ctx, state: State, out: Path, name: str = "model.onnx") -> tuple[State, dict]:
    """fp32 ONNX of the (float) model + tokenizer + config in ``out``; checks the export against PyTorch."""
    from zuoxiao.core.modelio import write_vocab_txt
    from zuoxiao.student.compress.export import export_onnx, max_abs_diff

    model = state.float_model or state.model
    out.mkdir(parents=True, exist_ok=True)
    path = export_onnx(model, state.tokenizer, out / name, opset=ctx.cc.opset)
    diff = max_abs_diff(model, state.tokenizer, path, ctx.texts[:64], ctx.max_length)
    state.tokenizer.save_pretrained(out)
    write_vocab_txt(state.tokenizer, out)
    model.config.save_pretrained(out)
    return (replace(state, onnx=path, runtime="onnx", dir=out, model=None, float_model=model,
                    params=_params(model)), {"onnx_max_abs_diff_vs_torch": diff})


def _quantize(ctx, state, step, out):
    if step.backend == "torch":
        from zuoxiao.student.compress.quantize import quantize_torch

        q = quantize_torch(state.model)
        return replace(state, model=q, float_model=state.model, runtime="torch-int8", dir=out), {
            "backend": "torch.ao dynamic int8", "note": "measured only; the bundle ships fp32 ONNX"}
    from zuoxiao.student.compress.latency import measure
    from zuoxiao.student.compress.quantize import quantize_onnx

    state, info = export_state(ctx, state, out, name="model_fp32.onnx")
    model = state.float_model
    info["onnx_fp32_bytes"] = state.onnx.stat().st_size
    info["onnx_fp32_latency_ms"] = measure("onnx", state.onnx, model.config.vocab_size, _names(state), **_lat(ctx))
    if step.mode == "static":
        from zuoxiao.student.compress.quantize import quantize_onnx_static
        from zuoxiao.student.transfer import read_transfer

        calib = read_transfer(ctx.paths.label, limit=step.calibration_rows, seed=ctx.cfg.seed).texts
        qinfo = quantize_onnx_static(state.onnx, out / "model.onnx", state.tokenizer, calib, _names(state),
                                     ctx.max_length, per_channel=step.per_channel, reduce_range=step.reduce_range,
                                     method=step.calibration_method, activation_type=step.activation_type,
                                     embedding_bits=step.embedding_bits, vocab_size=model.config.vocab_size,
                                     residual_sum=step.residual_sum)
    else:
        qinfo = quantize_onnx(state.onnx, out / "model.onnx", per_channel=step.per_channel,
                              reduce_range=step.reduce_range, embedding_bits=step.embedding_bits,
                              vocab_size=model.config.vocab_size, residual_sum=step.residual_sum)
    state.onnx.unlink()  # the fp32 graph is re-creatable from the previous step; keep the disk small
    state = replace(state, onnx=out / "model.onnx", runtime="onnx-int8")
    if step.optimize != "none":
        qinfo.update(_optimize(ctx, state, step.optimize))
    return state, {**info, **qinfo}


def _optimize(ctx, state: State, level: str) -> dict:
    """Optimise the int8 graph in place; check logits stay equal and time it before/after."""
    import numpy as np

    from zuoxiao.student.compress.export import onnx_logits, onnx_session
    from zuoxiao.student.compress.latency import measure
    from zuoxiao.student.compress.quantize import optimize_onnx

    texts, vocab = ctx.texts[:64], state.float_model.config.vocab_size
    before = onnx_logits(onnx_session(state.onnx), state.tokenizer, texts, ctx.max_length)
    lat_before = measure("onnx", state.onnx, vocab, _names(state), batches=(1,), **_lat(ctx))["b1"]
    info = optimize_onnx(state.onnx, state.onnx, level)
    after = onnx_logits(onnx_session(state.onnx), state.tokenizer, texts, ctx.max_length)
    info["optimize_max_abs_diff"] = float(np.abs(before - after).max()) if len(texts) else 0.0
    info["b1_before_optimize_ms"] = lat_before
    return info


def _names(state: State) -> list[str]:
    from zuoxiao.student.compress.export import input_names

    return input_names(state.tokenizer, state.float_model or state.model)


def _lat(ctx) -> dict:
    return {"seq_len": ctx.cc.latency_seq_len, "runs": ctx.cc.latency_runs, "threads": ctx.cc.latency_threads}


def _lat_tok(ctx, state: State) -> dict:
    """_lat plus what b1_with_tokenizer needs: the state's tokenizer and eval texts to cut rows from."""
    return {**_lat(ctx), "tokenizer": state.tokenizer, "texts": ctx.texts[:64]}


def _torch_bytes(model) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)  # size only: int8 packed weights have no safetensors form
    return buf.tell()


def measure_state(ctx, state: State, name: str, kind: str, info: dict | None = None) -> dict:
    from zuoxiao.core.evaluate import predict_logits
    from zuoxiao.student.compress.export import onnx_logits, onnx_session
    from zuoxiao.student.compress.latency import measure
    from zuoxiao.student.compress.modelio import weights_bytes

    model = state.float_model or state.model
    vocab = model.config.vocab_size
    if state.onnx is not None:
        logits = onnx_logits(onnx_session(state.onnx), state.tokenizer, ctx.texts, ctx.max_length,
                             ctx.cc.eval_batch_size)
        lat = measure("onnx", state.onnx, vocab, _names(state), **_lat_tok(ctx, state))
        nbytes = state.onnx.stat().st_size
    else:
        logits = predict_logits(state.model, state.tokenizer, ctx.texts, ctx.max_length, ctx.cc.eval_batch_size)
        lat = measure("torch", state.model, vocab, _names(state), **_lat_tok(ctx, state))
        nbytes = _torch_bytes(state.model) if state.runtime == "torch-int8" else weights_bytes(state.dir)
    params = state.params or _params(model)
    return ctx.measure(name, kind, logits, params=params, nbytes=nbytes, latency=lat,
                       runtime=state.runtime, info=info)
