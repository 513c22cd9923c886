"""Fixtures for the label pipeline tests: a tiny teacher, small task files, a config builder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.pipelines.tiny_teacher import build_tiny_teacher

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    ("a very good movie", "1"), ("the worst film ever", "0"), ("i love this story", "1"),
    ("boring and long", "0"), ("great acting and a fun plot", "1"), ("awful , sad and bad", "0"),
    ("the best actor", "1"), ("i hate it", "0"), ("funny and short", "1"), ("not good at all", "0"),
    ("this was a great film", "1"), ("the plot is very boring", "0"),
]


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """Bare tiny encoder (no head): label names come from the task or the data, head is seeded."""
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "bare")


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory) -> Path:
    """A tiny 3-class classifier saved with safetensors (the Beam handler's tests)."""
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "clf", label_names=["a", "b", "c"])


@pytest.fixture(scope="session")
def trained_teacher(tmp_path_factory) -> Path:
    """Tiny classifier whose config names its classes (as a fine-tuned teacher would)."""
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "trained", label_names=["neg", "pos"])


def write_tsv(path: Path, rows, header=("sentence", "label")) -> Path:
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def make_cfg(tmp_path, tiny_teacher):
    """make_cfg(input_path, **label_overrides) -> a validated Config for a tiny label run."""
    from zuoxiao.core.config import parse_config

    def make(path, fmt="auto", text_column="sentence", label_column="label", id_column=None,
             label_names=("0", "1"), teacher=None, **label):
        raw = {
            "output_dir": str(tmp_path / "outputs"),
            "task": {"name": "t", "label_names": list(label_names) if label_names else None},
            "label": {
                "input": {"path": path if isinstance(path, list) else str(path), "format": fmt,
                          "text_column": text_column, "label_column": label_column, "id_column": id_column},
                "teacher": {"path": str(teacher or tiny_teacher), "max_length": 16, "num_threads": 1},
                "batch_size": 4, "rows_per_shard": 5, "row_group_size": 4,
                **label,
            },
        }
        return parse_config(raw)

    return make
