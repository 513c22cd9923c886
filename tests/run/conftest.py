"""Fixtures for the runner and demo tests: small jobs on fake stages, and (for the real end-to-end
test) a tiny BERT teacher built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def write_rows(path: Path, n: int, start: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for i in range(start, start + n):
            f.write(json.dumps({"id": f"r{i}", "text": f"message number {i}", "label": ["a", "b"][i % 2]}) + "\n")
    return path


@pytest.fixture
def fake_job(tmp_path):
    """Write a config for the fake stages under tmp_path; returns make(**overrides) -> config path."""
    data = write_rows(tmp_path / "data" / "input.jsonl", 10)
    gold = write_rows(tmp_path / "data" / "gold.jsonl", 4)

    def make(name: str = "job.yaml", finetune: bool = True, **sections) -> Path:
        raw = {
            "output_dir": str(tmp_path / "out"),
            "task": {"name": "fake", "label_names": ["a", "b"]},
            "label": {"input": {"path": str(data), "id_column": "id"}, "rows_per_shard": 4},
            "ship": {"gate": {"min_retention": 0.9}},
        }
        if finetune:
            raw["finetune"] = {"data": {"path": str(gold)}}
        for key, value in sections.items():
            node = raw
            *parents, last = key.split("__")
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = value
        p = tmp_path / name
        p.write_text(yaml.safe_dump(raw))
        return p

    make.data = data
    make.out = tmp_path / "out"
    return make


def build_tiny_backbone(directory: Path) -> Path:
    """A 2-layer, 32-wide BERT encoder (no head, like the embedded MiniLM) with a WordPiece vocab that covers
    the demo task's words, saved with save_pretrained. Built offline in well under a second."""
    import re

    import torch
    from transformers import BertConfig, BertModel

    from tests.tiny import wordpiece_tokenizer
    from zuoxiao.run.demo_templates import CONTEXTS, GREETINGS, HELD_OUT, SIGNOFFS, SLOTS, TEMPLATES

    words = set()
    for src in (*TEMPLATES.values(), *HELD_OUT.values(), CONTEXTS, GREETINGS, SIGNOFFS, *SLOTS.values()):
        for t in src:
            words.update(re.findall(r"[a-z]+", t.lower()))
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'#$:()-")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words) + letters + ["##" + x for x in letters]
    vocab = list(dict.fromkeys(vocab))
    tok = wordpiece_tokenizer(directory, vocab)
    assert tok.tokenize("refund please") == ["refund", "please"], "tiny tokenizer lost its vocabulary"
    tok.save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    return directory


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return build_tiny_backbone(tmp_path_factory.mktemp("zx-backbone") / "tiny-bert")
