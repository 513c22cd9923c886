"""Configs of the train stage: teacher fine-tuning and student distillation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from zuoxiao.core.config.base import DataSource, StrictModel, TeacherSpec, yaml_false_as

#: compress steps a static student (student/static.py) has nothing for: they cut transformer blocks (or
#: Linears outside the head), or duplicate what ``pca_dims`` already sets (the table's width). Refused by the config (zuoxiao.core.config)
#: and by the compress stage on the model itself (student/compress/steps.py).
STATIC_REFUSED_STEPS = {
    "prune_heads": "a static student has no attention heads",
    "prune_neurons": "a static student has no FFN neurons",
    "prune_layers": "a static student has no transformer layers",
    "low_rank": "a static student has no transformer layers to factorise",
    "factorize_embeddings": "the token table's width is train.student.pca_dims; lower it there instead",
    "magnitude": "a static student has no Linear layers outside its head, which magnitude pruning leaves dense",
}


class OptimConfig(StrictModel):
    """AdamW + warmup/decay schedule, shared by fine-tuning and distillation."""

    lr: float = Field(5e-5, gt=0, description="peak learning rate (after warmup)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decay (not applied to biases and LayerNorms)")
    epochs: float = Field(2.0, gt=0, description="passes over the data (fractions allowed)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs when set")
    batch_size: int = Field(32, ge=1, description="rows per micro-batch per process")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="fraction of steps with linear warmup")
    schedule: Literal["linear", "cosine", "constant"] = Field("linear", description="decay after warmup")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping; null = off")
    mixed_precision: Annotated[Literal["auto", "no", "fp16", "bf16"], BeforeValidator(yaml_false_as("no"))] = Field(
        "auto", description="auto = bf16 on a CUDA device that supports it, else no; fp16 needs CUDA"
    )


class FinetuneOptimConfig(OptimConfig):
    """The fine-tune's optimiser: like OptimConfig, with an automatic schedule and a faster new head.

    `epochs: auto` derives the epochs from the data (see FinetuneConfig.min_steps / min_epochs /
    max_epochs / rows_per_class): few rows or many classes get more passes, a large set gets fewer.
    """

    lr: float = Field(1e-4, gt=0, description="peak learning rate of the pretrained backbone (after warmup)")
    head_lr: float | None = Field(
        2e-3, gt=0, description="peak learning rate of the newly initialised parameters (the classifier, and "
        "the pooler when the checkpoint has none); null = lr. A random head learns slowly at a backbone's lr"
    )
    epochs: float | Literal["auto"] = Field(
        "auto", description="passes over the gold rows; auto = derived from rows and classes"
    )
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps with linear warmup")

    @field_validator("epochs")
    @classmethod
    def _positive(cls, v):
        if v != "auto" and v <= 0:
            raise ValueError(f"epochs={v} must be > 0 or 'auto'")
        return v


class SearchConfig(StrictModel):
    """A small grid of fine-tunes, each scored on the dev set; the best is kept, all are reported."""

    lr: list[float] = Field([5e-5, 1e-4, 2e-4], min_length=1, description="backbone learning rates to try")
    epochs: list[float | Literal["auto"]] = Field(["auto"], min_length=1, description="epochs to try")
    budget_s: float = Field(
        3600, gt=0, description="wall-clock seconds for the whole search; a trial that would not fit "
        "(estimated from the seconds per step measured so far) is skipped and reported as such"
    )


class FinetuneLoraConfig(StrictModel):
    """LoRA on the fine-tuned backbone (finetune.adapter: lora): low-rank updates, merged before saving."""

    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] | None = Field(
        None, description="module name suffixes that get LoRA; null = the attention projections the model has "
        "(q_proj/k_proj/v_proj/o_proj of Llama-family LMs, query/key/value of BERT-family encoders). The new "
        "classification head is always trained in full"
    )


class FinetuneConfig(StrictModel):
    """Fine-tune a backbone on gold labels so it can serve as the task teacher."""

    data: DataSource | None = Field(None, description="gold-labelled rows; null only with task.split (its train part)")
    teacher: TeacherSpec = Field(default_factory=TeacherSpec)
    optim: FinetuneOptimConfig = Field(default_factory=FinetuneOptimConfig)
    min_steps: int = Field(300, ge=0, description="epochs: auto trains at least this many optimizer steps")
    min_epochs: float = Field(3.0, gt=0, description="epochs: auto trains at least this many passes")
    max_epochs: float = Field(20.0, gt=0, description="epochs: auto trains at most this many passes")
    rows_per_class: int = Field(
        500, ge=0, description="epochs: auto shows the model about this many rows of each class in total "
        "(77 classes x 65 gold rows -> ~8 epochs)"
    )
    dev_fraction: float = Field(
        0.1, gt=0, lt=1, description="held out of `data` (stratified, seeded) as the dev set when task.dev is null"
    )
    dev_max_rows: int = Field(2000, ge=1, description="cap on the rows held out by dev_fraction")
    eval_every: int | None = Field(None, ge=1, description="optimizer steps between dev evaluations; null = each epoch")
    early_stopping_patience: int | None = Field(
        3, ge=1, description="dev evaluations without improvement before stopping; null = never stop early"
    )
    freeze_embeddings: bool = Field(False, description="keep word embeddings fixed (faster AdamW steps on CPU)")
    search: SearchConfig | None = Field(None, description="try a few lr/epochs, keep the best on dev; null = off")
    min_gain_over_baseline: float = Field(
        1.0, description="accuracy points (on dev) the teacher must gain over the TF-IDF + logistic-regression "
        "baseline, else the run stops before labelling (exit 3)"
    )
    allow_below_baseline: bool = Field(False, description="keep going when the teacher misses min_gain_over_baseline")
    blend_baseline: Annotated[Literal["auto", "off"], BeforeValidator(yaml_false_as("off"))] = Field(
        "auto", description="auto: label with (1-w) teacher + w baseline probabilities when a weight w in 0.1..0.5 "
        "beats the teacher alone on dev by blend_min_gain points with p <= blend_max_p (teacher/blend.py); "
        "off: the teacher alone"
    )
    blend_min_gain: float = Field(
        0.5, ge=0, description="dev accuracy points the blend must gain over the teacher alone to be kept"
    )
    blend_max_p: float = Field(
        0.05, gt=0, le=1, description="the blend is kept only when a one-sided exact sign test (McNemar) on the dev "
        "rows where it and the teacher alone disagree on being right gives p <= this; 1 = no test"
    )
    adapter: Literal["full", "lora"] = Field(
        "full", description="full: train every weight; lora: PEFT LoRA (e.g. a causal LM such as "
        "embedded:smollm2-135m-instruct as a sequence classifier), merged and saved as plain safetensors"
    )
    lora: FinetuneLoraConfig = Field(default_factory=FinetuneLoraConfig, description="adapter: lora settings")

    @model_validator(mode="after")
    def _check(self):
        if self.teacher.kind == "causal_lm":
            raise ValueError("finetune.teacher.kind=causal_lm: fine-tuning turns the LM into a sequence classifier; "
                             "leave kind: classifier and point finetune.teacher.path at the LM (adapter: lora)")
        if self.teacher.members:
            raise ValueError("finetune.teacher.members: fine-tuning takes one backbone (finetune.teacher.path); "
                             "ensembles belong in label.teacher.members")
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"finetune.min_epochs={self.min_epochs} exceeds max_epochs={self.max_epochs}")
        return self


class StudentConfig(StrictModel):
    kind: Literal["from_teacher", "pretrained", "config", "static"] = Field(
        "from_teacher",
        description="from_teacher: copy embeddings + chosen layers; pretrained: local checkpoint; "
        "config: fresh BERT of the size below; static: token vectors distilled from an encoder with model2vec, "
        "averaged, and a small head (student/static.py)",
    )
    layers: list[int] | None = Field([0, 5], description="from_teacher: teacher layer indices to copy")
    ffn_size: int | None = Field(
        None, ge=8, description="from_teacher: keep this many FFN neurons per layer (largest weight norms); "
        "null = all. A narrower student without re-training from scratch"
    )
    path: str | None = Field(
        None, description="pretrained: local HF checkpoint dir; static: the encoder whose token vectors are "
        "distilled (a local dir or embedded:all-MiniLM-L6-v2), null = the teacher (its base encoder)"
    )
    num_layers: int = Field(2, ge=1, description="config: encoder layers")
    hidden_size: int = Field(256, ge=8, description="config: width")
    num_heads: int = Field(4, ge=1, description="config: attention heads")
    intermediate_size: int = Field(1024, ge=8, description="config: FFN width")
    tokenizer: str | None = Field(None, description="tokenizer dir; null = the teacher's (or checkpoint's)")
    pca_dims: int | None = Field(
        256, ge=2, description="static: width of the token vectors after PCA (the table is vocab x pca_dims); "
        "null = the encoder's width"
    )
    head_hidden: int = Field(
        256, ge=0, description="static: hidden ReLU units of the head on the averaged vectors; 0 = a linear head"
    )

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "pretrained" and not self.path:
            raise ValueError("train.student.kind=pretrained needs train.student.path (a local HF checkpoint directory)")
        if self.kind == "config" and self.hidden_size % self.num_heads:
            raise ValueError(
                f"train.student.hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}"
            )
        if self.kind == "static" and self.tokenizer:
            raise ValueError(f"train.student.tokenizer={self.tokenizer!r}: a static student's token vectors are "
                             "distilled through its encoder's own tokenizer; remove train.student.tokenizer (set "
                             "train.student.path to choose the encoder)")
        if self.kind == "from_teacher":
            if not self.layers:
                raise ValueError("train.student.kind=from_teacher needs train.student.layers, e.g. [0, 5]")
            if len(set(self.layers)) != len(self.layers) or min(self.layers) < 0:
                raise ValueError(
                    f"train.student.layers={self.layers} must be distinct non-negative teacher layer indices"
                )
        return self


class AdapterConfig(StrictModel):
    kind: Literal["lora", "full"] = Field("full", description="lora: PEFT LoRA (merged before saving); full")
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] = Field(
        default_factory=lambda: ["query", "key", "value", "dense"],
        description="module name suffixes that get LoRA; the classifier head is always trained in full",
    )


class LossConfig(StrictModel):
    kind: Literal["auto", "kl", "mse"] = Field(
        "auto", description="kl: KL(teacher_T || student_T) x T^2; mse: mean squared error on logits; auto: mse "
        "for <= 4 classes, kl above (measured on SST-2 and tweeteval_emoji, docs/train.md)"
    )
    temperature: float = Field(2.0, gt=0, description="softmax temperature of the KL term")
    alpha: float = Field(
        0.5, ge=0, le=1,
        description="weight of the distillation term; 1-alpha on gold CE (rows without gold: KD only)",
    )
    repr_weight: float = Field(
        0.0, ge=0, description="weight of the representation term (student [CLS] state, through a learned "
        "projection dropped at export, vs the shards' teacher_repr); needs label.store_representation; 0 = off",
    )
    repr_kind: Literal["cosine", "mse"] = Field("cosine", description="representation term: 1 - cosine, or MSE")


class DistillSearchConfig(StrictModel):
    """Choose the distillation recipe on task.dev: short runs of a few candidates, the best retrained in full.

    Coordinate search, one knob at a time from the configured recipe (a full grid would be 4x2x2x3 runs):
    the loss (each of `temperatures` as KL, and MSE), then `alphas` (only when the shards hold gold
    labels), then `repr_weights` (only when they hold teacher representations), then `lrs`.
    """

    budget_s: float = Field(
        1800, gt=0, description="wall-clock seconds for all candidate runs; a candidate that would not fit "
        "(estimated from the runs so far) is skipped and reported as such"
    )
    max_steps: int = Field(200, ge=1, description="optimizer steps of each candidate run")
    temperatures: list[float] = Field([1.0, 2.0, 4.0], description="KL temperatures to try")
    mse: bool = Field(True, description="also try logit MSE")
    alphas: list[float] = Field([1.0, 0.5], description="distillation weights to try (1 - alpha on gold CE)")
    repr_weights: list[float] = Field([0.0, 1.0], description="representation-term weights to try")
    lrs: list[float] = Field([5e-5, 1e-4, 2e-4], description="student learning rates to try")

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, v):
        if any(not 0 <= a <= 1 for a in v):
            raise ValueError(f"alphas={v}: each must be in [0, 1]")
        return v

    @field_validator("temperatures", "lrs", "repr_weights")
    @classmethod
    def _positive(cls, v, info):
        if any(x < 0 or (x == 0 and info.field_name != "repr_weights") for x in v):
            raise ValueError(f"{info.field_name}={v}: values must be > 0 (repr_weights >= 0)")
        return v


class TrainConfig(StrictModel):
    student: StudentConfig = Field(default_factory=StudentConfig)
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=lambda: OptimConfig(lr=1e-4, epochs=3))
    max_length: int = Field(128, ge=8, description="student tokens per text (longer texts are truncated)")
    freeze_embeddings: bool = Field(
        False, description="keep the student's word embeddings fixed: most of a small student's parameters, "
        "and most of an AdamW step's time on CPU"
    )
    shuffle_buffer: int = Field(
        4096, ge=1, description="rows held in memory for shuffling and length bucketing (bounds memory)"
    )
    eval_every: int = Field(200, ge=1, description="optimizer steps between evaluations")
    eval_batch_size: int = Field(64, ge=1, description="rows per forward pass during evaluation")
    early_stopping_patience: int | None = Field(None, ge=1, description="evaluations without improvement")
    metric: Literal["accuracy", "macro_f1", "agreement"] = Field(
        "accuracy", description="what early stopping and the best checkpoint track (higher is better)"
    )
    checkpoint_every: int = Field(500, ge=1, description="optimizer steps between save_state checkpoints")
    keep_checkpoints: int = Field(2, ge=1, description="save_state checkpoints kept (oldest deleted)")
    search: DistillSearchConfig | None = Field(
        None, description="choose loss / alpha / repr_weight / lr on task.dev with short runs; null = off"
    )

    @model_validator(mode="after")
    def _check_static(self):
        if self.student.kind == "static" and self.adapter.kind == "lora":
            raise ValueError("train.adapter.kind=lora: a static student has no attention or FFN layers to adapt; "
                             "use train.adapter.kind: full (train.freeze_embeddings: true keeps the token vectors "
                             "fixed and trains the head only)")
        return self

