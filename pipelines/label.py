"""The label stage: task rows -> teacher soft labels in Parquet shards, as one Apache Beam pipeline.

Copy-paste commands (run from the repository root; HF_HUB_OFFLINE=1 keeps everything offline):

    python -m pipelines.label --config configs/demo.yaml --output /tmp/x --runner=DirectRunner
    python -m pipelines.label --config configs/sst2.yaml --output /tmp/sst2 \\
        --set label.input.limit=2000 --runner=DirectRunner
    python -m pipelines.label --config configs/sst2.yaml --output /tmp/sst2 \\
        --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing
    zuoxiao label configs/sst2.yaml --set label.batch_size=128 -- --runner=DirectRunner

The graph (one chain of labelled steps):

    Read/ParseRows -> Validate  [+ ReadExtra<i> -> ValidateExtra<i> per label.extra_inputs entry]
      -> CountRead -> Dedupe -> [Augment] -> [CacheLookup]
      -> Tokenize -> GroupByLength -> Batches -> RunInference(teacher) -> SoftLabels -> WriteShards
    (Validate, Dedupe rejects) -> WriteRejected;  (read, labeled, rejected) -> CountByInput

Each input is read with its own format and columns and flattened before Dedupe (pipelines/inputs.py).
A served teacher (label.teacher.kind: endpoint) skips GroupByLength: batches of label.batch_size rows go to
pipelines/endpoint_handler.py, which sends one request per row and caches each batch's answers at once.

Rows of equal token length are batched together, sorted by id: no padding at all, and batch
composition (so every float) does not depend on the runner or the number of workers.
Every file is written through Beam's FileSystems, so the output may be a local path or any Beam URI
(gs://, s3://): workers write into a temp dir ``<output>/.work-<id>/`` (write.py), the pipeline writes
its own counts there (summary.json), and this process renames the files into place after the pipeline
succeeded, manifest.json last (commit.py). The teacher is loaded once here (for its fingerprint, and an
LLM teacher's recipe) and again by each worker (pipelines/handler.py), from what this process recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
from apache_beam.ml.inference.base import RunInference

from zuoxiao.core import fsio
from zuoxiao.core.config import Config
from zuoxiao.core.config.label import LabelConfig
from zuoxiao.core.config.views import LabelView
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.manifest import Manifest
from zuoxiao.core.paths import StagePaths
from zuoxiao.core.shards import SCHEMA_VERSION, schema_with_metadata
from zuoxiao.core.softlabels import storage_kind
from zuoxiao.pipelines.commit import WORK_PREFIX, clean_stale_work, commit, read_summary, summary_counts
from zuoxiao.pipelines.handler import TeacherModelHandler
from zuoxiao.pipelines.inputs import (
    CountByInput,
    LabelInput,
    by_input_counts,
    input_fingerprints,
    plan_inputs,
    read_and_validate,
)
from zuoxiao.pipelines.io import check_output_dir
from zuoxiao.pipelines.label_names import resolve_label_names
from zuoxiao.pipelines.label_teacher import check_inputs, launch_teacher, teacher_path_of
from zuoxiao.pipelines.options import beam_flags, make_runner, redact_flags, worker_threads
from zuoxiao.pipelines.teacher_steps import TokenizeBatch, length_batches, to_shard_row
from zuoxiao.pipelines.validate import REJECTED, DropDuplicateIds, RejectNonFinite, check_rejected_fraction
from zuoxiao.pipelines.write import WriteSharded, WriteSummary
from zuoxiao.teacher import TeacherSource

log = logging.getLogger(__name__)

TOKENIZE_BATCH = 512  # rows per tokenizer call (fast tokenizers amortise per-call overhead)


@dataclass(frozen=True)
class LabelPlan:
    """Everything `build_graph` needs, resolved by the launching process before the pipeline starts."""

    label: LabelConfig
    inputs: list[LabelInput]  # label.input, then label.extra_inputs: files found, text columns checked
    label_names: list[str]
    label_source: str  # where the names came from (task.label_names, teacher, auto)
    teacher: TeacherSource  # what every worker loads: the launcher's teacher as it recorded it
    num_threads: int  # torch threads per worker
    mask_token: str  # the teacher tokenizer's, for augmentation
    cache_files: list[str]  # teacher-cache files to look rows up in (none: no lookup)
    cache_enabled: bool  # tag misses and write cache parts (with or without files to look up)
    temp_dir: str  # <output>/.work-<id>/: the workers' output until commit
    schema: pa.Schema  # SHARD_SCHEMA with this task's label names and storage
    # a served teacher stores each batch's answers here at once (a failed run keeps them): the cache's dir
    endpoint_cache_dir: str | None = None

    @property
    def label_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.label_names)}


def build_graph(p, plan: LabelPlan):
    """Add the label pipeline to Beam pipeline ``p``."""
    lc = plan.label
    raw, valid, invalid = read_and_validate(p, plan.inputs, plan.label_index)  # label.input + extra_inputs
    read_count = raw | "CountRead" >> beam.combiners.Count.Globally()
    unique = valid | "Dedupe" >> DropDuplicateIds()
    records = unique.records
    if lc.augment.enabled:
        from zuoxiao.pipelines.augment import Augment

        augmented = records | "Augment" >> Augment(lc.augment, plan.mask_token)
        records = (records, augmented) | "WithAugmented" >> beam.Flatten()
    hits = None
    if plan.cache_files:
        from zuoxiao.pipelines.cache import CacheLookup

        looked = records | "CacheLookup" >> CacheLookup(plan.cache_files, lc.teacher.max_length)
        hits, records = looked.hit, looked.miss
    elif plan.cache_enabled:
        records = records | "AllMisses" >> beam.Map(lambda r: {**r, "_cache": "miss"})
    labeled = _infer(records, plan)
    if hits is not None:
        labeled = (hits, labeled) | "WithCacheHits" >> beam.Flatten()
    _write(labeled, raw, read_count, invalid, unique, plan)
    return p


def _infer(records, plan: LabelPlan):
    """Tokenise, group rows of equal token length into batches, run the teacher on each batch."""
    lc = plan.label
    tokenized = (
        records
        | "TokenizeBatches" >> beam.BatchElements(min_batch_size=TOKENIZE_BATCH, max_batch_size=TOKENIZE_BATCH)
        | "Tokenize" >> beam.ParDo(TokenizeBatch(plan.teacher))
    )
    if plan.teacher.kind == "endpoint":  # a served teacher: one request per row, so batches need no equal lengths
        from zuoxiao.pipelines.endpoint_handler import EndpointModelHandler

        handler = EndpointModelHandler(plan.teacher.recipe, plan.endpoint_cache_dir)
        batches = tokenized | "Batches" >> beam.BatchElements(min_batch_size=lc.batch_size, max_batch_size=lc.batch_size)
    else:
        handler = TeacherModelHandler(plan.teacher, plan.label_names, device=lc.teacher.device,
                                      num_threads=plan.num_threads, store_representation=lc.store_representation)
        batches = (
            tokenized
            | "KeyByLength" >> beam.Map(lambda r: (len(r["input_ids"]), r))
            | "GroupByLength" >> beam.GroupByKey()
            | "Batches" >> beam.FlatMap(length_batches, batch_size=lc.batch_size, max_batch_tokens=lc.max_batch_tokens)
        )
    return batches | "Teacher" >> RunInference(handler.with_no_batching())


def _write(labeled, raw, read_count, invalid, unique, plan: LabelPlan) -> None:
    """Soft-label shards, dead letters, the summary and the per-input counts, all into plan.temp_dir."""
    from zuoxiao.pipelines.cache import CACHE_SCHEMA

    lc = plan.label
    finite = labeled | "RejectNonFinite" >> beam.ParDo(RejectNonFinite()).with_outputs(REJECTED, main="records")
    shard_stats = (
        finite.records
        | "SoftLabels" >> beam.Map(to_shard_row, max_full_classes=lc.max_full_classes, top_k=lc.top_k)
        | "WriteShards" >> WriteSharded("shards", plan.temp_dir, lc.rows_per_shard, lc.row_group_size,
                                        schema=plan.schema,
                                        cache_schema=CACHE_SCHEMA if plan.cache_enabled else None))
    all_rejected = (invalid, unique[REJECTED], finite[REJECTED]) | "AllRejected" >> beam.Flatten()
    rejected_stats = all_rejected | "WriteRejected" >> WriteSharded("rejected", plan.temp_dir, lc.rows_per_shard,
                                                                    lc.row_group_size)
    (shard_stats, rejected_stats) | "WriteSummary" >> WriteSummary(plan.temp_dir, read_count)
    (raw, finite.records, all_rejected) | "CountByInput" >> CountByInput(plan.temp_dir)


# ---------------------------------------------------------------- run + commit
def _teacher_ms(result) -> int | None:
    """Teacher time summed over workers, from Beam metrics (timing only; counts come from outputs)."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace("zuoxiao").with_name("teacher_ms"))
    except Exception as err:  # noqa: BLE001 - some runners do not report metrics
        log.warning("could not query Beam metrics (%s); timings.teacher_s is unknown", err)
        return None
    values = [c.committed if c.committed is not None else c.attempted for c in counters["counters"]]
    return sum(int(v or 0) for v in values) if values else None


