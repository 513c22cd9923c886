"""The static-embedding student (student/static.py): masked mean, export parity, config errors, and one tiny
job train -> compress -> ship with train.student.kind: static (token vectors distilled by model2vec from a
tiny random BERT teacher, built offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zuoxiao.core.config import parse_config
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.student.static import StaticClassifier, align_table, from_table


def _hand_model(head_hidden: int = 0) -> StaticClassifier:
    """Vocabulary of 4 (0 = [PAD]), 2-d vectors E1 = (1, 2), E2 = (3, 6), E3 = (-4, 8); linear head
    w = [[1, 0], [0, 1]], b = (0.5, -0.5): logits = pooled + b."""
    table = np.array([[9.0, 9.0], [1.0, 2.0], [3.0, 6.0], [-4.0, 8.0]], np.float32)  # the pad row is zeroed
    model = from_table(table, head_hidden, ["a", "b"], pad_token_id=0)
    if head_hidden == 0:
        with torch.no_grad():
            model.classifier.weight.copy_(torch.eye(2))
            model.classifier.bias.copy_(torch.tensor([0.5, -0.5]))
    return model.eval()


def test_masked_mean_ignores_padding_hand_computed():
    model = _hand_model()
    ids = torch.tensor([[1, 2, 0], [3, 0, 0], [0, 0, 0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])
    assert model.embeddings.weight[0].abs().sum() == 0  # padding row zeroed
    pooled = model.pooled(ids, mask)
    # row 0: (E1 + E2) / 2 = (2, 4); row 1: E3 = (-4, 8); row 2 (no token): zeros, not NaN
    assert pooled.tolist() == [[2.0, 4.0], [-4.0, 8.0], [0.0, 0.0]]
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    assert out.logits.tolist() == [[2.5, 3.5], [-3.5, 7.5], [0.5, -0.5]]
    # padded positions do not count even when they hold a real token id
    assert model.pooled(torch.tensor([[1, 2, 3]]), torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 4.0]]
    hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1][:, 0]
    assert torch.equal(hidden, pooled)  # what representation distillation reads


def test_align_table_puts_rows_in_encoder_order():
    vectors = np.array([[1.0], [2.0], [3.0]], np.float32)  # model2vec's ids: [PAD]=0, b=1, a=2 (it drops [CLS])
    out = align_table(vectors, {"[PAD]": 0, "b": 1, "a": 2}, {"[PAD]": 0, "[CLS]": 1, "a": 2, "b": 3})
    assert out.tolist() == [[1.0], [0.0], [3.0], [2.0]]


def _tok(tmp_path):
    from tests.student.compress.compress_fixtures import make_tokenizer

    return make_tokenizer(tmp_path / "tok")


def test_export_parity_and_graph_contract(tmp_path):
    import onnx

    from zuoxiao.student.compress.export import export_onnx, max_abs_diff, onnx_session

    tok = _tok(tmp_path)
    torch.manual_seed(0)
    table = np.random.default_rng(0).normal(size=(len(tok), 8)).astype(np.float32)
    model = from_table(table, 16, ["neg", "pos"]).eval()
    path = export_onnx(model, tok, tmp_path / "m.onnx")
    texts = ["good movie", "the actors was great and the plot was very fun", "", "zebra quantum chip"]
    assert max_abs_diff(model, tok, path, texts, 16) < 1e-4
    session = onnx_session(path)
    # the transformer bundles' graph contract: three int64 inputs, one logits output
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Gather") == 1 and ops.count("Gemm") == 2 and "Relu" in ops and "Softmax" not in ops


def _raw(**train) -> dict:
    return {"task": {"name": "t"}, "label": {"input": {"path": "x.jsonl"}},
            "train": {"student": {"kind": "static"}, **train}}


def test_config_refuses_lora_and_foreign_tokenizer():
    with pytest.raises(ConfigError, match="adapter.kind=lora: a static student"):
        parse_config(_raw(adapter={"kind": "lora"}))
    with pytest.raises(ConfigError, match="remove train.student.tokenizer"):
        parse_config(_raw(student={"kind": "static", "tokenizer": "x"}))
    cfg = parse_config(_raw(student={"kind": "static", "pca_dims": 64, "head_hidden": 0}))
    assert (cfg.train.student.pca_dims, cfg.train.student.head_hidden) == (64, 0)


def test_config_refuses_transformer_only_compress_steps():
    raw = {**_raw(), "compress": {"steps": [{"kind": "vocab_trim"}, {"kind": "prune_heads", "keep": 0.5},
                                            {"kind": "quantize"}]}}
    with pytest.raises(ConfigError, match="compress step prune_heads: a static student has no attention heads"):
        parse_config(raw)
    raw["compress"]["steps"][1] = {"kind": "magnitude", "sparsity": 0.5}
    with pytest.raises(ConfigError, match="compress step magnitude: a static student has no Linear layers outside"):
        parse_config(raw)


def test_compress_refuses_transformer_only_step_on_a_static_model(tmp_path):
    from zuoxiao.core.config.compress import CompressConfig
    from zuoxiao.student.compress import steps as S

    state = S.State(model=_hand_model(), tokenizer=None, onnx=None, runtime="torch", dir=tmp_path)
    step = CompressConfig(steps=[{"kind": "prune_neurons", "keep": 0.5}]).steps[0]
    with pytest.raises(InputError, match="prune_neurons: a static student has no FFN neurons; remove it"):
        S.apply(None, state, step, tmp_path / "01-prune_neurons")


@pytest.fixture(scope="module")
def static_job(tmp_path_factory):
    """A tiny job: a 3-layer BERT teacher labels the tiny sentiment rows; `train` distils a static student
    (vectors by model2vec from that teacher, trained), then compress (vocab trim + int8) and ship."""
    from tests.student.compress.compress_fixtures import (
        LABELS,
        dataset,
        make_model,
        make_tokenizer,
        save_model,
        train_briefly,
        write_eval,
    )
    from zuoxiao.core.config.views import CompressView, ShipView, TrainView
    from zuoxiao.core.labelout import write_label_output
    from zuoxiao.core.paths import StagePaths
    from zuoxiao.ship.stage import ship
    from zuoxiao.student.compress.latency import torch_threads
    from zuoxiao.student.compress.stage import compress
    from zuoxiao.student.train import train

    root = tmp_path_factory.mktemp("static-job")
    paths = StagePaths(root)
    tok = make_tokenizer(root / "vocab")
    with torch_threads(1):
        teacher = train_briefly(make_model(layers=3, seed=1), tok, seed=1)
        save_model(teacher, tok, paths.teacher)
        texts, gold = dataset(4)
        with torch.no_grad():
            logits = teacher(**tok(texts, padding=True, return_tensors="pt")).logits.numpy()
        rows = [{"id": str(i), "text": t, "gold": g} for i, (t, g) in enumerate(zip(texts, gold, strict=True))]
        write_label_output(paths.label, rows, logits, LABELS, teacher={"path": str(paths.teacher), "fingerprint": None})
        eval_path = write_eval(root / "data" / "eval.jsonl")
        gold_file = {"path": str(eval_path), "text_column": "text", "label_column": "label"}
        cfg = parse_config({
            "output_dir": str(root), "seed": 0,
            "task": {"name": "tiny-sentiment", "label_names": LABELS, "eval": gold_file, "dev": gold_file},
            "label": {"input": {"path": str(eval_path)}},
            "train": {"student": {"kind": "static", "pca_dims": 16, "head_hidden": 8}, "max_length": 16,
                      "loss": {"kind": "kl", "alpha": 1.0}, "eval_every": 10, "checkpoint_every": 1000,
                      "optim": {"batch_size": 8, "max_steps": 60, "lr": 0.05, "warmup_ratio": 0.0}},
            "compress": {"steps": [{"kind": "vocab_trim", "max_positions": 64}, {"kind": "quantize"}],
                         "latency_runs": 3},
            "ship": {"gate": {"min_retention": 0.5}},
        })
        metrics = train(TrainView.of(cfg), paths.label, paths.student)
        compressed = compress(CompressView.of(cfg), paths)
        shipped = ship(ShipView.of(cfg), paths)
    return {"cfg": cfg, "paths": paths, "metrics": metrics, "compressed": compressed, "shipped": shipped,
            "report": json.loads((paths.compress / "report.json").read_text())}


def test_static_job_train_compress_ship(static_job):
    from zuoxiao.student.compress.modelio import load_model

    paths, metrics, report = static_job["paths"], static_job["metrics"], static_job["report"]
    saved = json.loads((paths.student / "config.json").read_text())
    assert saved["model_type"] == "zuoxiao-static" and saved["hidden_size"] == 16 and saved["head_hidden"] == 8
    assert (paths.student / "model.safetensors").is_file() and not (paths.student / "structure.json").exists()
    model, _ = load_model(paths.student)
    assert isinstance(model, StaticClassifier)
    assert model.embeddings.weight.shape[1] == 16
    # the toy task is separable by one word: the trained head must beat chance clearly
    assert metrics["student"]["accuracy"] >= 0.75
    steps = {r["name"]: r for r in report["steps"]}
    trim = steps["01-vocab_trim"]["info"]
    assert trim["vocab_after"] < trim["vocab_before"]
    assert trim["max_positions"] == "skipped: a static student has no position embeddings"
    quant = steps["02-quantize"]
    assert quant["runtime"] == "onnx-int8" and quant["bytes"] < quant["info"]["onnx_fp32_bytes"]
    assert quant["info"]["onnx_max_abs_diff_vs_torch"] < 1e-4  # the fp32 export, checked against PyTorch
    assert abs(quant["accuracy"] - steps["student"]["accuracy"]) <= 0.05


def test_static_bundle_runs_in_the_bundle_runtime_and_cli(static_job, capsys):
    from zuoxiao.cli import main
    from zuoxiao.ship.runtime import Bundle

    bundle_dir = static_job["paths"].bundle
    bundle = Bundle.load(bundle_dir)
    assert bundle.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    out = bundle.predict(["great film", "awful plot"])
    assert [r["label"] for r in out] == ["pos", "neg"]
    assert main(["predict", str(bundle_dir), "great film"]) == 0
    assert '"pos"' in capsys.readouterr().out
    assert (bundle_dir / "model.ort").is_file()  # the phone format converts it unchanged


@pytest.mark.parametrize("model_file", [None, "model.ort"])
def test_static_bundle_in_node_matches_python(static_job, model_file):
    """The JS runtime (onnxruntime-node) runs the static graph, and its .ort form, unchanged: 200 texts."""
    import subprocess

    from tests.ship.handoff_fixtures import ROOT, TEXTS, node_modules_dir, python_probs, texts

    node_modules = node_modules_dir()
    bundle_dir = static_job["paths"].bundle
    cmd = ["node", str(ROOT / "js" / "parity.mjs"), str(bundle_dir), str(TEXTS), "--node-modules", str(node_modules)]
    out = subprocess.run(cmd + (["--model", model_file] if model_file else []), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    js = json.loads(out.stdout)
    logits, probs, labels = python_probs(bundle_dir, texts())
    assert js["labels"] == labels
    assert np.abs(np.array([r["logits"] for r in js["results"]]) - logits).max() <= 1e-4
    assert np.abs(np.array([r["probs"] for r in js["results"]]) - probs).max() <= 1e-4
