"""Config of the label stage (Beam pipeline + teacher inference + soft-label shards)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from zuoxiao.core.config.base import DataSource, StrictModel
from zuoxiao.core.config.endpoint import LabelTeacherSpec


class AugmentConfig(StrictModel):
    """Grow the transfer set with perturbed copies of each row (Tang et al. 2019): the teacher labels them."""

    enabled: bool = False
    copies: int = Field(2, ge=0, le=50, description="perturbed rows per input row")
    p_mask: float = Field(0.1, ge=0, le=1, description="probability of replacing a word with [MASK]")
    p_swap: float = Field(0.1, ge=0, le=1, description="probability of swapping a word for another from the data")
    p_ngram: float = Field(0.25, ge=0, le=1, description="probability of keeping only a random n-gram span")
    joins: int = Field(0, ge=0, le=50, description="joined rows per input row: its text and 1 to join_max - 1 "
                       "other rows' texts of the data, in random order (longer texts from a transfer set of short ones)")
    join_max: int = Field(3, ge=2, le=8, description="most texts in one joined row")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self):
        if self.enabled and self.copies == 0 and self.joins == 0:
            raise ValueError("label.augment is enabled with copies: 0 and joins: 0, which adds no rows; "
                             "set copies and/or joins above 0, or enabled: false")
        return self


class ObjectStoreConfig(StrictModel):
    """How long the label stage waits on an object store (s3://) before failing with exit 2.

    Beam's own S3 client retries a refused connection for over 10 minutes and takes no timeout; so the
    launcher and every shard writer first make one request within these limits (zuoxiao.core.fsio.check_store)
    and fail naming the endpoint and this setting. Passed to workers as --store_* pipeline options."""

    connect_timeout_s: float = Field(10.0, gt=0, description="seconds to open a connection to the store")
    read_timeout_s: float = Field(60.0, gt=0, description="seconds to wait for the store's answer")
    max_attempts: int = Field(3, ge=1, le=20, description="tries of that request (first one included)")


class BeamConfig(StrictModel):
    """Pipeline options passed through to Beam. Extra flags (Dataflow/Flink/Spark) go in ``options``."""

    runner: str = "DirectRunner"
    direct_num_workers: int = Field(1, ge=0)
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    options: list[str] = Field(default_factory=list, description="raw Beam flags, e.g. ['--project=p']")
    object_store: ObjectStoreConfig = Field(default_factory=ObjectStoreConfig)


class LabelConfig(StrictModel):
    input: DataSource | None = Field(None, description="task rows to label (the transfer set)")
    extra_inputs: list[DataSource] = Field(
        default_factory=list, description="more text for the transfer set, each with its own format and columns "
        "(label_column: null = unlabelled); read, validated, de-duplicated and labelled with label.input as one "
        "set: ids share one space (a text-hash id repeated across sources is dead-lettered as duplicate_id, "
        "label.input's row kept) and the manifest counts each input (counts.by_input)",
    )
    teacher: LabelTeacherSpec = Field(default_factory=LabelTeacherSpec)  # TeacherSpec + kind endpoint
    batch_size: int = Field(64, ge=1, le=4096, description="most rows per teacher batch")
    max_batch_tokens: int | None = Field(
        None, ge=8, description="also cap rows x tokens per batch, so batches of long rows get fewer rows "
        "(bounds memory); null = batch_size rows whatever their length",
    )
    max_full_classes: int = Field(
        32, ge=2, description="store all logits up to this many classes; above it store top-k"
    )
    top_k: int = Field(10, ge=1, description="classes kept per row when classes > max_full_classes")
    rows_per_shard: int = Field(50_000, ge=1, description="target rows per Parquet shard")
    row_group_size: int = Field(8_192, ge=1)
    max_rejected_fraction: float = Field(
        0.5, ge=0, le=1, description="fail the stage (exit 2) when more than this share of the rows read is "
        "rejected (a wrong column, a broken file); a stage that labels nothing always fails",
    )
    store_representation: bool = Field(
        False, description="also store the teacher's sentence representation (first-token final hidden state, "
        "fp16) in the shard column teacher_repr, for train.loss.repr_weight; an ensemble stores its first "
        "member's. Costs 2 bytes x hidden size per row; bypasses teacher-cache lookups (the cache holds logits)",
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    beam: BeamConfig = Field(default_factory=BeamConfig)

    @model_validator(mode="after")
    def _check(self):
        seen = {(tuple(self.input.paths), self.input.text_column)} if self.input is not None else set()
        for i, src in enumerate(self.extra_inputs):
            key = (tuple(src.paths), src.text_column)
            if key in seen:  # every row would be read twice and dead-lettered as a duplicate
                raise ValueError(f"label.extra_inputs[{i}] reads {src.paths} column {src.text_column!r}, which "
                                 "an earlier input already reads; remove it or give another text_column")
            seen.add(key)
        if self.top_k >= self.max_full_classes:
            raise ValueError(
                f"top_k={self.top_k} must be smaller than max_full_classes={self.max_full_classes} "
                "(top-k storage is only used above max_full_classes); lower top_k"
            )
        if self.beam.direct_running_mode == "multi_processing" and self.beam.direct_num_workers == 1:
            raise ValueError(
                "beam.direct_running_mode=multi_processing with direct_num_workers=1 starts a worker "
                "process for nothing; set beam.direct_num_workers>=2 or use in_memory"
            )
        return self
