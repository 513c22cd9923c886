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
            "compress": {"gate": {"min_retention": 0.9}},
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
