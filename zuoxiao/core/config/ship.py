"""Config of the ship stage: the bundle app teams get, and the quality gate in front of it."""

from __future__ import annotations

from pydantic import Field

from zuoxiao.core.config.base import StrictModel


class GateConfig(StrictModel):
    """Publish the bundle only when every configured bound holds (null = not checked)."""

    min_retention: float | None = Field(0.95, gt=0, le=1.5, description="final accuracy / teacher accuracy")
    max_size_mb: float | None = Field(None, gt=0, description="bundle size in MB (10^6 bytes), all files")
    max_latency_ms_p50: float | None = Field(None, gt=0, description="final model, batch 1, latency_seq_len tokens")


class ShipConfig(StrictModel):
    gate: GateConfig = Field(default_factory=GateConfig)
