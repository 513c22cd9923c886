"""Config of `zuoxiao run`: the scheduled end-to-end job."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from zuoxiao.config.base import StrictModel

STAGES = ("finetune", "label", "train", "compress")


class CacheConfig(StrictModel):
    enabled: bool = True
    max_rows: int = Field(5_000_000, ge=1, description="bound on cached teacher outputs; oldest evicted")


class RunConfig(StrictModel):
    run_id: str | None = Field(None, description="null = a UTC timestamp")
    stages: list[Literal["finetune", "label", "train", "compress"]] = Field(default_factory=lambda: list(STAGES))
    cache: CacheConfig = Field(default_factory=CacheConfig)
