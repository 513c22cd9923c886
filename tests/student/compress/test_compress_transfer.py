import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.student.compress.compress_fixtures import make_model, make_tokenizer, write_shards
from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.shards import SCHEMA_VERSION, schema_with_metadata, sha256_file
from zuoxiao.student.compress.recover import _minimal
from zuoxiao.student.transfer import read_transfer


def _topk_shards(label_dir):
    rows = {"id": ["a", "b"], "text": ["x y", "z"], "gold": [0, None], "augmented": [False, False],
            "teacher_argmax": [2, 0], "confidence": [0.7, 0.6], "entropy": [0.5, 0.5], "num_tokens": [2, 1],
            "truncated": [False, False], "logits": [None, None], "topk_indices": [[2, 1], [0, 3]],
            "topk_logprobs": [np.log([0.7, 0.2]).tolist(), np.log([0.6, 0.3]).tolist()],
            "residual_mass": [0.1, 0.1]}
    (label_dir / "shards").mkdir(parents=True)
    f = label_dir / "shards" / "part-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pydict(rows, schema=schema_with_metadata(list("abcd"), "topk")), f)
    (label_dir / "manifest.json").write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "label_names": list("abcd"),
        "shards": [{"file": "shards/part-00000-of-00001.parquet", "rows": 2, "sha256": sha256_file(f)}]}))
    return f


def test_topk_shards_rebuild_probabilities(tmp_path):
    _topk_shards(tmp_path)
    ts = read_transfer(tmp_path)
    assert ts.texts == ["x y", "z"]
    np.testing.assert_allclose(ts.probs[0], [0.05, 0.2, 0.7, 0.05], atol=1e-6)
    np.testing.assert_allclose(ts.probs[1], [0.6, 0.05, 0.05, 0.3], atol=1e-6)


def test_corrupt_shard_is_an_integrity_error(tmp_path):
    f = _topk_shards(tmp_path)
    with open(f, "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(IntegrityError, match="sha256"):
        read_transfer(tmp_path)


def test_full_shards_sample_and_minimal_recovery_moves_toward_teacher(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    teacher = make_model(seed=3)
    with torch.no_grad():  # a confident teacher: its soft labels are far from the student's
        teacher.classifier.weight.mul_(50)
    write_shards(tmp_path / "label", teacher, tok)
    ts = read_transfer(tmp_path / "label", limit=10, seed=0)
    assert len(ts.texts) == 10 and ts.probs.shape == (10, 2)
    np.testing.assert_allclose(ts.probs.sum(-1), 1, atol=1e-6)
    full = read_transfer(tmp_path / "label")
    student = make_model(seed=4)

    def ce(m):
        with torch.no_grad():
            enc = tok(full.texts, padding=True, return_tensors="pt")
            return float(-(torch.from_numpy(full.probs) * m(**enc).logits.log_softmax(-1)).sum(-1).mean())

    before = ce(student)
    _minimal(student, tok, tmp_path / "label", steps=30, lr=3e-3, batch_size=16, max_length=16, seed=0)
    assert ce(student) < before
