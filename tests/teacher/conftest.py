"""Fixtures for the teacher-side label tests (handler, soft labels, cache, augmentation)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.pipelines.tiny_teacher import build_tiny_teacher

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory) -> Path:
    """A tiny 3-class classifier saved with safetensors."""
    return build_tiny_teacher(tmp_path_factory.mktemp("teacher") / "clf", label_names=["a", "b", "c"])
