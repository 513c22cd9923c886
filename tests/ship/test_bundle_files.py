"""A bundle file that does not parse is a named error, exit 5, in Python and in JS (issue 30, item 7).

Each case damages one file the runtimes read and rewrites SHA256SUMS to match (as a careless copy or a
tampering tool would), so the checksums cannot catch it: the parser must, naming the file and what is wrong.
Before: an invalid tokenizer.json made `zuoxiao predict` exit 1 with a traceback from the tokenizers library.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.ship.handoff_fixtures import ROOT, node_modules_dir
from tests.student.compress.compress_fixtures import compressed_stage
from zuoxiao.cli import main
from zuoxiao.ship.package import write_checksums


def _config(edit):
    def damage(text: str) -> str:
        config = json.loads(text)
        edit(config)
        return json.dumps(config)
    return damage


#: (id, file, new content (str) or a function of the old text, what the error says)
CASES = [
    ("tokenizer-not-json", "tokenizer.json", "this is not JSON {", "is not a tokenizer the tokenizers library can read"),
    ("tokenizer-wrong-json", "tokenizer.json", '{"version": "1.0", "model": 3}', "is not a tokenizer the tokenizers library"),
    ("config-not-json", "config.json", '{"id2label": ', "is not valid JSON"),
    ("config-a-list", "config.json", "[1, 2]", "must hold a JSON object, not list"),
    ("config-no-labels", "config.json", _config(lambda c: c.pop("id2label")), '"id2label" must be a non-empty object'),
    ("config-label-gap", "config.json", _config(lambda c: c.update(id2label={"0": "neg", "2": "pos"})),
     '"id2label" has no label for id(s) [1]'),
    ("config-temperature", "config.json", _config(lambda c: c["zuoxiao"].update(temperature=-1)),
     "zuoxiao.temperature = -1 is not valid"),
    ("config-max-length", "config.json", _config(lambda c: c["zuoxiao"].update(max_length="64")),
     "zuoxiao.max_length = '64' is not valid"),
    ("model-garbage", "model.onnx", "not a protobuf at all", "is not an ONNX model onnxruntime can load"),
]
PY_ONLY = [("sums-bad-line", "SHA256SUMS", "nonsense\n", "line 1 is not '<64 hex digits>  <file>'")]
JS_ONLY = [("tokenizer-config-not-json", "tokenizer_config.json", "{", "is not valid JSON")]
JS_SAYS = {"tokenizer-not-json": "is not valid JSON"}  # JS parses the JSON itself before the tokenizer sees it


@pytest.fixture(scope="module")
def bundle_dir():
    return compressed_stage()[1].bundle


def damaged(bundle_dir, tmp_path, name, content):
    b = tmp_path / "b"
    shutil.copytree(bundle_dir, b)
    path = b / name
    path.write_text(content(path.read_text()) if callable(content) else content)
    if name != "SHA256SUMS":
        write_checksums(b)  # the checksum now matches the damaged file
    return b


@pytest.mark.parametrize(("case", "name", "content", "says"), CASES + PY_ONLY, ids=[c[0] for c in CASES + PY_ONLY])
def test_predict_exits_5_naming_the_file(bundle_dir, tmp_path, capsys, case, name, content, says):
    b = damaged(bundle_dir, tmp_path, name, content)
    assert main(["predict", str(b), "good movie"]) == 5
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert f"bundle file {b / name}" in captured.err and says in captured.err, captured.err


@pytest.mark.parametrize(("case", "name", "content", "says"), CASES + JS_ONLY, ids=[c[0] for c in CASES + JS_ONLY])
def test_node_runtime_exits_5_naming_the_file(bundle_dir, tmp_path, case, name, content, says):
    nm = node_modules_dir()
    b = damaged(bundle_dir, tmp_path, name, content)
    texts = tmp_path / "texts.json"
    texts.write_text('["good movie"]')
    out = subprocess.run(["node", str(ROOT / "js" / "parity.mjs"), str(b), str(texts), "--node-modules", str(nm)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 5, out.stderr[-2000:]
    js_says = JS_SAYS.get(case) or says.replace("the tokenizers library", "@huggingface/tokenizers").replace("'64'", '"64"')
    assert f"bundle file {name}" in out.stderr and js_says in out.stderr, out.stderr[-2000:]
    assert out.stdout == ""
