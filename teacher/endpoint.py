"""A served LLM as a zuoxiao teacher (label.teacher.kind: endpoint): the prompted causal-LM teacher's prompt,
verbalizers and calibration, scored by an OpenAI-compatible server instead of a model in the worker.

Each row is one request (`completions` with the chat rendered here by label.teacher.path's tokenizer, or
`chat/completions` with the messages) asking for one answer token with its `top_logprobs`; a label's
log-prob is the logsumexp of its words' log-probs, normalised over the labels, then calibrated with the
same prior as the in-process teacher (teacher/llm/scorer.py `calibrate`, `fit_prior`; the recipe, examples and
prior cache of teacher/llm/teacher.py). So a verbaliser word must be ONE token of the served model
(checked with the local tokenizer); a word missing from the top_logprobs gets the smallest returned
log-prob, an upper bound, and is counted (Beam counter endpoint_words_below_top_k).

Workers (pipelines/endpoint_handler.py, a Beam RemoteModelHandler) keep `concurrency` requests in flight; the
client (teacher/http_client.py) retries 429/5xx/connection errors with backoff. A row the server refuses
comes back with `teacher_error` (reason endpoint_error, the status in the detail): the label stage writes it
as a dead letter (pipelines/validate.py RejectNonFinite). A server that stops answering fails the stage
(EndpointUnavailable, exit 2). Every batch's answers go into the teacher cache (pipelines/cache.py layout) as
soon as they arrive, so a rerun after such a failure pays only for the rows that were never answered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from zuoxiao.core.errors import ConfigError
from zuoxiao.teacher.http_client import Backoff, EndpointRejected, EndpointUnavailable, JsonClient
from zuoxiao.teacher.llm.scorer import _SPLIT, calibrate, chat_messages, fit_prior
from zuoxiao.teacher.llm.teacher import _cached_prior, resolve_verbalizers, truncate_to_tokens

log = logging.getLogger(__name__)

#: endpoint settings that do not change a label (left out of the fingerprint: moving the server or raising
#: concurrency keeps the cache)
_TRANSPORT = ("base_url", "api_key_env", "concurrency", "timeout_s", "max_retries", "backoff_s", "backoff_max_s")


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + float(np.log(np.sum(np.exp(x - m))))


class EndpointTeacher:
    """texts -> (N, C) calibrated label log-probs from a served LLM (zuoxiao.teacher.Teacher); built from a
    recipe (see build_endpoint_teacher). No local model: ``module`` None, no representation, 0 parameters."""

    kind = "endpoint"
    repr_dim = None
    module = None

    def __init__(self, recipe: dict, tokenizer, sleep=time.sleep, path: str | None = None):
        """``path``: the configured tokenizer path (e.g. embedded:smollm2-135m-instruct); the recipe's is resolved."""
        self.recipe, self.tokenizer = recipe, tokenizer
        self.path, self.max_length = path or recipe["path"], int(recipe["max_length"])
        self.label_names = list(recipe["label_names"])
        ep = recipe["endpoint"]
        self.client = JsonClient(ep["base_url"], ep["api_key_env"], ep["timeout_s"], ep["max_retries"],
                                 Backoff(ep["backoff_s"], ep["backoff_max_s"]), sleep=sleep)
        self._words = [w for ws in recipe["verbalizers"] for w in ws]
        self._word_label = np.array([c for c, ws in enumerate(recipe["verbalizers"]) for _ in ws])
        prior = recipe.get("log_prior")
        self.log_prior = np.asarray(prior, dtype=np.float32) if prior is not None else None
        self._pool: ThreadPoolExecutor | None = None
        self.below_top_k = 0  # words scored at the floor (not among the returned top_logprobs)
        if ep["api"] == "completions":
            chat = tokenizer.apply_chat_template(self._messages(_SPLIT), tokenize=False, add_generation_prompt=True)
            self._head, self._tail = chat.split(_SPLIT)

    @classmethod
    def from_recipe(cls, recipe: dict) -> EndpointTeacher:
        from zuoxiao.teacher.classifier import load_tokenizer

        return cls(recipe, load_tokenizer(recipe["path"], recipe.get("trust_remote_code", False)))

    def to(self, device) -> EndpointTeacher:
        return self  # the model runs on the server

    def params(self) -> int:
        return 0  # unknown here: the weights are the server's

    def _messages(self, text: str) -> list[dict]:
        r = self.recipe
        return chat_messages(r["system"], r["prompt"], r["verbalizers"], [(t, int(y)) for t, y in r["examples"]], text)

    def _payload(self, text: str) -> tuple[str, dict]:
        ep = self.recipe["endpoint"]
        common = {"model": ep["model"], "max_tokens": 1, "temperature": 0.0}
        if ep["api"] == "completions":
            return "/completions", {**common, "prompt": self._head + text + self._tail, "logprobs": ep["top_logprobs"]}
        return "/chat/completions", {**common, "messages": self._messages(text), "logprobs": True,
                                     "top_logprobs": ep["top_logprobs"]}

    def _top(self, answer: dict) -> dict[str, float]:
        """The first answer token's alternatives, token text -> log-prob, from either API's answer."""
        try:
            lp = answer["choices"][0]["logprobs"]
            if self.recipe["endpoint"]["api"] == "completions":
                top = lp["top_logprobs"][0]
            else:
                top = {e["token"]: e["logprob"] for e in lp["content"][0]["top_logprobs"]}
            if not top:
                raise ValueError("empty")
            return {str(k): float(v) for k, v in top.items()}
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise EndpointRejected(200, f"the answer has no top_logprobs for the first token ({type(err).__name__}: "
                                   f"{err}); the server must return log-probabilities (llama-cpp-python: "
                                   "--logits_all true; vLLM: --max-logprobs >= top_logprobs)") from None

    def score_one(self, text: str) -> np.ndarray:
        """(C,) uncalibrated label log-probs of one (already truncated) row; raises EndpointRejected."""
        path, payload = self._payload(text)
        top = self._top(self.client.call(path, payload))
        floor = min(top.values())
        words = np.array([top.get(w, floor) for w in self._words], dtype=np.float64)
        self.below_top_k += sum(w not in top for w in self._words)
        per_label = np.array([_logsumexp(words[self._word_label == c]) for c in range(len(self.label_names))])
        return per_label - _logsumexp(per_label)

    def score_rows(self, texts: list[str]) -> list:
        """Rows scored `concurrency` at a time -> per row its (C,) log-probs, or its EndpointRejected (refused),
        or EndpointUnavailable (no server; once one row found it gone, the rows not yet sent fail at once
        instead of each waiting out its own retries). `scored` raises the latter."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.recipe["endpoint"]["concurrency"], thread_name_prefix="endpoint")
        gone: list[EndpointUnavailable] = []

        def one(text):
            if gone:
                return gone[0]
            try:
                return self.score_one(text)
            except EndpointRejected as err:
                return err
            except EndpointUnavailable as err:
                gone.append(err)
                return err

        return list(self._pool.map(one, texts))

    def scored(self, texts: list[str]) -> list:
        """score_rows, raising EndpointUnavailable when the server did not answer."""
        rows = self.score_rows(texts)
        for r in rows:
            if isinstance(r, EndpointUnavailable):
                raise r
        return rows

    def calibrated(self, logp: np.ndarray) -> np.ndarray:
        if self.log_prior is None:
            return logp.astype(np.float32)
        import torch

        return calibrate(torch.as_tensor(logp, dtype=torch.float32), torch.as_tensor(self.log_prior)).numpy()

    def truncate(self, texts: list[str], max_length: int) -> list[str]:
        return truncate_to_tokens(self.tokenizer, texts, max_length)  # the in-process teacher's very cut

    def predict_texts(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """texts -> calibrated label log-probs [N, C] float32; a refused row is NaN (dead-lettered by the stage).
        Rows go `concurrency` at a time, whatever ``batch_size`` says."""
        rows = self.scored(self.truncate(list(texts), self.max_length))
        c = len(self.label_names)
        logp = np.stack([r if isinstance(r, np.ndarray) else np.full(c, np.nan) for r in rows]) if rows else np.zeros((0, c))
        return self.calibrated(logp)

    def predict_batch(self, input_ids: list[list[int]], texts: list[str]) -> np.ndarray:
        return self.predict_texts(texts)  # the prompt is built from the text, not from the tokenised row

    def predict_with_repr(self, input_ids: list[list[int]], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        raise ConfigError("label.store_representation: an endpoint teacher offers no sentence representation; "
                          "set label.store_representation=false")

    def fingerprint(self) -> str:
        """Prompt, verbalizers, examples, calibration, API, model name AND the server-reported model id."""
        keyed = {k: v for k, v in self.recipe.items() if k not in ("path", "trust_remote_code", "endpoint")}
        keyed["endpoint"] = {k: v for k, v in self.recipe["endpoint"].items() if k not in _TRANSPORT}
        return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]

    def record(self) -> dict:
        """The manifest's ``teacher``: what the served model was asked, and the recipe (API key NAME only) train
        and compress rebuild it from (zuoxiao.teacher.TeacherSource.of_record)."""
        head = {"path": self.path, "resolved": self.recipe["path"], "fingerprint": self.fingerprint(),
                "max_length": self.max_length}
        return {**head, **self.describe(), "endpoint_recipe": self.recipe}

    def describe(self) -> dict:
        r, ep = self.recipe, self.recipe["endpoint"]
        return {"kind": "endpoint", "system": r["system"], "prompt": r["prompt"], "verbalizers": r["verbalizers"],
                "few_shot": len(r["examples"]), "few_shot_examples": r["examples"], "calibration": r["calibration"],
                "log_prior": r["log_prior"], "endpoint": {k: ep[k] for k in ("base_url", "api", "model", "api_key_env")},
                "server_model_id": r["server_model_id"]}


def server_model_id(client: JsonClient, model: str) -> str:
    """What the server says it serves under `model` (<base_url>/models): vLLM's `root` (the weights) when it
    gives one, else the id; a server listing one model (llama.cpp's ignores the requested name) gives that."""
    try:
        data = client.call("/models").get("data") or []
    except EndpointRejected as err:
        raise ConfigError(f"label.teacher.endpoint: {err}; the server must list its models at <base_url>/models "
                          "(OpenAI-compatible servers do): check base_url") from None
    ids = [d for d in data if isinstance(d, dict) and d.get("id")]
    match = [d for d in ids if d["id"] == model] or (ids if len(ids) == 1 else [])
    if not match:
        raise ConfigError(f"label.teacher.endpoint.model={model!r} is not among the served models "
                          f"{[d['id'] for d in ids]}; set it to one of them")
    d = match[0]
    return f"{d['id']}@{d['root']}" if d.get("root") and d["root"] != d["id"] else d["id"]


def _check_words(tokenizer, verbalizers: list[list[str]]) -> None:
    for ws in verbalizers:
        for w in ws:
            n = len(tokenizer(w, add_special_tokens=False)["input_ids"])
            if n != 1:
                raise ConfigError(f"label.teacher.llm.verbalizers: {w!r} is {n} tokens of label.teacher.path's tokenizer; "
                                  "a served teacher reads only the first answer token's log-probs, so each word must be "
                                  "one token (try the word with or without a leading space, or another word)")


def _fit(teacher: EndpointTeacher, texts: list[str], how: str) -> list[float]:
    rows = teacher.scored(teacher.truncate(texts, teacher.recipe["max_length"]))
    bad = [r for r in rows if not isinstance(r, np.ndarray)]
    if bad:
        raise ConfigError(f"calibration: the teacher endpoint refused {len(bad)} of {len(rows)} rows ({bad[0]}); "
                          "fix the server or set label.teacher.llm.calibration: none")
    logp = np.stack(rows)
    if how == "content_free":
        prior = np.log(np.exp(logp).mean(0))
    else:
        import torch

        prior = fit_prior(torch.as_tensor(logp, dtype=torch.float32)).numpy()
    return [round(float(x), 6) for x in prior]


def build_endpoint_teacher(spec, label_names: list[str], path: str, examples: list[tuple[str, int]],
                           prior_texts: list[str] | None = None) -> EndpointTeacher:
    """The launching process's served teacher for ``spec`` (label.teacher, kind endpoint; its tokenizer at
    ``path``): words checked, server model id asked, a probe row scored, prompted with ``examples`` and the
    calibration prior fitted once (``prior_texts``: calibration: prior's rows; cached like the in-process one)."""
    from zuoxiao.core.config.base import EMBEDDED_TEACHER
    from zuoxiao.teacher.classifier import load_tokenizer, resolve_model_path

    if spec.endpoint is None:
        raise ConfigError("label.teacher.kind=endpoint needs label.teacher.endpoint (at least base_url and model), "
                          "e.g. endpoint: {base_url: 'http://127.0.0.1:8000/v1', model: my-model}")
    if path == EMBEDDED_TEACHER:
        raise ConfigError("label.teacher.kind=endpoint needs label.teacher.path = the served model's tokenizer (it cuts "
                          "rows at max_length, checks the verbalizers and, for api: completions, renders the chat), "
                          "e.g. embedded:smollm2-135m-instruct or a local tokenizer directory")
    resolved = resolve_model_path(path)
    tok = load_tokenizer(resolved, spec.trust_remote_code)
    llm = spec.llm
    verbalizers = resolve_verbalizers(llm.verbalizers, list(label_names))
    _check_words(tok, verbalizers)
    recipe = {
        "path": resolved, "trust_remote_code": spec.trust_remote_code, "label_names": list(label_names),
        "system": llm.system, "prompt": llm.prompt, "verbalizers": verbalizers,
        "examples": [[t, y] for t, y in examples], "calibration": llm.calibration,
        "log_prior": None, "max_length": spec.max_length, "endpoint": spec.endpoint.model_dump(),
        "server_model_id": None,
    }
    teacher = EndpointTeacher(recipe, tok, path=path)
    recipe["server_model_id"] = server_model_id(teacher.client, spec.endpoint.model)
    if spec.endpoint.api == "completions":  # the rendered chat is part of what the server is asked
        recipe["chat"] = teacher._head + _SPLIT + teacher._tail
    probe = teacher.scored(["N/A"])[0]
    if not isinstance(probe, np.ndarray):
        raise ConfigError(f"label.teacher.endpoint: the server refused a probe request ({probe}); check model, api "
                          "and that the server returns log-probabilities")
    if llm.calibration != "none":
        key = {k: v for k, v in recipe.items() if k not in ("path", "trust_remote_code", "log_prior", "endpoint")}
        key["endpoint"] = {k: v for k, v in recipe["endpoint"].items() if k not in _TRANSPORT}
        texts = list(llm.content_free_inputs) if llm.calibration == "content_free" else list(prior_texts or [])
        key["texts"] = hashlib.sha256("\0".join(texts).encode()).hexdigest()
        recipe["log_prior"] = _cached_prior(key, lambda: _fit(teacher, texts, llm.calibration))
        teacher.log_prior = np.asarray(recipe["log_prior"], dtype=np.float32)
    return teacher
