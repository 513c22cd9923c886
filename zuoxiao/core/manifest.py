"""The label output's manifest.json as one typed model, shared by the writer (pipelines/label.py,
pipelines/commit.py) and every reader (zuoxiao.core.shards.read_manifest -> student/data.py, transfer).

Validated on write and on read: a manifest missing a field, or whose label count disagrees with its
label names, is refused with IntegrityError (exit 5) naming the field, instead of a KeyError deep in a
reader. Unknown keys are kept (a newer writer may add some); the typed fields are the contract.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zuoxiao.core.errors import IntegrityError


class ShardFile(BaseModel):
    """One committed Parquet file: path relative to the label output, rows, checksum, bytes."""

    model_config = ConfigDict(extra="allow")

    file: str
    rows: int = Field(ge=0)
    sha256: str | None = None  # filled by the commit from the bytes actually written
    bytes: int | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_version: int
    created_utc: str
    label_names: list[str]
    label_source: str | None = None
    num_classes: int
    storage: Literal["full", "topk"]
    top_k: int | None = None
    counts: dict[str, Any]  # read, labeled, rejected, rejected_by_reason, augmented, cache hits/misses, ...
    shards: list[ShardFile]
    rejected_files: list[ShardFile] = Field(default_factory=list)
    data_hash: str | None = None  # sha256 over (file, sha256) of every shard, set by the commit
    teacher: dict[str, Any]  # path, resolved, fingerprint, max_length, ... (members for ensembles)
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    beam_options: list[str] = Field(default_factory=list)
    timings: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    cache: dict[str, Any] | None = None
    # soft-label quality (pipelines/commit.soft_label_stats): mean_entropy_nats, entropy_fraction (of
    # ln num_classes), label_distribution {label: rows}; empty in manifests written before it existed
    stats: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self):
        if self.num_classes != len(self.label_names):
            raise ValueError(f"num_classes={self.num_classes} but {len(self.label_names)} label_names")
        if self.storage == "topk" and not self.top_k:
            raise ValueError("storage 'topk' without top_k")
        return self

    @property
    def num_rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @classmethod
    def parse(cls, data: dict, where: str) -> Manifest:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors()[:5])
            raise IntegrityError(f"{where} is not a valid label manifest ({problems}); rerun the label stage "
                                 "with this version of zuoxiao") from None

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


def data_hash(shards: list[ShardFile]) -> str:
    """One hash over (file, sha256) of every shard: equal soft-label data <=> equal data_hash."""
    return hashlib.sha256(json.dumps([(s.file, s.sha256) for s in shards]).encode()).hexdigest()