def _options(view: LabelView, beam_args: list[str] | None):
    """(PipelineOptions, flags): parsed now, so an unknown/ill-typed flag fails here, not mid-run."""
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = beam_flags(view, beam_args)
    try:
        options = PipelineOptions(flags)
        options.get_all_options()
    except (SystemExit, ValueError) as err:
        raise ConfigError(f"bad Beam pipeline options {redact_flags(flags)}: {err}; "
                          "check label.beam and the flags after --") from None
    return options, flags


def _open_cache(cache_dir, fingerprint: str, lc: LabelConfig):
    """(TeacherCache or None, the cache files to look rows up in)."""
    if cache_dir is None:
        return None, []
    from zuoxiao.pipelines.cache import TeacherCache

    cache = TeacherCache(cache_dir, fingerprint, lc.teacher.max_length)
    # Cached rows hold logits only: with representations on, every row goes to the teacher.
    return cache, [] if lc.store_representation else cache.valid_files()


def _manifest(view: LabelView, plan: LabelPlan, teacher: dict, summary: dict, flags, timings: dict) -> dict:
    counts, shards, rejected_files = summary_counts(summary, plan.cache_enabled)
    counts["by_input"] = by_input_counts(plan.temp_dir, plan.inputs)
    # nothing labeled, or more rejected than label.max_rejected_fraction: exit 2, no manifest
    check_rejected_fraction(counts, view.label, plan.inputs[0].files)
    storage = storage_kind(len(plan.label_names), view.label.max_full_classes)
    return {
        "schema_version": SCHEMA_VERSION, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "label_names": plan.label_names, "label_source": plan.label_source,
        "num_classes": len(plan.label_names), "storage": storage,
        "top_k": view.label.top_k if storage == "topk" else None,
        "counts": counts, "shards": shards, "rejected_files": rejected_files,
        "data_hash": None,  # set by commit() from the committed shards' checksums
        "teacher": teacher, "inputs": input_fingerprints(plan.inputs), "beam_options": redact_flags(flags),
        "timings": timings, "config": view.resolved,
    }


