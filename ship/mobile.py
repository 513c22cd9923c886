"""ORT-format model for phones: <bundle>/model.ort and <bundle>/required_operators.config.

Runs ``python -m onnxruntime.tools.convert_onnx_models_to_ort`` with --optimization_style Fixed (graph
optimisations baked in; ORT's guidance for the CPU EP, i.e. no NNAPI / CoreML) and --target_platform arm
(phones; amd64 bakes in x86-only layouts). The .config file lists the operators (incl. the com.microsoft
fused int8 ones) for a minimal ORT build: build.sh --minimal_build --include_ops_by_config
required_operators.config. The stock onnxruntime-android / onnxruntime-objc packages are full builds and load
model.ort (and model.onnx) as they are.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from zuoxiao.core.errors import InputError

ORT_FILE, OPS_FILE = "model.ort", "required_operators.config"


def convert_to_ort(bundle_dir: str | Path, target_platform: str = "arm", onnx_name: str = "model.onnx") -> dict:
    """Write ``<bundle_dir>/model.ort`` + ``required_operators.config``; return {ort_bytes, target_platform,
    operators}. A subprocess: the converter sets process-wide ORT state and prints a lot."""
    bundle_dir = Path(bundle_dir)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in" / onnx_name
        src.parent.mkdir()
        shutil.copyfile(bundle_dir / onnx_name, src)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(src), "--output_dir",
               str(out), "--optimization_style", "Fixed", "--target_platform", target_platform]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        stem = Path(onnx_name).stem
        if proc.returncode != 0 or not (out / f"{stem}.ort").is_file():
            raise InputError(f"ORT-format conversion of {bundle_dir / onnx_name} failed (exit {proc.returncode}):\n"
                             f"{proc.stderr[-1500:]}\nthe graph may use an operator ONNX Runtime cannot "
                             "serialise; check `python -m onnxruntime.tools.convert_onnx_models_to_ort` by hand")
        shutil.copyfile(out / f"{stem}.ort", bundle_dir / ORT_FILE)
        config = (out / f"{stem}.required_operators.config").read_text()
        # the generated header names temporary paths; keep the operator lines only
        lines = [f"# operators of {ORT_FILE} (target_platform={target_platform}, optimization_style=Fixed)"]
        lines += [ln for ln in config.splitlines() if ln and not ln.startswith("#")]
        (bundle_dir / OPS_FILE).write_text("\n".join(lines) + "\n")
    return {"ort_bytes": (bundle_dir / ORT_FILE).stat().st_size, "target_platform": target_platform,
            "operators": lines[1:]}
