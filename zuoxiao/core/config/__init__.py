"""YAML -> one validated config object with a section per stage.

Keys equal field names. Every problem (unknown key, wrong type, impossible combination) is reported at
once, naming the key, the value and the fix, before any compute starts.

    cfg = load_config("configs/demo.yaml", overrides=["label.batch_size=64"])
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from zuoxiao.core.config.base import (
    EMBEDDED_TEACHER,
    DataSource,
    SplitConfig,
    StrictModel,
    TaskConfig,
    TeacherSpec,
)
from zuoxiao.core.config.compress import CompressConfig
from zuoxiao.core.config.label import AugmentConfig, BeamConfig, LabelConfig
from zuoxiao.core.config.run import RunConfig
from zuoxiao.core.config.ship import GateConfig, ShipConfig
from zuoxiao.core.config.train import STATIC_REFUSED_STEPS, FinetuneConfig, TrainConfig
from zuoxiao.core.errors import ConfigError

__all__ = [
    "EMBEDDED_TEACHER", "AugmentConfig", "BeamConfig", "CompressConfig", "Config", "DataSource",
    "FinetuneConfig", "GateConfig", "LabelConfig", "RunConfig", "ShipConfig", "SplitConfig", "TaskConfig", "TeacherSpec",
    "TrainConfig", "load_config", "parse_config", "save_resolved",
]


class Config(StrictModel):
    """The whole job. Stage commands read their own section; `zuoxiao run` reads them all."""

    output_dir: str = Field("outputs", description="where stages write (<output_dir>/<stage>/)")
    seed: int = 0
    task: TaskConfig = Field(default_factory=TaskConfig)
    finetune: FinetuneConfig | None = Field(None, description="fine-tune a teacher first (optional)")
    label: LabelConfig = Field(default_factory=LabelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    ship: ShipConfig = Field(default_factory=ShipConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _cross_stage(self):
        split = self.task.split
        if split is not None:
            _check_split(self)
        elif self.label.input is None and self.finetune is None:
            raise ValueError("label.input is missing: give the task rows to label, e.g. label.input.path=data/*.jsonl "
                             "(or set task.split to carve train/dev/test parts out of one labelled file)")
        elif self.finetune is not None and self.finetune.data is None:
            raise ValueError("finetune.data is missing: give gold-labelled rows, e.g. finetune.data.path=data/gold.jsonl "
                             "(or set task.split, whose train part then fills it)")
        if self.label.extra_inputs and self.label.input is None and self.task.split is None:
            raise ValueError("label.extra_inputs is set but label.input is not: the extra inputs add to label.input; "
                             "move the first of them to label.input (or set task.split, whose train part fills it)")
        kind_problems = [p for key, src in _task_sources(self) for p in self.task.source_problems(key, src)]
        if kind_problems:  # task.eval / task.dev / task.split.source are checked by TaskConfig itself
            raise ValueError("; ".join(kind_problems))
        if self.label.teacher.kind == "causal_lm":  # (teacher/llm/teacher.py)
            if self.finetune is not None:
                raise ValueError("label.teacher.kind=causal_lm but finetune is set, and the label stage labels with the "
                                 "fine-tuned teacher (a classifier, also after LoRA on an LLM): set label.teacher.kind: "
                                 "classifier, or finetune: null to prompt the LLM")
            if self.train.student.kind == "from_teacher":
                raise ValueError("train.student.kind=from_teacher copies encoder layers, which a causal LM teacher has "
                                 "not: use kind: pretrained (e.g. path: embedded:all-MiniLM-L6-v2) or kind: config")
        if self.train.student.kind == "static":
            _check_static_steps(self)
        return self


def _check_static_steps(cfg: Config) -> None:
    """A static student is a token table and a head: compress steps that cut transformer blocks are refused
    here, before training, with the reason (the compress stage refuses them too, on the model itself)."""
    for step in cfg.compress.steps:
        if step.kind in STATIC_REFUSED_STEPS:
            raise ValueError(f"compress step {step.kind}: {STATIC_REFUSED_STEPS[step.kind]}, and "
                             "train.student.kind is static; remove it from compress.steps (vocab_trim, magnitude, "
                             "recover and quantize apply to a static student)")


def _task_sources(cfg: Config) -> list[tuple[str, DataSource]]:
    """The data sources outside task: whose columns task.kind decides (docs/task_kinds.md)."""
    found = [("finetune.data", cfg.finetune.data if cfg.finetune is not None else None), ("label.input", cfg.label.input)]
    found += [(f"label.extra_inputs[{i}]", src) for i, src in enumerate(cfg.label.extra_inputs or [])]
    return [(key, src) for key, src in found if src is not None]


def _check_split(cfg: Config) -> None:
    """task.split fills only what the config leaves unset; an explicit source where a part would go is a conflict."""
    split = cfg.task.split
    if cfg.task.dev is not None and split.dev > 0:
        raise ValueError(f"task.dev and task.split.dev={split.dev} are both set: the split's dev part would replace "
                         "task.dev; remove task.dev, or set task.split.dev: 0 to keep it")
    if cfg.task.eval is not None and split.test > 0:
        raise ValueError(f"task.eval and task.split.test={split.test} are both set: the split's test part would replace "
                         "task.eval; remove task.eval, or set task.split.test: 0 to keep it")
    if cfg.label.input is not None and (cfg.finetune is None or cfg.finetune.data is not None):
        both = "finetune.data and label.input are" if cfg.finetune is not None else "label.input is"
        raise ValueError(f"task.split and {both} set, so the split's train part would be used nowhere; remove "
                         f"{'one of them' if cfg.finetune is not None else 'label.input'} (the split fills it) or "
                         "remove task.split")


def _suggest(model: type, loc: tuple) -> str:
    """For an unknown key, the closest allowed field name(s) at that level."""
    fields = _fields_at(model, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"allowed keys here: {', '.join(sorted(fields))}" if fields else "remove it"


def _fields_at(model: type, loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        current = _model_in(info.annotation)
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, StrictModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _format(err: ValidationError, model: type) -> list[str]:
    problems = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p[:1].isupper()))  # drop union tags
        key = ".".join(str(p) for p in loc) or "(top level)"
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        if e["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key (value {shown}); {_suggest(model, loc)}")
        elif e["type"] == "missing":
            problems.append(f"{key}: required key is missing; add it to the config or --set {key}=...")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: got {shown}: {msg}")
    return problems


def parse_config(raw: dict, source: str | None = None) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format(err, Config), source) from None


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = raw
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    problems = []
    for item in overrides or []:
        if "=" not in item:
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. --set label.batch_size=64")
            continue
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text != "" else None
        except yaml.YAMLError:
            value = text
        _set_dotted(raw, key.strip(), value)
    if problems:
        raise ConfigError(problems, "overrides")
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass a YAML file such as configs/demo.yaml")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}", str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"top level must be a mapping of sections, got {type(raw).__name__}", str(path))
    return parse_config(apply_overrides(raw, overrides or []), str(path))


def save_resolved(cfg, directory: str | Path, name: str = "config.resolved.yaml") -> Path:
    """Write the resolved config (defaults filled in) beside an artifact.

    ``cfg`` is the whole Config, or a stage's view (zuoxiao.core.config.views): then exactly the sections
    that stage read, e.g. ``task``, ``train``, ``teacher`` (= label.teacher) and ``seed`` for train.
    """
    out = Path(directory) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    data = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else cfg.fingerprint_json()
    head = "" if hasattr(cfg, "model_dump") else f"# the config sections the stage read ({type(cfg).__name__})\n"
    out.write_text(head + yaml.safe_dump(data, sort_keys=False))
    return out