def _run(view: LabelView, plan: LabelPlan, out: str, options, flags, teacher: dict, cache, test_pipeline,
         t_start: float) -> dict:
    """Run the pipeline, commit its output (manifest last) and the cache; ``plan.temp_dir`` always goes."""
    t_setup = time.perf_counter()
    # One try from the first worker write to the commit: a Ctrl-C (or a failure) anywhere in between,
    # building the manifest included, leaves no work dir behind (exit 130 and 2 promise that).
    try:
        p = test_pipeline if test_pipeline is not None else beam.Pipeline(runner=make_runner(options), options=options)
        build_graph(p, plan)
        result = p.run()
        result.wait_until_finish()
        teacher_ms = _teacher_ms(result)
        timings = {"setup_s": round(t_setup - t_start, 3), "pipeline_s": round(time.perf_counter() - t_setup, 3),
                   "teacher_s": round(teacher_ms / 1000, 3) if teacher_ms is not None else None}
        summary = read_summary(plan.temp_dir)
        manifest = _manifest(view, plan, teacher, summary, flags, timings)
        if cache is not None:
            manifest["cache"] = {"dir": str(cache.dir), "files_read": len(plan.cache_files)}
        committed = [s["file"] for s in manifest["shards"] + manifest["rejected_files"]]
        typed = Manifest.parse(manifest, "the manifest being written")  # the one type writer and readers share
        manifest = commit(out, plan.temp_dir, committed, view.resolved, typed).to_json()  # output complete
        if cache is not None:
            # a served teacher's answered rows are in the cache already (pipelines/endpoint_handler.py)
            served = plan.endpoint_cache_dir is not None
            _commit_cache(cache, [] if served else summary["files"], plan.temp_dir, view.cache_max_rows, manifest)
    finally:
        fsio.delete_tree(plan.temp_dir)
    return manifest


