"""Config of the compress + ship stage: ordered compression steps, export and the quality gate.

Steps run in the order given; each is optional. A step list such as

    steps:
      - {kind: vocab_trim}
      - {kind: prune_neurons, keep: 0.5}
      - {kind: recover, steps: 300}
      - {kind: quantize, backend: onnx}

trims the vocabulary, halves every FFN, re-distils on the label shards, then ships ONNX int8.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from zuoxiao.core.config.base import StrictModel

Importance = Literal["gradient", "activation"]


class VocabTrim(StrictModel):
    """Keep only the tokens the transfer set uses (plus special tokens); remap embeddings + tokenizer."""

    kind: Literal["vocab_trim"]
    min_count: int | Literal["auto"] = Field(
        "auto", description="keep a token seen at least this many times in the shards; auto = the largest of "
        "1, 2, 3, 4, 6, 8, 12, 16 (at most transfer rows / auto_rows_per_count) whose dev accuracy stays within "
        "auto_tolerance of the untrimmed student's; 1 without task.dev (exact on the transfer set)"
    )
    auto_rows_per_count: int = Field(
        2000, ge=1, description="auto: a cut-off of n needs at least n times this many transfer rows, so a small "
        "transfer set keeps its rare words"
    )
    auto_tolerance: float = Field(0.5, ge=0, description="auto: accuracy points on task.dev the trim may cost")
    dev_rows: int | None = Field(
        2000, ge=1, description="task.dev rows (seeded sample) measured before/after the trim and per auto "
        "candidate; null = all"
    )
    warn_points: float = Field(1.0, ge=0, description="warn when the trim costs more than this many accuracy points")
    keep_chars: bool = Field(
        True, description="also keep every single-character ASCII token (and its ## form), so unseen words "
        "split into characters instead of becoming [UNK]"
    )
    max_rows: int | None = Field(None, ge=1, description="scan at most this many shard rows; null = all")
    max_positions: int | None = Field(
        None, ge=8, description="also keep only this many position embeddings (>= the max_length used for "
        "eval/export); null = keep all"
    )


    @field_validator("min_count")
    @classmethod
    def _positive(cls, v):
        if v != "auto" and v < 1:
            raise ValueError(f"min_count={v}: give an integer >= 1 (1 keeps every token the transfer set uses) "
                             "or 'auto'")
        return v


class PruneHeads(StrictModel):
    """Remove the least important attention heads (same count in every layer)."""

    kind: Literal["prune_heads"]
    keep: float = Field(0.5, gt=0, le=1, description="fraction of heads kept per layer (at least 1 head)")
    importance: Importance = Field("gradient", description="gradient: |dL/dmask| (Taylor); activation: mean |output|")
    rows: int = Field(512, ge=8, description="transfer-set rows used to score importance")


class PruneNeurons(StrictModel):
    """Remove the least important FFN neurons (same width in every layer, so the model reloads)."""

    kind: Literal["prune_neurons"]
    keep: float = Field(0.5, gt=0, le=1, description="fraction of FFN neurons kept per layer")
    importance: Importance = Field("gradient", description="gradient: |dL/dmask| (Taylor); activation: mean |output|")
    rows: int = Field(512, ge=8, description="transfer-set rows used to score importance")


class PruneLayers(StrictModel):
    """Keep only the listed encoder layers (indices into the current model)."""

    kind: Literal["prune_layers"]
    keep: list[int] = Field(description="encoder layer indices to keep, e.g. [0, 2]")

    @field_validator("keep")
    @classmethod
    def _valid(cls, v):
        if not v:
            raise ValueError("keep is empty; list at least one encoder layer index, e.g. [0]")
        if len(set(v)) != len(v) or any(i < 0 for i in v):
            raise ValueError(f"keep={v} must list distinct non-negative layer indices, e.g. [0, 2]")
        return sorted(v)


class Magnitude(StrictModel):
    """Unstructured magnitude pruning of Linear weights (zeros only: no smaller dense file, no speed-up)."""

    kind: Literal["magnitude"]
    sparsity: float = Field(0.5, gt=0, lt=1, description="fraction of Linear weights set to zero")
    scope: Literal["global", "layer"] = Field("global", description="one global threshold or per Linear layer")


class LowRank(StrictModel):
    """SVD factorisation W ~ U_r S_r V_r^T of chosen nn.Linear layers, or nn.Embedding ones such as
    'word_embeddings$' (ALBERT-style factorised embeddings), chosen by regex on module names."""

    kind: Literal["low_rank"]
    rank: int | None = Field(None, ge=1, description="fixed rank; when set, energy is ignored")
    energy: float = Field(0.9, gt=0, le=1, description="smallest rank keeping this fraction of sum(S^2)")
    modules: list[str] = Field(
        default_factory=lambda: [r"intermediate\.dense$", r"layer\.\d+\.output\.dense$"],
        description="regular expressions (re.search) on module names, e.g. 'intermediate\\.dense$'",
    )

    @field_validator("modules")
    @classmethod
    def _compiles(cls, v):
        import re

        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"modules entry {pattern!r} is not a valid regular expression ({err})") from None
        if not v:
            raise ValueError("modules is empty; give regexes such as 'intermediate\\.dense$'")
        return v


class Recover(StrictModel):
    """A short distillation pass on the label shards after destructive steps."""

    kind: Literal["recover"]
    # 1,200 steps at 2e-4 (the students' own lr) instead of 400 at 1e-4: +1.5 test points on emoji, +0.6 on
    # AG News, +0.1 on SST-2 after factorize_embeddings (docs/compress.md, "Longer recovery")
    steps: int = Field(1200, ge=1, description="optimizer steps")
    lr: float = Field(2e-4, gt=0, description="peak learning rate (train.optim's warmup and schedule)")
    batch_size: int = Field(32, ge=1)


class FactorizeEmbeddings(StrictModel):
    """Word embeddings [V, d] -> A [V, r] @ B [r, d] (a narrow table plus a projection), fitted by a
    token-frequency-weighted, mean-centred SVD over the transfer set; the mean row is folded into the
    token-type (or position) embeddings, which every token adds anyway. Follow with recover."""

    kind: Literal["factorize_embeddings"]
    rank: int | None = Field(64, ge=1, description="inner width r; null = the smallest keeping `energy`")
    energy: float = Field(0.95, gt=0, le=1, description="weighted sum(S^2) kept when rank is null")
    max_rows: int | None = Field(20000, ge=1, description="transfer rows counted for token frequencies; null = all")
    smoothing: float = Field(1.0, ge=0, description="added to every token count, so unseen tokens keep weight")


class Quantize(StrictModel):
    """int8. onnx: ONNX Runtime quantisation of the exported graph (what the bundle ships): dynamic
    (activations quantised at run time) or static (QDQ, activation ranges calibrated on transfer rows);
    torch: torch.ao dynamic int8 of nn.Linear, measured in the report (the bundle then ships fp32 ONNX)."""

    kind: Literal["quantize"]
    backend: Literal["onnx", "torch"] = "onnx"
    mode: Literal["dynamic", "static"] = Field(
        "dynamic", description="onnx only; static was slower than dynamic on AVX2 CPUs without VNNI (docs/compress.md)"
    )
    per_channel: bool = Field(True, description="per-output-channel weight scales (onnx)")
    reduce_range: bool | Literal["auto"] = Field(
        "auto", description="7-bit weights; auto = on for CPUs without VNNI (avoids int16 overflow)"
    )
    calibration_rows: int = Field(256, ge=1, description="static: transfer-set rows run to calibrate activations")
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="static: how activation ranges are chosen from the calibration rows"
    )
    activation_type: Literal["uint8", "int8"] = Field("uint8", description="static: activation int8 type")
    embedding_bits: Literal[8, 4] = Field(
        8, description="onnx only: bits per value of the word-embedding table; 4 = two values per byte with a "
        "per-row fp16 min and step, widened after the lookup (standard ONNX ops; half the table's int8 bytes)"
    )
    residual_sum: bool = Field(
        True, description="onnx: write each residual Add that feeds a LayerNormalization as the equal Sum op, "
        "so ONNX Runtime does not fuse the pair into its SkipLayerNormalization kernel, measured 4-5x slower "
        "than Add + LayerNormalization on an AVX2 CPU (-16% batch-1 time at 64 tokens; docs/compress.md)"
    )
    optimize: Literal["none", "basic", "extended"] = Field(
        "none", description="save ONNX Runtime's graph optimisations of this level into the bundle's graph "
        "(extended fuses into com.microsoft ops that only ONNX Runtime runs)"
    )

    @model_validator(mode="after")
    def _onnx_only_options(self):
        if self.mode == "static" and self.backend != "onnx":
            raise ValueError("quantize.mode=static needs backend=onnx (torch.ao is measured dynamic only)")
        if self.embedding_bits == 4 and self.backend != "onnx":
            raise ValueError("quantize.embedding_bits=4 needs backend=onnx (it rewrites the ONNX graph); "
                             "use backend: onnx or embedding_bits: 8")
        return self


Step = Annotated[
    VocabTrim | PruneHeads | PruneNeurons | PruneLayers | Magnitude | LowRank | FactorizeEmbeddings | Recover
    | Quantize,
    Field(discriminator="kind"),
]


class CompressConfig(StrictModel):
    steps: list[Step] = Field(default_factory=lambda: [VocabTrim(kind="vocab_trim"), Quantize(kind="quantize")])
    latency_runs: int = Field(30, ge=3, description="timed runs per latency measurement (after warm-up)")
    latency_threads: int = Field(1, ge=1, description="intra-op threads while timing (1 = comparable numbers)")
    latency_seq_len: int = Field(64, ge=4, description="tokens per row in latency measurements")
    max_length: int | None = Field(None, ge=8, description="tokens for eval/export; null = train.max_length")
    eval_batch_size: int = Field(64, ge=1)
    opset: int = Field(17, ge=13, le=21, description="ONNX opset of the exported graph")

    @model_validator(mode="before")
    @classmethod
    def _gate_moved(cls, data):
        if isinstance(data, dict) and "gate" in data:
            raise ValueError("compress.gate moved to ship.gate (the gate belongs to the ship stage): "
                             "rename the key 'compress.gate' to 'ship.gate'")
        return data

    @model_validator(mode="after")
    def _quantize_last(self):
        kinds = [s.kind for s in self.steps]
        if kinds.count("quantize") > 1:
            raise ValueError(f"steps {kinds}: quantize appears {kinds.count('quantize')} times; keep one")
        if "quantize" in kinds and kinds[-1] != "quantize":
            raise ValueError(f"steps {kinds}: quantize must be the last step (later steps need float weights); "
                             "move it to the end")
        return self
