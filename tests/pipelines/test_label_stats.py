"""The label stage's soft-label statistics in the manifest (entropy, the teacher's label distribution)
and the label headline built from them."""

from __future__ import annotations

import math

import pytest

from tests.pipelines.conftest import SENTENCES, write_tsv
from tests.pipelines.tiny_teacher import build_tiny_teacher
from zuoxiao.core.labelout import read_rows
from zuoxiao.core.results import LabelResult
from zuoxiao.core.shards import read_manifest
from zuoxiao.pipelines.commit import soft_label_stats
from zuoxiao.pipelines.label import label_from_config


@pytest.fixture(scope="module")
def uniform_teacher(tmp_path_factory):
    """A 2-class classifier whose head is all zeros: logits (0, 0) for every text, p = (1/2, 1/2)."""
    import torch
    from transformers import BertForSequenceClassification

    d = build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "uniform", label_names=["neg", "pos"])
    model = BertForSequenceClassification.from_pretrained(d)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
    model.save_pretrained(d, safe_serialization=True)
    return d


def test_uniform_soft_labels_have_entropy_ln2(tmp_path, make_cfg, uniform_teacher):
    rows = [(t, "1" if lab == "1" else "0") for t, lab in SENTENCES]
    path = write_tsv(tmp_path / "in.tsv", rows + [("", "1")])  # one empty text: rejected, not in the stats
    cfg = make_cfg(path, label_names=("neg", "pos"), label_column=None, teacher=uniform_teacher)
    out = tmp_path / "label"
    written = label_from_config(cfg, out)
    stats = read_manifest(out).stats  # typed, read back from manifest.json
    assert written["stats"] == stats
    assert stats["mean_entropy_nats"] == pytest.approx(math.log(2), abs=1e-5)  # hand-checked: ln 2 = 0.6931
    assert stats["entropy_fraction"] == pytest.approx(1.0, abs=1e-5)
    # ties go to the lowest index, so a uniform teacher "predicts" the first class for every row
    assert stats["label_distribution"] == {"neg": len(SENTENCES)}
    result = LabelResult.from_manifest(out, written)
    assert result.rejected == 1 and result.labeled == len(SENTENCES)
    text = result.headline_text()
    assert "rejected 1 (empty_text 1)" in text and "0.693 nats (100.0% of ln 2)" in text and "neg 100.0%" in text


def test_entropy_is_the_mean_of_the_shard_rows(tmp_path, make_cfg):
    path = write_tsv(tmp_path / "in.tsv", [(f"{t} {i}", lab) for i, (t, lab) in enumerate(SENTENCES * 2)])
    out = tmp_path / "label"
    manifest = label_from_config(make_cfg(path), out)
    rows = read_rows(out)
    mean = sum(r["entropy"] for r in rows) / len(rows)
    assert manifest["stats"]["mean_entropy_nats"] == pytest.approx(mean, rel=1e-5)
    assert manifest["stats"]["entropy_fraction"] == pytest.approx(mean / math.log(2), rel=1e-5)
    dist = manifest["stats"]["label_distribution"]
    assert sum(dist.values()) == len(rows) == manifest["counts"]["labeled"]
    for name in ("0", "1"):
        assert dist.get(name, 0) == sum(r["teacher_argmax"] == int(name) for r in rows)


def test_stats_of_counts_without_soft_label_numbers():
    """A summary from before the stats existed (or no labelled row) gives empty stats, not an error."""
    assert soft_label_stats({"read": 0}, ["a", "b"]) == {"mean_entropy_nats": None, "entropy_fraction": None,
                                                         "label_distribution": {}}


def test_cli_label_prints_the_headline_on_stderr(tmp_path, make_cfg, uniform_teacher, capsys):
    import json

    from zuoxiao.cli import main
    from zuoxiao.core.config import save_resolved

    path = write_tsv(tmp_path / "in.tsv", SENTENCES[:4])
    cfg = make_cfg(path, label_names=("neg", "pos"), label_column=None, teacher=uniform_teacher)
    save_resolved(cfg, tmp_path)
    assert main(["label", str(tmp_path / "config.resolved.yaml"), "--output", str(tmp_path / "label")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["counts"]["labeled"] == 4  # stdout stays JSON
    assert "label: labelled 4 of 4 rows, rejected 0; soft-label entropy 0.693 nats (100.0% of ln 2)" in err
