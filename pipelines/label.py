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

Rows of equal token length are batched together, sorted by id: no padding at all, and batch
composition (so every float) does not depend on the runner or the number of workers.
Every file is written through Beam's FileSystems, so the output may be a local path or any Beam URI
(gs://, s3://): workers write into a temp dir ``<output>/.work-<id>/`` (write.py), the pipeline writes
its own counts there (summary.json), and this process renames the files into place after the pipeline
succeeded, manifest.json last (commit.py). The teacher is loaded by each worker (teacher/handler.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from pathlib import Path

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from zuoxiao.core import fsio
from zuoxiao.core.config import Config
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.goldsets import require_prepared
from zuoxiao.core.manifest import Manifest
from zuoxiao.core.paths import StagePaths, teacher_path_for_label
from zuoxiao.core.shards import SCHEMA_VERSION, schema_with_metadata
from zuoxiao.core.softlabels import storage_kind
from zuoxiao.pipelines.commit import WORK_PREFIX, clean_stale_work, commit, read_summary, summary_counts
from zuoxiao.pipelines.inputs import (
    CountByInput,
    by_input_counts,
    input_fingerprints,
    plan_inputs,
    read_and_validate,
)
from zuoxiao.pipelines.io import check_output_dir
from zuoxiao.pipelines.label_names import resolve_label_names
from zuoxiao.pipelines.options import beam_flags, make_runner, redact_flags, worker_threads
from zuoxiao.pipelines.teacher_steps import TokenizeBatch, length_batches, to_shard_row
from zuoxiao.pipelines.validate import REJECTED, DropDuplicateIds, RejectNonFinite, check_rejected_fraction
from zuoxiao.pipelines.write import WriteSharded, WriteSummary
from zuoxiao.teacher.handler import TeacherModelHandler

log = logging.getLogger(__name__)

TOKENIZE_BATCH = 512  # rows per tokenizer call (fast tokenizers amortise per-call overhead)


def build_graph(p, plan: dict):
    """Add the label pipeline to Beam pipeline ``p``. ``plan`` holds the resolved settings."""
    cfg: Config = plan["cfg"]
    lc = cfg.label
    raw, valid, invalid = read_and_validate(p, plan["inputs"], plan["label_index"])  # label.input + extra_inputs
    read_count = raw | "CountRead" >> beam.combiners.Count.Globally()
    unique = valid | "Dedupe" >> DropDuplicateIds()
    records = unique.records
    if lc.augment.enabled:
        from zuoxiao.teacher.augment import Augment

        augmented = records | "Augment" >> Augment(lc.augment, plan["mask_token"])
        records = (records, augmented) | "WithAugmented" >> beam.Flatten()
    hits = None
    if plan["cache_files"]:
        from zuoxiao.teacher.cache import CacheLookup

        looked = records | "CacheLookup" >> CacheLookup(plan["cache_files"], lc.teacher.max_length)
        hits, records = looked.hit, looked.miss
    elif plan["cache_enabled"]:
        records = records | "AllMisses" >> beam.Map(lambda r: {**r, "_cache": "miss"})
    handler = TeacherModelHandler(
        plan["teacher_path"], plan["label_names"],
        device=lc.teacher.device, num_threads=plan["num_threads"],
        trust_remote_code=lc.teacher.trust_remote_code,
        members=[m.model_dump() for m in lc.teacher.members] if lc.teacher.members else None,
        combine=lc.teacher.combine, max_length=lc.teacher.max_length,
        store_representation=lc.store_representation, llm=plan.get("llm_recipe"),
    )
    inferred = (
        records
        | "TokenizeBatches" >> beam.BatchElements(min_batch_size=TOKENIZE_BATCH, max_batch_size=TOKENIZE_BATCH)
        | "Tokenize" >> beam.ParDo(TokenizeBatch(plan["teacher_path"], lc.teacher.max_length,
                                                 lc.teacher.trust_remote_code))
        | "KeyByLength" >> beam.Map(lambda r: (len(r["input_ids"]), r))
        | "GroupByLength" >> beam.GroupByKey()
        | "Batches" >> beam.FlatMap(length_batches, batch_size=lc.batch_size, max_batch_tokens=lc.max_batch_tokens)
        | "Teacher" >> RunInference(handler.with_no_batching())
    )
    labeled = inferred if hits is None else (hits, inferred) | "WithCacheHits" >> beam.Flatten()
    from zuoxiao.teacher.cache import CACHE_SCHEMA

    finite = labeled | "RejectNonFinite" >> beam.ParDo(RejectNonFinite()).with_outputs(REJECTED, main="records")
    shard_stats = (
        finite.records
        | "SoftLabels" >> beam.Map(to_shard_row, max_full_classes=lc.max_full_classes, top_k=lc.top_k)
        | "WriteShards" >> WriteSharded("shards", plan["temp_dir"], lc.rows_per_shard, lc.row_group_size,
                                        schema=plan["schema"],
                                        cache_schema=CACHE_SCHEMA if plan["cache_enabled"] else None))
    all_rejected = (invalid, unique[REJECTED], finite[REJECTED]) | "AllRejected" >> beam.Flatten()
    rejected_stats = all_rejected | "WriteRejected" >> WriteSharded("rejected", plan["temp_dir"], lc.rows_per_shard,
                                                                    lc.row_group_size)
    (shard_stats, rejected_stats) | "WriteSummary" >> WriteSummary(plan["temp_dir"], read_count)
    (raw, finite.records, all_rejected) | "CountByInput" >> CountByInput(plan["temp_dir"])
    return p


# ---------------------------------------------------------------- run + commit
def _repr_dim(model) -> int:
    """Width D of the stored teacher_repr: the hidden size of the model (an ensemble: its first member)."""
    if hasattr(model, "members"):
        model = model.members[0]["model"]
    dim = getattr(getattr(model, "config", None), "hidden_size", None)
    if not dim:
        raise ConfigError(f"label.store_representation: cannot tell the hidden size of a {type(model).__name__} "
                          "(its config has no hidden_size); set label.store_representation=false")
    return int(dim)


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


def label_from_config(
    cfg: Config,
    out_dir: str | Path,
    beam_args: list[str] | None = None,
    test_pipeline=None,
    teacher_path: str | None = None,
    cache_dir: str | Path | None = None,
) -> dict:
    """Run the label pipeline; return the manifest (also written to out_dir/manifest.json, last).

    ``out_dir`` (and ``cache_dir``) may be local paths or any Beam filesystem URI (gs://, s3://).
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    from zuoxiao.teacher.model import fingerprint, load_tokenizer, resolve_model_path

    t_start = time.perf_counter()
    lc = cfg.label
    if lc.input is None:
        raise ConfigError("label.input is missing: give the task rows to label, e.g. --set label.input.path=data.jsonl")
    require_prepared(lc.input, "label.input")
    for i, extra in enumerate(lc.extra_inputs):
        require_prepared(extra, f"label.extra_inputs[{i}]")
    members = lc.teacher.members
    if members and cfg.finetune is not None:
        raise ConfigError("label.teacher.members and finetune are both set, and the label stage uses the fine-tuned "
                          "teacher: remove one (ensemble fine-tuned teachers by listing their directories as members)")
    if teacher_path is None:
        teacher_path = teacher_path_for_label(cfg, StagePaths(Path(cfg.output_dir)))
        if cfg.finetune is not None and not (Path(teacher_path) / "config.json").is_file():
            raise InputError(
                f"the config fine-tunes a teacher (finetune: is set) but {teacher_path} holds none yet: run "
                "`zuoxiao finetune-teacher CONFIG` first, or `zuoxiao run CONFIG`, or --set finetune=null "
                "to label with label.teacher.path"
            )
    if members and teacher_path == lc.teacher.path:
        teacher_path = members[0].path  # its tokenizer groups rows by length; each member re-tokenises the text
    inputs = plan_inputs(lc)  # label.input, then label.extra_inputs: files found, text columns checked
    files = inputs[0].files
    label_names, label_source = resolve_label_names(cfg, teacher_path, files)
    # The launcher loads the teacher only for its fingerprint (and an LLM teacher's recipe: examples drawn,
    # prior fitted); every worker loads its own copy in TeacherModelHandler.load_model (workers of a real
    # runner share no memory with this process).
    llm = lc.teacher.kind == "causal_lm" and cfg.finetune is None  # a fine-tuned teacher is a classifier
    if members or llm:
        from zuoxiao.teacher.loader import load_teacher

        # an EnsembleClassifier (label names checked per member) or an LLMTeacher (examples drawn, prior fitted)
        model = load_teacher(lc.teacher, label_names, cfg, teacher_path)
    else:  # a fine-tuned teacher dir with blend.json loads as the transformer blended with its TF-IDF baseline
        from zuoxiao.teacher.loader import load_teacher_dir

        model = load_teacher_dir(teacher_path, label_names, lc.teacher.trust_remote_code, lc.teacher.max_length)
    blend = getattr(model, "blend", None)
    if blend:
        log.info("label: the teacher is blended with its TF-IDF baseline at weight %g (%s/blend.json): "
                 "p = %g softmax(teacher) + %g p_baseline", blend["baseline_weight"], teacher_path,
                 1 - blend["baseline_weight"], blend["baseline_weight"])
    fp = fingerprint(model)
    repr_dim = _repr_dim(model) if lc.store_representation else None
    # An LLM teacher travels as its recipe: workers rebuild it from that, and the manifest records it so
    # train and compress re-create exactly this teacher (zuoxiao.teacher.loader.load_eval_teacher).
    llm_record = {**model.describe(), "llm_recipe": model.recipe} if llm else {}
    del model
    mask_token = load_tokenizer(teacher_path, lc.teacher.trust_remote_code).mask_token or "[MASK]"
    storage = storage_kind(len(label_names), lc.max_full_classes)
    flags = beam_flags(cfg, beam_args)
    try:
        options = PipelineOptions(flags)
        options.get_all_options()  # parse now: an unknown/ill-typed flag fails here, not mid-run
    except (SystemExit, ValueError) as err:
        raise ConfigError(f"bad Beam pipeline options {redact_flags(flags)}: {err}; "
                          "check label.beam and the flags after --") from None
    num_threads = worker_threads(cfg, options)

    fsio.configure(options)  # S3 endpoint/credentials etc. for this process (workers get them from Beam)
    out = fsio.norm(out_dir)
    if fsio.is_local(out):
        check_output_dir(Path(out))  # a file in the way or a read-only disk: exit 2 before any compute
    clean_stale_work(out)
    temp = fsio.join(out, f"{WORK_PREFIX}{uuid.uuid4().hex[:12]}")
    cache = None
    cache_files: list[str] = []
    if cache_dir is not None:
        from zuoxiao.teacher.cache import TeacherCache

        cache = TeacherCache(cache_dir, fp, lc.teacher.max_length)
        # Cached rows hold logits only: with representations on, every row goes to the teacher.
        cache_files = [] if lc.store_representation else cache.valid_files()
    plan = {
        "cfg": cfg, "label_names": label_names,
        "inputs": inputs, "label_index": {n: i for i, n in enumerate(label_names)},
        "teacher_path": teacher_path, "num_threads": num_threads,
        "mask_token": mask_token, "cache_files": cache_files, "cache_enabled": cache is not None,
        "temp_dir": temp, "schema": schema_with_metadata(label_names, storage, optional_columns=True),
        "llm_recipe": llm_record.get("llm_recipe"),
    }
    t_setup = time.perf_counter()
    # One try from the first worker write to the commit: a Ctrl-C (or a failure) anywhere in between,
    # building the manifest included, leaves no work dir behind (exit 130 and 2 promise that).
    try:
        if test_pipeline is not None:
            p = test_pipeline
        else:
            p = beam.Pipeline(runner=make_runner(options), options=options)
        build_graph(p, plan)
        result = p.run()
        result.wait_until_finish()
        teacher_ms = _teacher_ms(result)
        t_pipeline = time.perf_counter()
        summary = read_summary(temp)
        counts, shards, rejected_files = summary_counts(summary, cache is not None)
        counts["by_input"] = by_input_counts(temp, inputs)
        # nothing labeled, or more rejected than label.max_rejected_fraction: exit 2, no manifest
        check_rejected_fraction(counts, lc, files)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "label_names": label_names,
            "label_source": label_source,
            "num_classes": len(label_names),
            "storage": storage,
            "top_k": lc.top_k if storage == "topk" else None,
            "counts": counts,
            "shards": shards,
            "rejected_files": rejected_files,
            "data_hash": None,  # set by commit() from the committed shards' checksums
            "teacher": {"path": teacher_path, "resolved": resolve_model_path(teacher_path), "fingerprint": fp,
                        "max_length": lc.teacher.max_length, "repr_dim": repr_dim, "num_threads": num_threads, "device": lc.teacher.device,
                        **({"members": [m.model_dump() for m in members], "combine": lc.teacher.combine}
                           if members else {}), **llm_record, **({"blend": blend} if blend else {})},
            "inputs": input_fingerprints(inputs),
            "beam_options": redact_flags(flags),
            "timings": {"setup_s": round(t_setup - t_start, 3), "pipeline_s": round(t_pipeline - t_setup, 3),
                        "teacher_s": round(teacher_ms / 1000, 3) if teacher_ms is not None else None},
            "config": cfg.model_dump(mode="json"),
        }
        if cache is not None:
            manifest["cache"] = {"dir": str(cache.dir), "files_read": len(cache_files)}
        committed = [s["file"] for s in shards + rejected_files]
        typed = Manifest.parse(manifest, "the manifest being written")  # the one type writer and readers share
        manifest = commit(out, temp, committed, cfg.model_dump(mode="json"), typed).to_json()  # output complete
        if cache is not None:
            parts = [fsio.join(temp, s["cache_file"]) for s in summary["files"] if s.get("cache_file")]
            try:
                cache.commit(parts)
                manifest["cache"].update(cache.evict(cfg.run.cache.max_rows))
            except OSError as err:  # the labels are done; a cache that cannot be written only costs time
                log.warning("teacher cache at %s not updated: %s", cache.dir, err)
    finally:
        fsio.delete_tree(temp)
    manifest["timings"]["total_s"] = round(time.perf_counter() - t_start, 3)
    return manifest  # as written to manifest.json (+ total_s); read it back typed with read_manifest()


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
