"""Configs of the train stage: teacher fine-tuning and student distillation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zuoxiao.config.base import DataSource, StrictModel, TeacherSpec


class OptimConfig(StrictModel):
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    epochs: float = Field(2.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    batch_size: int = Field(32, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"


class FinetuneConfig(StrictModel):
    """Fine-tune a backbone on gold labels so it can serve as the task teacher."""

    data: DataSource
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="held out of `data` for eval when task.eval is null")


class StudentConfig(StrictModel):
    kind: Literal["from_teacher", "pretrained", "config"] = "from_teacher"
    layers: list[int] | None = Field([0, 5], description="from_teacher: teacher layer indices to copy")
    path: str | None = Field(None, description="pretrained: local HF checkpoint dir")
    num_layers: int = Field(2, ge=1, description="config: encoder layers")
    hidden_size: int = Field(256, ge=8, description="config: width")
    num_heads: int = Field(4, ge=1, description="config: attention heads")
    intermediate_size: int = Field(1024, ge=8, description="config: FFN width")
    tokenizer: str | None = Field(None, description="tokenizer dir; null = the teacher's (or checkpoint's)")

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "pretrained" and not self.path:
            raise ValueError("student.kind=pretrained needs student.path (a local HF checkpoint directory)")
        if self.kind == "config" and self.hidden_size % self.num_heads:
            raise ValueError(
                f"student.hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}"
            )
        return self


class AdapterConfig(StrictModel):
    kind: Literal["lora", "full"] = "full"
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "key", "value", "dense"])


class LossConfig(StrictModel):
    kind: Literal["kl", "mse"] = "kl"
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the distillation term; 1-alpha on gold CE")


class TrainConfig(StrictModel):
    student: StudentConfig = Field(default_factory=StudentConfig)
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-4, epochs=3))
    max_length: int = Field(128, ge=8)
    eval_every: int = Field(200, ge=1, description="optimizer steps between evaluations")
    early_stopping_patience: int | None = Field(None, ge=1, description="evaluations without improvement")
    metric: Literal["accuracy", "macro_f1", "agreement"] = "accuracy"
    checkpoint_every: int = Field(500, ge=1, description="optimizer steps between save_state checkpoints")