def _commit_cache(cache, files: list[dict], temp: str, max_rows: int, manifest: dict) -> None:
    parts = [fsio.join(temp, s["cache_file"]) for s in files if s.get("cache_file")]
    try:
        cache.commit(parts)
        manifest["cache"].update(cache.evict(max_rows))
    except OSError as err:  # the labels are done; a cache that cannot be written only costs time
        log.warning("teacher cache at %s not updated: %s", cache.dir, err)


def label(view: LabelView, out_dir: str | Path, beam_args: list[str] | None = None, test_pipeline=None,
          teacher_path: str | None = None, cache_dir: str | Path | None = None) -> dict:
    """Run the label pipeline; return the manifest (also written to out_dir/manifest.json, last).

    ``out_dir`` (and ``cache_dir``) may be local paths or any Beam filesystem URI (gs://, s3://).
    """
    t_start = time.perf_counter()
    lc = view.label
    check_inputs(view)
    teacher_path = teacher_path_of(view, teacher_path)
    inputs = plan_inputs(lc)
    label_names, label_source = resolve_label_names(view, teacher_path, inputs[0].files)
    teacher = launch_teacher(view, teacher_path, label_names)
    options, flags = _options(view, beam_args)
    num_threads = worker_threads(view, options)
    record = {**teacher.record(), "repr_dim": teacher.repr_dim if lc.store_representation else None,
              "num_threads": num_threads, "device": lc.teacher.device}
    # workers rebuild the teacher from the record, as train and compress do (an LLM from its recipe)
    source = TeacherSource.of_record(record, lc.teacher.trust_remote_code)
    mask_token, fingerprint = teacher.tokenizer.mask_token or "[MASK]", teacher.fingerprint()
    del teacher
    fsio.configure(options)  # S3 endpoint/credentials etc. for this process (workers get them from Beam)
    out = fsio.norm(out_dir)
    if fsio.is_local(out):
        check_output_dir(Path(out))  # a file in the way or a read-only disk: exit 2 before any compute
    clean_stale_work(out)
    cache, cache_files = _open_cache(cache_dir, fingerprint, lc)
    storage = storage_kind(len(label_names), lc.max_full_classes)
    plan = LabelPlan(label=lc, inputs=inputs, label_names=label_names, label_source=label_source, teacher=source,
                     num_threads=num_threads, mask_token=mask_token, cache_files=cache_files,
                     cache_enabled=cache is not None, temp_dir=fsio.join(out, f"{WORK_PREFIX}{uuid.uuid4().hex[:12]}"),
                     schema=schema_with_metadata(label_names, storage, optional_columns=True),
                     endpoint_cache_dir=cache.dir if cache is not None and source.kind == "endpoint" else None)
    manifest = _run(view, plan, out, options, flags, record, cache, test_pipeline, t_start)
    manifest["timings"]["total_s"] = round(time.perf_counter() - t_start, 3)
    return manifest  # as written to manifest.json (+ total_s); read it back typed with read_manifest()


def label_from_config(cfg: Config, out_dir: str | Path, beam_args: list[str] | None = None, test_pipeline=None,
                      teacher_path: str | None = None, cache_dir: str | Path | None = None) -> dict:
    """`label` on the whole config's LabelView (the CLI and library callers)."""
    return label(LabelView.of(cfg), out_dir, beam_args, test_pipeline, teacher_path, cache_dir)


def run(argv: list[str] | None = None, test_pipeline=None) -> dict:
    """Beam-example entry point: our flags are parsed here, everything else goes to PipelineOptions."""
    from zuoxiao.core.config import load_config

    parser = argparse.ArgumentParser(prog="python -m pipelines.label", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/demo.yaml")
    parser.add_argument("--output", help="output dir (default <output_dir>/label)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    known, beam_args = parser.parse_known_args(argv)
    cfg = load_config(known.config, known.overrides)
    out = known.output or StagePaths(Path(cfg.output_dir)).label  # a local path or a Beam URI (s3://...)
    manifest = label_from_config(cfg, out, beam_args=beam_args, test_pipeline=test_pipeline)
    print(json.dumps({"output": str(out), "counts": manifest["counts"], "timings": manifest["timings"]}, indent=2))
    return manifest


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from zuoxiao.core.errors import ZuoxiaoError

    try:
        run(sys.argv[1:])
    except ZuoxiaoError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
