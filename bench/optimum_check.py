"""Does Hugging Face Optimum load a bundle as it is? (issue 30, item 6; a benchmark script, not a test)

    python bench/optimum_check.py outputs/demo/latest/bundle [--texts outputs/demo/data/test.jsonl] [--n 100]
        [--venv /tmp/zx-optimum-venv]

Optimum's ONNX side (optimum-onnx 0.1) needs transformers < 4.58 and zuoxiao uses 5.x, so this builds its own
virtual environment once (optimum-onnx 0.1, transformers 4.57, onnxruntime, torch CPU; pip, several minutes
the first time), loads the bundle there with `ORTModelForSequenceClassification.from_pretrained(bundle,
file_name=<zuoxiao.onnx_file>)`, and compares its logits, one text per call, with the bundle's own runtime
(zuoxiao.ship.runtime, here). Prints one JSON object: `optimum_loads`, `same_top_label` (fraction of texts),
`max_abs_dp_raw` (Optimum's softmax(logits) vs the bundle's calibrated probabilities: differs by the
temperature) and `max_abs_dp_with_temperature` (softmax(logits / T), the model card's recipe), versions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PINS = ["optimum-onnx==0.1.*", "transformers==4.57.*", "onnxruntime", "torch"]
FALLBACK_TEXTS = ["I was charged twice this month", "great product, fast delivery", "the app crashes on login",
                  "how do I reset my password", "terrible service, never again", "where is my order"]

#: Runs inside the Optimum venv: argv = bundle, onnx file, texts.json; prints {"logits", "versions"}.
CHILD = r"""
import json, sys
import optimum.onnxruntime, transformers, onnxruntime
from optimum.onnxruntime import ORTModelForSequenceClassification
from transformers import AutoTokenizer
bundle, onnx_file, texts = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
model = ORTModelForSequenceClassification.from_pretrained(bundle, file_name=onnx_file)
tok = AutoTokenizer.from_pretrained(bundle)
max_length = json.load(open(bundle + "/config.json"))["zuoxiao"]["max_length"]
logits = [model(**tok([t], return_tensors="pt", truncation=True, max_length=max_length)).logits[0].tolist()
          for t in texts]
from importlib.metadata import version
print(json.dumps({"logits": logits, "labels": [model.config.id2label[i] for i in range(len(model.config.id2label))],
                  "versions": {p: version(p) for p in ("optimum-onnx", "optimum", "transformers", "onnxruntime")}}))
"""


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not (venv / ".zuoxiao-optimum-ready").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS], check=True)
        (venv / ".zuoxiao-optimum-ready").write_text(" ".join(PINS) + "\n")
    return python


def read_texts(path: Path | None, n: int) -> list[str]:
    if path is None:
        return FALLBACK_TEXTS
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()][:n]
    return [line.split("\t")[0] for line in path.read_text().splitlines()[1:] if line.strip()][:n]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--texts", type=Path, help=".jsonl with a text field, or a .tsv whose first column is the text")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--venv", type=Path, default=Path("/tmp/zx-optimum-venv"))
    args = ap.parse_args(argv)

    from zuoxiao.ship.runtime import Bundle

    bundle_dir = Path(args.bundle).resolve()
    bundle = Bundle.load(bundle_dir, threads=1)
    texts = read_texts(args.texts, args.n)
    onnx_file = json.loads((bundle_dir / "config.json").read_text())["zuoxiao"].get("onnx_file", "model.onnx")
    python = ensure_venv(args.venv)
    texts_file = args.venv / "texts.json"
    texts_file.write_text(json.dumps(texts))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    child = subprocess.run([str(python), "-c", CHILD, str(bundle_dir), onnx_file, str(texts_file)],
                           capture_output=True, text=True, timeout=1800, env=env)
    out = {"bundle": str(bundle_dir), "texts": len(texts), "optimum_loads": child.returncode == 0,
           "temperature": bundle.temperature}
    if child.returncode != 0:
        out["error"] = child.stderr[-3000:]
        print(json.dumps(out, indent=2))
        return 1
    theirs = json.loads(child.stdout.strip().splitlines()[-1])
    ours = bundle.logits(texts, batch_size=1).astype(np.float64)
    their_logits = np.array(theirs["logits"], np.float64)
    mine = softmax(ours / bundle.temperature)
    out.update({
        "same_labels": theirs["labels"] == bundle.label_names,
        "same_top_label": float((their_logits.argmax(1) == ours.argmax(1)).mean()),
        "max_abs_dlogit": float(np.abs(their_logits - ours).max()),
        "max_abs_dp_raw": float(np.abs(softmax(their_logits) - mine).max()),
        "max_abs_dp_with_temperature": float(np.abs(softmax(their_logits / bundle.temperature) - mine).max()),
        "versions": theirs["versions"],
    })
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
