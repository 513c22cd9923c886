"""Beam side of the served teacher (teacher/endpoint.py): a RemoteModelHandler whose client is the
EndpointTeacher, and the teacher-cache file (pipelines/cache.py layout) each batch's answers go to at once.
The label stage (pipelines/label.py) uses it instead of pipelines/handler.py for label.teacher.kind: endpoint."""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RemoteModelHandler

from zuoxiao.teacher.endpoint import EndpointTeacher
from zuoxiao.teacher.http_client import EndpointUnavailable

log = logging.getLogger(__name__)


class EndpointModelHandler(RemoteModelHandler):
    """RunInference over a served teacher: records (lists, like TeacherModelHandler's) -> records with `logits`
    [C], or with `teacher_error` {reason, detail} and NaN logits for a row the server refused.

    Beam's RemoteModelHandler gives the client per worker (create_client) and client-side throttling; its
    batch-level retry is off (num_retries=0): a retried batch would pay again for every row that had
    succeeded, so requests are retried one by one in teacher/http_client.py instead.
    """

    def __init__(self, recipe: dict, cache_dir: str | None = None):
        super().__init__(namespace="zuoxiao_endpoint", num_retries=0, retry_filter=lambda err: False)
        self.recipe, self.cache_dir = recipe, cache_dir

    def create_client(self) -> EndpointTeacher:
        return EndpointTeacher.from_recipe(self.recipe)

    def request(self, batch, model: EndpointTeacher, inference_args=None):
        start = time.perf_counter()
        retries, floor = model.client.retries, model.below_top_k
        texts = model.truncate([r["text"] for r in batch], self.recipe["max_length"])
        rows = model.score_rows(texts)
        # rows answered before the server went away are kept (cached below), then the stage stops
        failed = next((r for r in rows if isinstance(r, EndpointUnavailable)), None)
        out = [_labelled(rec, row, model) for rec, row in zip(batch, rows, strict=True)
               if not isinstance(row, EndpointUnavailable)]
        Metrics.counter("zuoxiao", "teacher_ms").inc(int((time.perf_counter() - start) * 1000))
        Metrics.counter("zuoxiao", "teacher_rows").inc(len(out))
        Metrics.counter("zuoxiao", "endpoint_retries").inc(model.client.retries - retries)
        Metrics.counter("zuoxiao", "endpoint_words_below_top_k").inc(model.below_top_k - floor)
        Metrics.counter("zuoxiao", "endpoint_errors").inc(sum("teacher_error" in r for r in out))
        if self.cache_dir:
            write_cache_rows(self.cache_dir, [r for r in out if "teacher_error" not in r])
        if failed is not None:
            raise failed
        return out

    def get_num_bytes(self, batch) -> int:
        return sum(len(r["text"]) for r in batch)

    def get_metrics_namespace(self) -> str:
        return "zuoxiao_endpoint"


def _labelled(rec: dict, row, model: EndpointTeacher) -> dict:
    rec = {k: v for k, v in rec.items() if k != "input_ids"}
    if isinstance(row, np.ndarray):
        rec["logits"] = model.calibrated(row[None])[0]
    else:
        rec["logits"] = np.full(len(model.label_names), np.nan, dtype=np.float32)
        rec["teacher_error"] = {"reason": "endpoint_error", "detail": f"the teacher endpoint refused the row: {row}"}
    return rec


def write_cache_rows(cache_dir: str, records: list[dict]) -> None:
    """Answered rows -> one teacher-cache file, at once (a temp name, then a rename): a later run reads them as
    hits even when this one fails. A write error only costs a rerun its requests again."""
    import pyarrow.parquet as pq

    from zuoxiao.core import fsio
    from zuoxiao.pipelines.cache import cache_table

    if not records:
        return
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}-endpoint.parquet"
    final, tmp = fsio.join(cache_dir, name), fsio.join(cache_dir, f".{name}.tmp")
    try:
        f = fsio.create(tmp)
        try:
            pq.write_table(cache_table([{**r, "_logits_full": r["logits"]} for r in records]), f, compression="zstd")
        finally:
            f.close()
        fsio.move(tmp, final)
    except Exception as err:  # noqa: BLE001 - Beam wraps filesystem errors in BeamIOError
        log.warning("teacher cache: could not store %d answered rows in %s: %s", len(records), cache_dir, err)
