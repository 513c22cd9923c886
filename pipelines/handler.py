"""Beam `ModelHandler` for the teacher, plus the tokenizer step that feeds it.

Beam's own HuggingFace handler does not import with transformers 5, and its tensor handlers
`torch.stack` inputs (= pad everything to max_length upstream). This handler takes *pre-tokenized*
records (the pipeline tokenizes first so it can group rows of equal token length), pads each batch
only to its own longest row (dynamic padding) and runs the teacher under `torch.inference_mode`
(teacher/classifier.py; an ensemble or an LLM teacher reads the texts instead, `Teacher.predict_batch`).

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

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

from zuoxiao.teacher import Teacher, TeacherSource, load_teacher

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


class TeacherModelHandler(ModelHandler[dict, dict, Teacher]):
    """RunInference handler over any teacher kind: each worker loads its own copy (zuoxiao.teacher.load_teacher).

    Use with ``RunInference(handler.with_no_batching())`` on PCollections of *lists* of records: the
    pipeline builds the batches itself (equal-length groups, sorted by id) so that batch composition,
    and therefore every float, is the same on every runner and worker count.
    """

    def __init__(self, source: TeacherSource, label_names: list[str], *, device: str = "auto",
                 num_threads: int | None = None, store_representation: bool = False):
        # No **kwargs: ModelHandler would swallow a misspelled argument silently.
        # source: what the launcher loaded, as it recorded it (TeacherSource.of_record): an LLM teacher
        # travels as its recipe, so every worker prompts with the same examples and calibration prior.
        super().__init__()
        self.source, self.label_names = source, list(label_names)
        self.store_representation = store_representation  # also emit teacher_repr [D] per record
        self.device, self.num_threads = device, num_threads
        self._progress = [0, 0, 0.0, 0.0]  # rows, tokens, first batch time, last log time

    def load_model(self) -> Teacher:
        import torch

        from zuoxiao.teacher.classifier import pick_device

        # Threads must be set here, in the process that runs inference (env vars do not reach
        # in-memory workers, and N processes x all-cores threads oversubscribe the CPU).
        threads = self.num_threads or max(1, os.cpu_count() or 1)
        torch.set_num_threads(threads)
        device = pick_device(self.device)
        # Each worker loads its own copy: a real runner's workers share nothing with the launcher. An LLM
        # teacher builds its prefix KV cache on the first batch, once. (Beam keeps a weak reference to the
        # teacher: every kind is a class instance.)
        teacher = load_teacher(self.source, self.label_names).to(device)
        log.info("teacher loaded on %s with %d torch threads", device, threads)
        return teacher

    def run_inference(
        self,
        batch: Sequence[dict],
        model: Teacher,
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
            logits = model.predict_batch(ids, texts)  # [B, C]
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
