"""A fixed tiny offline job (label -> train -> compress -> ship) writes byte-identical model files.

Guards refactors that must not change behaviour (issue 26): the hashes below were recorded on the code
before the refactor, and every shard, every model-bearing file of the train and compress stages and of
the bundle must keep its exact sha256.

Hashed: the label shards, the student and each compress step's weights/tokenizer/config, the ship
stage's eval predictions and the bundle's model.onnx, required_operators.config, tokenizer files and
config.json (label names, the temperature fitted on task.dev, max_length, ...).

Not hashed, and why:
- bundle/model.ort: ONNX Runtime's ORT-format converter is not deterministic (two conversions of the same
  model.onnx on one machine give different bytes and sizes), so it cannot be pinned; its operator list
  (required_operators.config, header stripped by ship/mobile.py) is stable and is hashed.
- runtime code copied into the bundle (zuoxiao_bundle.py, web/): it changes with the runtime, not the model.
- README.md, metrics.json, report.md, pareto.png, SHA256SUMS, manifests, .done.json, summary, report.html,
  logs: they hold timings, latencies, temporary paths, run ids or code versions/fingerprints.

Torch threads are pinned to 2 for the job (the default of the 2-core machine the hashes were recorded
on): training sums in another order with another thread count, and earlier tests of the suite leave the
process at 1 thread (e.g. a teacher handler's num_threads), so without the pin the student's bytes
would depend on which tests ran before.

The bytes also depend on the pinned library versions (constraints.txt: torch, transformers — which writes
its version into config.json —, onnx, onnxruntime, pyarrow) and on zuoxiao.run.demo_data's
GENERATOR_VERSION.

To re-record after a change that is MEANT to alter bytes (a new default, a new library version): run
    ZX_RECORD_BYTES=1 HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q -s tests/run/test_bytes_stable.py
paste the printed dict over EXPECTED, and say in the commit message which bytes changed and why.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from zuoxiao.core.config import load_config
from zuoxiao.run.demo_data import write_demo_data
from zuoxiao.run.runner import run_job

pytestmark = pytest.mark.slow

THREADS = 2  # torch threads of the job the hashes were recorded with

EXPECTED: dict[str, str] = {
    "label/shards/part-00000-of-00004.parquet": "d9a22f76f7265ebb084ece59201c0da2cb5494dbdf8aec1e3be8bee85491ce4e",
    "label/shards/part-00001-of-00004.parquet": "2b997a22d0781803572015eb00d9fb3c62d0b17ea3c12fe02b96c19c2b2ade65",
    "label/shards/part-00002-of-00004.parquet": "a0edc64ffcf68bd01f499c4d1ccd886415b56f1079c4445541b2eb855e5d9b21",
    "label/shards/part-00003-of-00004.parquet": "20e2cb1dbbc039212f04e6fa07996a1d1c833bbc98e5ebbb012aea4d4077725e",
    "student/model.safetensors": "02aec26493816156f0bb9e09345b9e1824c43273acf5c2f20863702c1760ef3a",
    "student/config.json": "bbd7cffee234c5816f9f510926dc5d05dcb107afa8e1bc1b4b051cb7d41f0c0c",
    "student/tokenizer.json": "daed26b3a70536dc0a2b1e72f1d62e94328ccd011a28eba19c8087adf19005a4",
    "student/tokenizer_config.json": "86edfbd1d109094d4ea6a04c83822681bd05e495ced8de2cbcd6fea518da3440",
    "student/vocab.txt": "25250fda57aea6f811dbb7032d9b30483ce1e787cc61d8383cfc05ac93014e05",
    "compress/01-vocab_trim/model.safetensors": "c8c74d652cbed2256c71cd2a593cfa96fb872f75d4a99be0046b9e9464410fb8",
    "compress/01-vocab_trim/config.json": "f1e2677e950567c99d56ac51bfaf4e5230c56dbed3920df26e6061bf1eb3b0dc",
    "compress/01-vocab_trim/tokenizer.json": "d7cb3ba878df9c8b2ed6963d97fdaa2eda586210b521871f2e9d84668da5f323",
    "compress/01-vocab_trim/tokenizer_config.json": "e496f11436d1b05e1a83b1db70a429057547adbe520201fd901ba844fd47c950",
    "compress/01-vocab_trim/vocab.txt": "f571066317d1f894c578867dd01f49fff24b57ecdfcbba5aaa66a0e3d683cedb",
    "compress/02-quantize/model.onnx": "6e438fe310360c97098e5f75d834d7f9ebcaa6c71a028f547d0f99be6e36641c",
    "compress/02-quantize/config.json": "f1e2677e950567c99d56ac51bfaf4e5230c56dbed3920df26e6061bf1eb3b0dc",
    "compress/02-quantize/tokenizer.json": "d7cb3ba878df9c8b2ed6963d97fdaa2eda586210b521871f2e9d84668da5f323",
    "compress/02-quantize/tokenizer_config.json": "e496f11436d1b05e1a83b1db70a429057547adbe520201fd901ba844fd47c950",
    "compress/02-quantize/vocab.txt": "f571066317d1f894c578867dd01f49fff24b57ecdfcbba5aaa66a0e3d683cedb",
    "bundle/model.onnx": "6e438fe310360c97098e5f75d834d7f9ebcaa6c71a028f547d0f99be6e36641c",
    "bundle/config.json": "ec056d6fb0787b0f15229c2d96f94e1209af495add8fb120c39ec11eebf183cf",
    "bundle/tokenizer.json": "592d069c375854aa5b844a859ecf59cd1d4a736387090e4f33d258230687b2f9",
    "bundle/tokenizer_config.json": "e496f11436d1b05e1a83b1db70a429057547adbe520201fd901ba844fd47c950",
    "bundle/vocab.txt": "f571066317d1f894c578867dd01f49fff24b57ecdfcbba5aaa66a0e3d683cedb",
    "bundle/required_operators.config": "12526e02bf97c1f4dd6c4096de546c6dc967fbbe94b6ea44eba322c6ac9690ed",
    "ship/eval_predictions.npz": "f6ee1947e63a908747412adedcbd6fafce7869607dd87cfa2a99f40a1936accb"
}


def _config(tmp_path: Path, backbone: Path) -> Path:
    data = tmp_path / "data"
    labels = sorted({json.loads(x)["label"] for x in (data / "test.jsonl").read_text().splitlines()})
    raw = {
        "output_dir": str(tmp_path / "out"),
        "seed": 0,
        "task": {"name": "support", "label_names": labels, "eval": {"path": str(data / "test.jsonl")},
                 "dev": {"path": str(data / "dev.jsonl")}},
        "label": {"input": {"path": str(data / "unlabeled.jsonl"), "id_column": "id"},
                  "teacher": {"path": str(backbone), "max_length": 32, "num_threads": 1},
                  "batch_size": 32, "rows_per_shard": 64},
        "train": {"student": {"kind": "from_teacher", "layers": [0]}, "max_length": 32,
                  "freeze_embeddings": False,
                  "optim": {"lr": 1e-2, "epochs": 2, "batch_size": 16, "warmup_ratio": 0.0}},
        "compress": {"steps": [{"kind": "vocab_trim"}, {"kind": "quantize"}], "latency_runs": 3},
        "ship": {"gate": {"min_retention": 0.01}},
    }
    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


MODEL_FILES = ("model.safetensors", "model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json",
               "vocab.txt")


def _hashed_files(run_dir: Path) -> list[Path]:
    files = sorted((run_dir / "label" / "shards").glob("*.parquet"))
    for folder in [run_dir / "student", *sorted((run_dir / "compress").glob("[0-9][0-9]-*")), run_dir / "bundle"]:
        files += [folder / name for name in MODEL_FILES if (folder / name).is_file()]
    files += [run_dir / "bundle" / "required_operators.config", run_dir / "ship" / "eval_predictions.npz"]
    return files


@pytest.fixture
def two_torch_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def test_tiny_job_writes_the_recorded_bytes(tmp_path, tiny_backbone, two_torch_threads):
    write_demo_data(tmp_path / "data", seed=0, n_gold=16, n_unlabeled=200, n_test=48, n_dev=32)
    result = run_job(load_config(_config(tmp_path, tiny_backbone)), console=Console(file=open(os.devnull, "w")))
    assert result["exit_code"] == 0, result
    run_dir = Path(result["run_dir"])
    got = {str(f.relative_to(run_dir)): hashlib.sha256(f.read_bytes()).hexdigest() for f in _hashed_files(run_dir)}
    if os.environ.get("ZX_RECORD_BYTES"):
        print("EXPECTED = " + json.dumps(got, indent=4))
    assert len(got) == 26  # 4 shards, 5 student, 5 + 5 compress steps, 5 bundle, operators, predictions
    changed = {k: (EXPECTED.get(k), v) for k, v in got.items() if EXPECTED.get(k) != v}
    assert not changed and set(got) == set(EXPECTED), f"bytes changed (expected, got): {changed}"
