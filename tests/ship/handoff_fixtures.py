"""Shared helpers for the hand-off tests (browser page, Node, ORT format) on the tiny shipped bundle.

Environment:
  ZUOXIAO_NODE_MODULES   node_modules from `npm ci --ignore-scripts` in js/ (default js/node_modules)
  ZUOXIAO_REQUIRE_JS=1 / ZUOXIAO_REQUIRE_BROWSER=1   fail instead of skip when node_modules / chromium are
                         missing (.ci/run sets them once it installed both: CI must not pass by skipping)
  ZUOXIAO_CHROMIUM       browser binary (default /usr/bin/chromium, Debian package `chromium`)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: 200 texts: 44 edge cases (empty, accents, CJK, RTL, emoji, control / zero-width characters, special-token
#: strings, a 150-character word...) + 156 seeded word salads, many longer than the bundle's max_length.
TEXTS = Path(__file__).with_name("parity_texts.json")
CHROMIUM = os.environ.get("ZUOXIAO_CHROMIUM", "/usr/bin/chromium")


def need(condition: bool, reason: str, strict_env: str) -> None:
    """Skip with ``reason`` unless ``strict_env`` is 1, then fail: CI must not pass by skipping."""
    if condition:
        return
    if os.environ.get(strict_env) == "1":
        pytest.fail(f"{reason} ({strict_env}=1)")
    pytest.skip(reason)


def node_modules_dir() -> Path:
    """js/node_modules with onnxruntime-node, or skip (fail under ZUOXIAO_REQUIRE_JS=1) with the fix."""
    nm = Path(os.environ.get("ZUOXIAO_NODE_MODULES", ROOT / "js" / "node_modules"))
    need(shutil.which("node") is not None, "node is not installed (Debian package nodejs)", "ZUOXIAO_REQUIRE_JS")
    need((nm / "onnxruntime-node").is_dir() and (nm / "onnxruntime-web").is_dir(),
         f"{nm} has no onnxruntime-node / onnxruntime-web: run `(cd js && npm ci --ignore-scripts)`",
         "ZUOXIAO_REQUIRE_JS")
    return nm


def texts() -> list[str]:
    return json.loads(TEXTS.read_text())


def load_runtime(bundle: Path):
    """The bundle's own stand-alone Python runtime (its zuoxiao_bundle.py), what app teams run."""
    spec = importlib.util.spec_from_file_location(f"zuoxiao_bundle_{abs(hash(str(bundle)))}",
                                                  bundle / "zuoxiao_bundle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def python_probs(bundle: Path, items: list[str], model_file: str | None = None, batch_size: int = 1):
    """(logits [N, C] float64, softmax(logits / T) [N, C] float64, label names) from the bundle's runtime.

    batch_size=1 by default: the int8 graph quantises activations per tensor at run time, so padding and the
    other rows of a batch change a text's logits; the JS runtimes run one text per call.
    """
    import onnxruntime as ort

    mod = load_runtime(bundle)
    b = mod.Bundle.load(bundle, verify=False, threads=1)
    if model_file:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        b.session = ort.InferenceSession(str(bundle / model_file), opts, providers=["CPUExecutionProvider"])
    logits = b.logits(items, batch_size=batch_size).astype(np.float64)
    return logits, mod._softmax(logits / b.temperature), b.label_names
