"""Where a served teacher lives (label.teacher.kind: endpoint): an OpenAI-compatible server's address, which
API to call, and how hard to try. The prompt, verbalizers and calibration stay in label.teacher.llm (the
same settings as the in-process causal LM teacher); the API key never appears here, only the NAME of the
environment variable that holds it (teacher/http_client.py reads it in each worker).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from zuoxiao.core.config.base import StrictModel, TeacherSpec

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EndpointSpec(StrictModel):
    """An OpenAI-compatible server (vLLM, TGI, llama.cpp's server, `transformers serve`) that returns
    log-probabilities: each row is one request with max_tokens 1, and every label's verbaliser words are
    read from the first answer token's top_logprobs."""

    base_url: str = Field(description="the API root, e.g. http://127.0.0.1:8000/v1 (requests go to "
                          "<base_url>/completions or <base_url>/chat/completions, the model list to <base_url>/models)")
    api: Literal["completions", "chat"] = Field(
        "completions", description="completions: the chat prompt is rendered here with label.teacher.path's "
        "chat template and sent as text; chat: messages are sent and the server applies its own template")
    model: str = Field(description="the model name sent in every request (the server-reported id is recorded too)")
    api_key_env: str | None = Field(
        None, description="NAME of the environment variable holding the API key (sent as 'Authorization: Bearer'); "
        "null = no key. The key itself never goes in a config, a log or the manifest")
    concurrency: int = Field(4, ge=1, le=256, description="requests in flight per Beam worker (a thread pool)")
    timeout_s: float = Field(60.0, gt=0, description="connect + read timeout of one request")
    max_retries: int = Field(5, ge=0, le=20, description="retries of one request on 429, 5xx and connection errors")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles per retry, with jitter")
    backoff_max_s: float = Field(30.0, ge=0, description="cap of one retry delay (a Retry-After header too)")
    top_logprobs: int = Field(
        20, ge=1, le=1000, description="alternatives asked for the first answer token; a verbaliser word not among "
        "them gets the smallest returned log-prob (an upper bound) and is counted in endpoint_words_below_top_k")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v):
        if not re.match(r"https?://[^/\s]+", v):
            raise ValueError(f"{v!r} is not an http(s) URL; give the API root, e.g. http://127.0.0.1:8000/v1")
        return v.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v):
        if v is not None and not _ENV_NAME.fullmatch(v):
            # do not echo the value: it may be a key pasted in by mistake
            raise ValueError("is not an environment variable name (letters, digits, _); put the key in an environment "
                             "variable and give its name here, e.g. api_key_env: OPENAI_API_KEY")
        return v

    @model_validator(mode="after")
    def _backoff(self):
        if self.backoff_max_s < self.backoff_s:
            raise ValueError(f"backoff_max_s={self.backoff_max_s} is below backoff_s={self.backoff_s}; raise it")
        return self


class LabelTeacherSpec(TeacherSpec):
    """label.teacher: a TeacherSpec that may also be a served LLM (kind endpoint, settings under endpoint).

    A subclass here rather than two fields in zuoxiao/core/config/base.py: base.py importing this module
    (which builds on base.StrictModel) would be an import cycle."""

    kind: Literal["classifier", "causal_lm", "endpoint"] = Field(
        "classifier", description="classifier: a sequence classifier's logits; causal_lm: a prompted chat LLM "
        "scores each label's words (settings under llm); endpoint: the same prompt sent to a served LLM "
        "(settings under endpoint; path = its tokenizer)"
    )
    endpoint: EndpointSpec | None = Field(None, description="kind endpoint: the OpenAI-compatible server")

    @model_validator(mode="after")
    def _endpoint_settings(self):
        # checked here, before any compute: the teacher builder would find a missing endpoint only after the
        # label stage read its data, and an ensemble's members would be ignored without a word
        if self.kind == "endpoint":
            if self.endpoint is None:
                raise ValueError("label.teacher.kind=endpoint needs label.teacher.endpoint, e.g. {base_url: "
                                 "http://127.0.0.1:8080/v1, model: my-model}")
            if self.members is not None:
                raise ValueError("label.teacher.kind=endpoint takes one served model; teacher.members are an "
                                 "ensemble of classifiers: remove members or set kind: classifier")
        elif self.endpoint is not None:
            raise ValueError(f"label.teacher.endpoint is set but label.teacher.kind={self.kind!r}: set kind: "
                             "endpoint to label with the server, or remove endpoint")
        return self
