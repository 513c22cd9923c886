"""Config of the compress + ship stage: ordered compression steps, export and the quality gate."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from zuoxiao.config.base import StrictModel


class VocabTrim(StrictModel):
    kind: Literal["vocab_trim"]


class PruneHeads(StrictModel):
    kind: Literal["prune_heads"]
    keep: float = Field(0.5, gt=0, le=1, description="fraction of heads kept per layer")


class PruneNeurons(StrictModel):
    kind: Literal["prune_neurons"]
    keep: float = Field(0.5, gt=0, le=1, description="fraction of FFN neurons kept per layer")


class PruneLayers(StrictModel):
    kind: Literal["prune_layers"]
    keep: list[int] = Field(description="encoder layer indices to keep")


class Magnitude(StrictModel):
    kind: Literal["magnitude"]
    sparsity: float = Field(0.5, gt=0, lt=1)
    scope: Literal["global", "layer"] = "global"


class LowRank(StrictModel):
    kind: Literal["low_rank"]
    rank: int | None = Field(None, ge=1)
    energy: float | None = Field(0.9, gt=0, le=1)
    modules: list[str] = Field(default_factory=lambda: ["intermediate.dense", "output.dense"])


class Recover(StrictModel):
    kind: Literal["recover"]
    steps: int = Field(200, ge=1)
    lr: float = Field(5e-5, gt=0)


class Quantize(StrictModel):
    kind: Literal["quantize"]
    backend: Literal["onnx", "torch"] = "onnx"
    per_channel: bool = True


Step = Annotated[
    VocabTrim | PruneHeads | PruneNeurons | PruneLayers | Magnitude | LowRank | Recover | Quantize,
    Field(discriminator="kind"),
]


class GateConfig(StrictModel):
    min_retention: float | None = Field(0.95, gt=0, le=1.5, description="student acc / teacher acc")
    max_size_mb: float | None = Field(None, gt=0)
    max_latency_ms_p50: float | None = Field(None, gt=0, description="batch 1, 64 tokens")


class CompressConfig(StrictModel):
    steps: list[Step] = Field(default_factory=lambda: [VocabTrim(kind="vocab_trim"), Quantize(kind="quantize")])
    gate: GateConfig = Field(default_factory=GateConfig)
    latency_runs: int = Field(30, ge=3)
