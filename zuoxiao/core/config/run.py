"""Config of `zuoxiao run`: the scheduled end-to-end job (run ids, which stages, reuse, the teacher cache)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from zuoxiao.core.config.base import StrictModel, yaml_false_as

STAGES = ("finetune", "label", "train", "compress", "ship")
#: What each stage reads from the stages before it (finetune is optional: without it the label stage
#: uses label.teacher.path directly).
NEEDS = {"label": (), "train": ("label",), "compress": ("label", "train"), "ship": ("train", "compress")}
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class CacheConfig(StrictModel):
    """Teacher outputs cached across runs under <output_dir>/cache, keyed by teacher fingerprint + text hash."""

    enabled: bool = Field(True, description="serve rows already labelled by the same teacher from the cache")
    max_rows: int = Field(5_000_000, ge=1, description="bound on cached teacher outputs; oldest evicted")


class RunConfig(StrictModel):
    run_id: str | None = Field(
        None,
        description="run folder name under <output_dir>/runs/; null = resume the latest unfinished run, "
        "else a new UTC timestamp id",
    )
    stages: list[Literal["finetune", "label", "train", "compress", "ship"]] = Field(
        default_factory=lambda: list(STAGES),
        description="stages this run may execute; completed stages with matching fingerprints are skipped anyway",
    )
    reuse: bool = Field(
        True,
        description="copy (hard-link) a stage from an earlier run in this output dir when its input "
        "fingerprint matches, instead of recomputing it",
    )
    keep_runs: int | None = Field(
        None, ge=1, description="keep at most this many finished runs (oldest deleted; never 'latest'); null = all"
    )
    cache: CacheConfig = Field(default_factory=CacheConfig)
    data_check: Annotated[Literal["error", "warn", "off"], BeforeValidator(yaml_false_as("off"))] = Field(
        "error", description="read every data source before any compute (zuoxiao validate --data): error = its "
        "errors stop the run (exit 2), warn = print them and go on, off = skip the check",
    )
    train_launcher: list[str] | None = Field(
        None,
        description="run the train stage as `<launcher> -m zuoxiao.cli train ...` in a subprocess, e.g. "
        "[accelerate, launch, --multi_gpu, --num_processes=4]; null = in this process",
    )

    @field_validator("train_launcher")
    @classmethod
    def _launcher(cls, v):
        if v is not None and (not v or not all(isinstance(x, str) and x for x in v)):
            raise ValueError("train_launcher must be a non-empty command list, e.g. [accelerate, launch, --num_processes=2]")
        return v

    @field_validator("run_id")
    @classmethod
    def _safe_id(cls, v):
        if v is not None and not _RUN_ID.match(v):
            raise ValueError(
                f"run_id {v!r} is not a safe folder name; use letters, digits, '.', '_' or '-' "
                "(at most 100 characters), e.g. nightly-2024-05-01"
            )
        return v

    @field_validator("stages")
    @classmethod
    def _closed(cls, v):
        dupes = sorted({s for s in v if v.count(s) > 1})
        if dupes:
            raise ValueError(f"stages {dupes} listed twice; list each stage once")
        if not v:
            raise ValueError("no stages to run; list some of finetune, label, train, compress")
        for stage in v:
            missing = [n for n in NEEDS.get(stage, ()) if n not in v]
            if missing:
                raise ValueError(
                    f"stage {stage!r} reads the output of {missing} in the same run; add {missing} to "
                    "run.stages (completed stages are skipped, so listing them costs nothing)"
                )
        return [s for s in STAGES if s in v]  # canonical order
