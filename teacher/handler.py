"""Beam `ModelHandler` for the teacher, plus the tokenizer step that feeds it.

Beam's own HuggingFace handler does not import with transformers 5, and its tensor handlers
`torch.stack` inputs (= pad everything to max_length upstream). This handler takes *pre-tokenized*
records (the pipeline tokenizes first so it can group rows of equal token length), pads each batch
only to its own longest row (dynamic padding) and runs the classifier under `torch.inference_mode`.

Records flowing in are dicts with at least ``id`` and ``input_ids`` (list[int], already truncated to
max_length); records flowing out carry ``logits`` (np.float32 [C]) instead of ``input_ids`` (and
``teacher_repr``, np.float32 [D], when ``store_representation`` is on).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

log = logging.getLogger(__name__)

def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> tuple[list[list[int]], list[int], list[bool]]:
    """Token ids truncated to ``max_length`` plus each text's untruncated token count.

    Only rows that hit max_length are tokenized a second time without truncation (to count how long
    they really were): for typical data that is a small fraction, so the count is nearly free.
    """
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    ids = [list(x) for x in enc["input_ids"]]
    lengths = [len(x) for x in ids]
    hit = [i for i, n in enumerate(lengths) if n >= max_length]
    if hit:
        full = tokenizer([texts[i] for i in hit], truncation=False, padding=False, verbose=False)["input_ids"]
        for i, f in zip(hit, full, strict=True):
            lengths[i] = len(f)
    return ids, lengths, [n > max_length for n in lengths]


class LoadedTeacher:
    """What `load_model` returns: Beam keeps a weak reference to it, so it must be a class, not a tuple."""

    def __init__(self, model, tokenizer, device):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device

    def predict(self, input_ids: list[list[int]], texts: list[str] | None = None) -> np.ndarray:
        """input_ids: B lists of token ids (lengths may differ) -> logits [B, C] float32.

        An ensemble (teacher.ensemble.EnsembleClassifier) tokenises ``texts`` per member instead; an LLM
        teacher (teacher.llm_teacher.LLMTeacher) prompts with ``texts`` and returns label log-probs.
        """
        import torch

        if hasattr(self.model, "predict_texts"):
            return self.model.predict_texts(texts)

        if len({len(x) for x in input_ids}) == 1:
            # Equal lengths (the pipeline's length groups): nothing to pad or mask, and attention
            # without a mask takes the fused SDPA path.
            inputs = {"input_ids": torch.tensor(input_ids, dtype=torch.long, device=self.device)}
        else:
            batch = self.tokenizer.pad({"input_ids": input_ids}, padding=True, return_tensors="pt")
            inputs = {"input_ids": batch["input_ids"].to(self.device),
                      "attention_mask": batch["attention_mask"].to(self.device)}
        with torch.inference_mode():
            out = self.model(**inputs)
        return out.logits.float().cpu().numpy()

    def predict_with_repr(self, input_ids: list[list[int]], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Logits [B, C] and the sentence representation [B, D] float32: the first token's ([CLS]) final
        hidden state, before any pooler (label.store_representation). An ensemble's logits are its
        combined ones and its representation is its FIRST member's (members may differ in width, so a
        mean is not defined); that member runs a second time on its own tokenisation."""
        import torch

        model = self.model.members[0]["model"] if hasattr(self.model, "predict_texts") else self.model
        if hasattr(self.model, "predict_texts"):
            tok = self.model.members[0]["tokenizer"]
            enc = tok(texts, truncation=True, max_length=self.model.max_length, padding=True, return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in enc.items()}
        else:
            batch = self.tokenizer.pad({"input_ids": input_ids}, padding=True, return_tensors="pt")
            inputs = {"input_ids": batch["input_ids"].to(self.device),
                      "attention_mask": batch["attention_mask"].to(self.device)}
        with torch.inference_mode():
            out = model(**inputs, output_hidden_states=True)
        rep = out.hidden_states[-1][:, 0].float().cpu().numpy()
        logits = self.model.predict_texts(texts) if hasattr(self.model, "predict_texts") else \
            out.logits.float().cpu().numpy()
        return logits, rep


