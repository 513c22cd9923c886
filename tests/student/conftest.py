"""Tiny offline fixtures for the train stage: a 2-class toy task, a 4-layer 32-wide BERT teacher with a
WordPiece tokenizer, and soft-label shards written the way the label stage writes them."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from zuoxiao.core.config import parse_config
from zuoxiao.core.labelout import write_label_output

POS = ["good", "great", "nice", "fine", "superb", "lovely"]
NEG = ["bad", "awful", "poor", "sad", "terrible", "ugly"]
FILL = ["the", "a", "movie", "film", "was", "is", "very", "plot", "actor", "really", "quite", "story"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_rows(n: int, seed: int) -> list[dict]:
    """Toy sentiment: label 1 when the text holds a positive word, else 0."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.randrange(2)
        words = rng.sample(FILL, rng.randint(2, 7)) + [rng.choice(POS if label else NEG)]
        rng.shuffle(words)
        rows.append({"id": f"r{seed}-{i}", "text": " ".join(words), "label": ["neg", "pos"][label], "y": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_tiny_bert(path: Path, num_labels: int = 2, layers: int = 4, seed: int = 0) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    from tests.tiny import wordpiece_tokenizer

    tok = wordpiece_tokenizer(path, SPECIAL + POS + NEG + FILL)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(SPECIAL + POS + NEG + FILL), hidden_size=32, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                     num_labels=num_labels)
    BertForSequenceClassification(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def write_shards(out: Path, rows: list[dict], logits: np.ndarray, label_names: list[str], teacher_path: str,
                 storage: str = "full", top_k: int = 2, n_shards: int = 2, gold_every: int = 1,
                 row_group_size: int | None = None, reprs: np.ndarray | None = None) -> Path:
    """Shards + manifest through the format (zuoxiao.core.labelout). Row i keeps its gold label when
    i % gold_every == 0.

    reprs [N, D] (NaN rows = null): written to teacher_repr (fp16) with teacher.repr_dim = D. Without it the
    shards lack the column, as shards written before it existed do.
    """
    rows = [{"id": r["id"], "text": r["text"], "gold": r["y"] if i % gold_every == 0 else None}
            for i, r in enumerate(rows)]
    write_label_output(out, rows, logits, label_names, storage=storage, top_k=top_k, n_shards=n_shards,
                       teacher={"path": teacher_path, "fingerprint": None}, row_group_size=row_group_size,
                       reprs=reprs)
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core box spinning threads cost 5-10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("teacher") / "tiny-bert")


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("toy")
    rows = make_rows(192, seed=1)
    return {"dir": d, "rows": rows, "train": write_jsonl(d / "train.jsonl", rows),
            "eval": write_jsonl(d / "eval.jsonl", make_rows(48, seed=2))}


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory, tiny_teacher, toy_data) -> Path:
    """Full-storage shards with a sharp synthetic teacher (logit +-2 towards the gold class)."""
    rows = toy_data["rows"]
    logits = np.array([[-2.0, 2.0] if r["y"] else [2.0, -2.0] for r in rows])
    return write_shards(tmp_path_factory.mktemp("label"), rows, logits, ["neg", "pos"], str(tiny_teacher),
                        gold_every=2)


def make_cfg(teacher: Path, data: dict, evaluate: bool = True, **train) -> object:
    """A Config for the toy task; train.* overrides as keyword args, nested keys joined by '__'."""
    raw = {
        "seed": 0,
        "task": {"name": "toy", "label_names": ["neg", "pos"],
                 "eval": {"path": str(data["eval"])} if evaluate else None},
        "label": {"input": {"path": str(data["train"])}, "teacher": {"path": str(teacher), "max_length": 32}},
        "train": {"max_length": 32, "eval_every": 2, "student": {"layers": [0, 3]}, "checkpoint_every": 2,
                  "optim": {"batch_size": 16, "max_steps": 4, "lr": 1e-3, "warmup_ratio": 0.0}},
    }
    for key, value in train.items():
        node = raw["train"]
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return parse_config(raw)
