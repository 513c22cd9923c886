
import numpy as np
import pytest
import torch

from tests.student.compress.compress_fixtures import LABELS, make_model, make_tokenizer, write_shards
from zuoxiao.core.config import parse_config
from zuoxiao.core.config.views import TrainView
from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.labelout import write_label_output
from zuoxiao.student.compress.recover import RECOVERED_BY, recover
from zuoxiao.student.transfer import read_transfer


def _topk_shards(label_dir):
    """Two rows stored as top-2 log-probs of 4 classes (residual 0.1 each), through the format."""
    probs = np.array([[0.05, 0.2, 0.7, 0.05], [0.6, 0.05, 0.05, 0.3]])
    rows = [{"id": "a", "text": "x y", "gold": 0}, {"id": "b", "text": "z", "gold": None}]
    write_label_output(label_dir, rows, np.log(probs), list("abcd"), storage="topk", top_k=2)
    return label_dir / "shards" / "part-00000-of-00001.parquet"


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


def test_full_shards_sample_and_recovery_moves_toward_teacher(tmp_path):
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

    cfg = parse_config({"output_dir": str(tmp_path), "task": {"name": "t", "label_names": LABELS},
                        "label": {"input": {"path": str(tmp_path / "unused.jsonl")}}})
    before = ce(student)
    out, how = recover(student, tok, tmp_path / "label", TrainView.of(cfg), steps=30, lr=3e-3, batch_size=16,
                       max_length=16)
    assert how == RECOVERED_BY == "zuoxiao.student.train.distill_model"  # what step.json records
    assert ce(out) < before