class TeacherModelHandler(ModelHandler[dict, dict, LoadedTeacher]):
    """RunInference handler over teacher.model.load_classifier / load_tokenizer.

    Use with ``RunInference(handler.with_no_batching())`` on PCollections of *lists* of records: the
    pipeline builds the batches itself (equal-length groups, sorted by id) so that batch composition,
    and therefore every float, is the same on every runner and worker count.
    """

    def __init__(
        self,
        path: str,
        label_names: list[str],
        *,
        device: str = "auto",
        num_threads: int | None = None,
        trust_remote_code: bool = False,
        members: list[dict] | None = None,
        combine: str = "prob",
        max_length: int = 128,
        store_representation: bool = False,
        llm: dict | None = None,
    ):
        # No **kwargs: ModelHandler would swallow a misspelled argument silently.
        # members ({path, weight} dicts): an ensemble (teacher/ensemble.py) instead of the model at `path`.
        # llm: the recipe of a prompted causal LM (teacher/llm_teacher.py), built once by the launcher so
        # that every worker prompts with the same examples and calibration prior.
        super().__init__()
        self.llm = llm
        self.members, self.combine, self.max_length = members, combine, max_length
        self.store_representation = store_representation  # also emit teacher_repr [D] per record
        self.path = path
        self.label_names = list(label_names)
        self.device = device
        self.num_threads = num_threads
        self.trust_remote_code = trust_remote_code
        self._progress = [0, 0, 0.0, 0.0]  # rows, tokens, first batch time, last log time

    def load_model(self) -> LoadedTeacher:
        import torch

        from zuoxiao.teacher.model import load_tokenizer, pick_device

        # Threads must be set here, in the process that runs inference (env vars do not reach
        # in-memory workers, and N processes x all-cores threads oversubscribe the CPU).
        threads = self.num_threads or max(1, os.cpu_count() or 1)
        torch.set_num_threads(threads)
        device = pick_device(self.device)
        # Each worker loads its own copy: a real runner's workers share nothing with the launcher.
        if self.llm:
            from zuoxiao.teacher.llm_teacher import LLMTeacher

            model = LLMTeacher.from_recipe(self.llm)  # its prefix KV cache is built on the first batch, once
        elif self.members:
            from zuoxiao.teacher.ensemble import load_ensemble

            model = load_ensemble(self.members, self.label_names, self.combine, self.max_length,
                                  self.trust_remote_code)
        else:  # a classifier, or one blended with its TF-IDF baseline (blend.json in the dir: teacher/blend.py)
            from zuoxiao.teacher.loader import load_teacher_dir

            model = load_teacher_dir(self.path, self.label_names, self.trust_remote_code, self.max_length)
        model.to(device)
        tokenizer = load_tokenizer(self.path, self.trust_remote_code)
        log.info("teacher loaded on %s with %d torch threads", device, threads)
        return LoadedTeacher(model, tokenizer, device)

    def run_inference(
        self,
        batch: Sequence[dict],
        model: LoadedTeacher,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[dict]:
        if not batch:
            return []
        start = time.perf_counter()
        ids, texts = [r["input_ids"] for r in batch], [r["text"] for r in batch]
        reps = None
        if self.store_representation:
            logits, reps = model.predict_with_repr(ids, texts)  # [B, C], [B, D]
        else:
            logits = model.predict(ids, texts)  # [B, C]
        Metrics.counter("zuoxiao", "teacher_ms").inc(int((time.perf_counter() - start) * 1000))
        Metrics.counter("zuoxiao", "teacher_rows").inc(len(batch))
        Metrics.counter("zuoxiao", "teacher_tokens").inc(sum(len(r["input_ids"]) for r in batch))
        self._log_progress(len(batch), sum(len(r["input_ids"]) for r in batch), start)
        out = []
        for rec, row in zip(batch, logits, strict=True):
            rec = dict(rec)
            del rec["input_ids"]
            rec["logits"] = row
            if reps is not None:
                rec["teacher_repr"] = reps[len(out)]
            out.append(rec)
        return out

    def _log_progress(self, rows: int, tokens: int, start: float, every_s: float = 10.0) -> None:
        """A progress line every ~10 s per worker (a bar cannot span Beam workers; log lines can)."""
        p = self._progress
        now = time.perf_counter()
        if p[0] == 0:
            p[2] = p[3] = start
        p[0] += rows
        p[1] += tokens
        if now - p[3] >= every_s:
            p[3] = now
            log.info("teacher: %d rows (%d tokens) labeled, %.0f rows/s", p[0], p[1], p[0] / max(now - p[2], 1e-9))

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        # The default pickles the whole batch just to measure it.
        return sum(4 * len(r["input_ids"]) + len(r["text"]) for r in batch)

    def get_metrics_namespace(self) -> str:
        return "zuoxiao_teacher"
