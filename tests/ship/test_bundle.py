import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.student.compress.compress_fixtures import compressed_stage
from zuoxiao.cli import main
from zuoxiao.core.errors import InputError, IntegrityError
from zuoxiao.ship.runtime import Bundle


@pytest.fixture(scope="module")
def bundle_dir():
    return compressed_stage()[1].bundle


def test_predict_returns_labels_with_probabilities(bundle_dir):
    out = Bundle.load(bundle_dir).predict(["good movie", "awful plot", "love the story"])
    assert [o["label"] for o in out] == ["pos", "neg", "pos"]
    for o in out:
        assert set(o["probabilities"]) == {"neg", "pos"}
        assert abs(sum(o["probabilities"].values()) - 1) < 1e-5
        assert o["probabilities"][o["label"]] == max(o["probabilities"].values())


def test_bundle_alone_without_torch_or_transformers(bundle_dir, tmp_path):
    """Copy only the bundle; run its zuoxiao_bundle.py from another cwd, without the repo on the path."""
    alone = tmp_path / "shipped"
    shutil.copytree(bundle_dir, alone)
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(alone)!r})\n"
        "from zuoxiao_bundle import Bundle\n"
        f"out = Bundle.load({str(alone)!r}).predict(['great film', 'boring actors'])\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert [o["label"] for o in json.loads(res.stdout)] == ["pos", "neg"]


def test_student_bundle_module_imports_no_torch():
    code = ("import sys; import zuoxiao.ship.runtime; from zuoxiao.cli import build_parser; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_cli_predict(bundle_dir, capsys):
    assert main(["predict", str(bundle_dir), "fun film"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["label"] == "pos"


def test_corrupt_or_wrong_dir_fails_clearly(bundle_dir, tmp_path):
    bad = tmp_path / "b"
    shutil.copytree(bundle_dir, bad)
    with open(bad / "model.onnx", "ab") as f:
        f.write(b"x")
    with pytest.raises(IntegrityError, match="does not match SHA256SUMS"):
        Bundle.load(bad)
    with pytest.raises(InputError, match="not a bundle"):
        Bundle.load(tmp_path)
    assert main(["predict", str(tmp_path / "nope"), "x"]) == 2
