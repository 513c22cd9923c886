"""The label stage: task rows -> teacher soft labels in Parquet shards, as one Apache Beam pipeline.

Copy-paste commands (run from the repository root; HF_HUB_OFFLINE=1 keeps everything offline):

    python -m pipelines.label --config configs/demo.yaml --output /tmp/x --runner=DirectRunner
    python -m pipelines.label --config configs/sst2.yaml --output /tmp/sst2 \\
        --set label.input.limit=2000 --runner=DirectRunner
    python -m pipelines.label --config configs/sst2.yaml --output /tmp/sst2 \\
        --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing
    zuoxiao label configs/sst2.yaml --set label.batch_size=128 -- --runner=DirectRunner

The graph (one chain of labelled steps):

    Read/ParseRows -> CountRead -> Validate -> Dedupe -> [Augment] -> [CacheLookup]
      -> Tokenize -> GroupByLength -> Batches -> RunInference(teacher) -> SoftLabels -> WriteShards
    (Validate, Dedupe rejects) -> WriteRejected

Rows of equal token length are batched together, sorted by id: no padding at all, and batch
composition (so every float) does not depend on the runner or the number of workers.
Outputs go to a hidden work dir inside the output dir and are moved into place only after the
pipeline succeeded; manifest.json is written last.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from zuoxiao.core.config import Config, save_resolved
from zuoxiao.core.errors import ConfigError, InputError, IntegrityError
from zuoxiao.core.paths import StagePaths, teacher_path_for_label
from zuoxiao.core.shards import MANIFEST, SCHEMA_VERSION, schema_with_metadata, sha256_file, write_json_atomic
from zuoxiao.pipelines.io import ReadTaskRows, check_columns, input_files
from zuoxiao.pipelines.label_names import resolve_label_names
from zuoxiao.pipelines.options import beam_flags, make_runner, worker_threads
from zuoxiao.pipelines.validate import REJECTED, DropDuplicateIds, ValidateRow
from zuoxiao.pipelines.write import WriteSharded
from zuoxiao.teacher.handler import TeacherModelHandler, forget_preloaded, register_preloaded, tokenize_texts
from zuoxiao.teacher.soft_labels import soft_label_columns, storage_kind

log = logging.getLogger(__name__)

TOKENIZE_BATCH = 512  # rows per tokenizer call (fast tokenizers amortise per-call overhead)


# ---------------------------------------------------------------- graph steps
class TokenizeBatch(beam.DoFn):
    """[records] -> records with input_ids (truncated), num_tokens (untruncated), truncated, max_length."""

    def __init__(self, path: str, max_length: int, trust_remote_code: bool):
        self.path, self.max_length, self.trust_remote_code = path, max_length, trust_remote_code

    def setup(self):
        from zuoxiao.teacher.model import load_tokenizer

        self.tokenizer = load_tokenizer(self.path, self.trust_remote_code)

    def process(self, batch):
        ids, lengths, truncated = tokenize_texts(self.tokenizer, [r["text"] for r in batch], self.max_length)
        for rec, i, n, t in zip(batch, ids, lengths, truncated, strict=True):
            yield {**rec, "input_ids": i, "num_tokens": n, "truncated": t, "max_length": self.max_length}


def length_batches(item, batch_size: int, max_batch_tokens: int | None):
    """(token length, records) -> lists of records sorted by id: fixed composition, zero padding."""
    length, recs = item
    recs = sorted(recs, key=lambda r: r["id"])
    n = batch_size if not max_batch_tokens else max(1, min(batch_size, max_batch_tokens // max(1, length)))
    for i in range(0, len(recs), n):
        yield recs[i:i + n]


def to_shard_row(rec: dict, max_full_classes: int, top_k: int) -> dict:
    """Record with teacher logits [C] -> a SHARD_SCHEMA row (+ private keys for the writer/cache)."""
    import numpy as np

    logits = np.asarray(rec["logits"], dtype=np.float32)
    soft = soft_label_columns(logits[None, :], max_full_classes, top_k)[0]
    return {
        "id": rec["id"], "text": rec["text"], "gold": rec["gold"], "augmented": rec["augmented"],
        "num_tokens": int(rec["num_tokens"]), "truncated": bool(rec["truncated"]), **soft,
        # private: used by the writer (cache parts, counts), not written to shards
        "_cache": rec.get("_cache"), "text_hash": rec["text_hash"], "max_length": rec.get("max_length"),
        "_logits_full": logits,
    }


def _count_read(raw):
    beam.metrics.Metrics.counter("zuoxiao", "rows_read").inc()
    return raw


def build_graph(p, plan: dict):
    """Add the label pipeline to Beam pipeline ``p``. ``plan`` holds the resolved settings."""
    cfg: Config = plan["cfg"]
    lc = cfg.label
    src = lc.input
    raw = p | "Read" >> ReadTaskRows(plan["files"], src.limit)
    if src.limit and len(plan["files"]) > 1:  # per-file limits above; here the global one
        raw = (raw
               | "LimitRows" >> beam.combiners.Top.Smallest(src.limit, key=lambda r: (r["source"], r["pos"]))
               | "Unlist" >> beam.FlatMap(lambda rows: rows))
    checked = (
        raw
        | "CountRead" >> beam.Map(_count_read)
        | "Validate" >> beam.ParDo(ValidateRow(src.text_column, src.label_column, src.id_column,
                                               plan["label_index"])).with_outputs(REJECTED, main="records")
    )
    unique = checked.records | "Dedupe" >> DropDuplicateIds()
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
        plan["teacher_path"], plan["label_names"], fingerprint=plan["fingerprint"],
        device=lc.teacher.device, num_threads=plan["num_threads"],
        trust_remote_code=lc.teacher.trust_remote_code,
        members=[m.model_dump() for m in lc.teacher.members] if lc.teacher.members else None,
        combine=lc.teacher.combine, max_length=lc.teacher.max_length, llm=plan.get("llm_recipe"),
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

    (labeled
     | "SoftLabels" >> beam.Map(to_shard_row, max_full_classes=lc.max_full_classes, top_k=lc.top_k)
     | "WriteShards" >> WriteSharded("shards", plan["work_dir"], lc.rows_per_shard, lc.row_group_size,
                                     schema=plan["schema"],
                                     cache_schema=CACHE_SCHEMA if plan["cache_enabled"] else None))
    ((checked[REJECTED], unique[REJECTED])
     | "AllRejected" >> beam.Flatten()
     | "WriteRejected" >> WriteSharded("rejected", plan["work_dir"], lc.rows_per_shard, lc.row_group_size))
    return p


# ---------------------------------------------------------------- run + commit
def _metric_sums(result) -> dict[str, int]:
    from apache_beam.metrics.metric import MetricsFilter

    sums: dict[str, int] = {}
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace("zuoxiao"))["counters"]
    except Exception as err:  # noqa: BLE001 - some runners do not report metrics
        log.warning("could not query Beam metrics (%s); counts come from the written files only", err)
        return sums
    for c in counters:
        value = c.committed if c.committed is not None else c.attempted
        sums[c.key.metric.name] = sums.get(c.key.metric.name, 0) + int(value or 0)
    return sums


def _input_fingerprints(files: list[tuple[str, str]]) -> list[dict]:
    out = []
    for path, fmt in files:
        if "://" in path:
            out.append({"path": path, "format": fmt})
            continue
        st = os.stat(path)
        out.append({"path": str(Path(path).resolve()), "format": fmt, "bytes": st.st_size,
                    "mtime": st.st_mtime, "sha256": sha256_file(path)})
    return out


def _clean_stale_work(out_dir: Path) -> None:
    """Work dirs of runs that died (kill -9): never referenced by a manifest, safe to drop."""
    for stale in out_dir.glob(".work-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _commit(out_dir: Path, work: Path, cfg: Config, manifest: dict) -> None:
    """Replace the previous output: manifest first out, new files in, manifest last."""
    (out_dir / MANIFEST).unlink(missing_ok=True)  # from here on the dir reads as incomplete
    for sub in ("shards", "rejected"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)
        src = work / sub
        if src.is_dir():
            os.replace(src, out_dir / sub)
        else:
            (out_dir / sub).mkdir(parents=True)
    save_resolved(cfg, out_dir)
    write_json_atomic(out_dir / MANIFEST, manifest)


def label_from_config(
    cfg: Config,
    out_dir: Path,
    beam_args: list[str] | None = None,
    test_pipeline=None,
    teacher_path: str | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Run the label pipeline; return the manifest (also written to out_dir/manifest.json, last)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from zuoxiao.teacher.model import fingerprint, load_classifier, load_tokenizer, resolve_model_path

    t_start = time.perf_counter()
    lc = cfg.label
    if lc.input is None:
        raise ConfigError("label.input is missing: give the task rows to label, e.g. --set label.input.path=data.jsonl")
    members = lc.teacher.members
    if members and cfg.finetune is not None:
        raise ConfigError("label.teacher.members and finetune are both set, and the label stage uses the fine-tuned "
                          "teacher: remove one (ensemble fine-tuned teachers by listing their directories as members)")
    out_dir = Path(out_dir)
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
    files = input_files(lc.input)
    check_columns(files, lc.input)
    label_names, label_source = resolve_label_names(cfg, teacher_path, files)
    llm = lc.teacher.kind == "causal_lm" and cfg.finetune is None  # a fine-tuned teacher is a classifier
    if members or llm:
        from zuoxiao.teacher.model import load_teacher

        # an EnsembleClassifier (label names checked per member) or an LLMTeacher (examples drawn, prior fitted)
        model = load_teacher(lc.teacher, label_names, cfg, teacher_path)
    else:
        model = load_classifier(teacher_path, label_names, lc.teacher.trust_remote_code)
    fp = fingerprint(model)
    mask_token = load_tokenizer(teacher_path, lc.teacher.trust_remote_code).mask_token or "[MASK]"
    storage = storage_kind(len(label_names), lc.max_full_classes)
    flags = beam_flags(cfg, beam_args)
    try:
        options = PipelineOptions(flags)
        options.get_all_options()  # parse now: an unknown/ill-typed flag fails here, not mid-run
    except (SystemExit, ValueError) as err:
        raise ConfigError(f"bad Beam pipeline options {flags}: {err}; check label.beam and the flags after --") from None
    num_threads = worker_threads(cfg, options)

    out_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale_work(out_dir)
    work = out_dir / f".work-{uuid.uuid4().hex[:12]}"
    work.mkdir()
    cache = None
    cache_files: list[str] = []
    if cache_dir is not None:
        from zuoxiao.teacher.cache import TeacherCache

        cache = TeacherCache(cache_dir, fp, lc.teacher.max_length)
        cache_files = cache.valid_files()
    plan = {
        "cfg": cfg, "files": files, "label_names": label_names,
        "label_index": {n: i for i, n in enumerate(label_names)} if lc.input.label_column else None,
        "teacher_path": teacher_path, "fingerprint": fp, "num_threads": num_threads,
        "mask_token": mask_token, "cache_files": cache_files, "cache_enabled": cache is not None,
        "work_dir": str(work), "schema": schema_with_metadata(label_names, storage),
        "llm_recipe": model.recipe if llm else None,
    }
    t_setup = time.perf_counter()
    register_preloaded(teacher_path, fp, model)  # in-process workers reuse it instead of reloading
    try:
        if test_pipeline is not None:
            p = test_pipeline
        else:
            p = beam.Pipeline(runner=make_runner(options), options=options)
        build_graph(p, plan)
        result = p.run()
        result.wait_until_finish()
        metrics = _metric_sums(result)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        forget_preloaded(teacher_path, fp)
    t_pipeline = time.perf_counter()

    shard_stats = [json.loads(f.read_text()) for f in sorted((work / "stats").glob("part-*.json"))]
    rej_stats = [json.loads(f.read_text()) for f in sorted((work / "stats").glob("rejected-*.json"))]
    rows = sum(s["rows"] for s in shard_stats)
    augmented = sum(s["augmented"] for s in shard_stats)
    rejected = sum(s["rows"] for s in rej_stats)
    reasons: dict[str, int] = {}
    for s in rej_stats:
        for k, v in s["reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    labeled = rows - augmented
    read = metrics.get("rows_read", labeled + rejected)
    if read != labeled + rejected:
        shutil.rmtree(work, ignore_errors=True)
        raise IntegrityError(f"label pipeline lost rows: read {read} but labeled {labeled} + rejected {rejected}; "
                             "this is a bug, please report it")
    if labeled == 0:
        log.warning("no row was labeled (%d rejected: %s); see %s/rejected", rejected, reasons, out_dir)
    shards = []
    for s in sorted(shard_stats, key=lambda s: s["file"]):
        shards.append({"file": s["file"], "rows": s["rows"], "sha256": sha256_file(work / s["file"]),
                       "bytes": (work / s["file"]).stat().st_size})
    rejected_files = [{"file": s["file"], "rows": s["rows"], "sha256": sha256_file(work / s["file"])}
                      for s in sorted(rej_stats, key=lambda s: s["file"])]
    teacher_s = metrics.get("teacher_ms", 0) / 1000
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "label_names": label_names,
        "label_source": label_source,
        "num_classes": len(label_names),
        "storage": storage,
        "top_k": lc.top_k if storage == "topk" else None,
        "counts": {
            "read": read, "labeled": labeled, "rejected": rejected,
            "truncated": sum(s["truncated"] for s in shard_stats),
            "truncated_augmented": sum(s["truncated_augmented"] for s in shard_stats),
            "augmented": augmented, "rows_in_shards": rows,
            "cache_hits": sum(s["cache_hits"] for s in shard_stats),
            "cache_misses": sum(s["cache_misses"] for s in shard_stats) if cache is not None else rows,
            "teacher_rows": metrics.get("teacher_rows"),
            "teacher_tokens": metrics.get("teacher_tokens"),
            "rejected_by_reason": dict(sorted(reasons.items())),
        },
        "shards": shards,
        "rejected_files": rejected_files,
        "data_hash": hashlib.sha256(json.dumps([(s["file"], s["sha256"]) for s in shards]).encode()).hexdigest(),
        "teacher": {"path": teacher_path, "resolved": resolve_model_path(teacher_path), "fingerprint": fp,
                    "max_length": lc.teacher.max_length, "num_threads": num_threads, "device": lc.teacher.device,
                    **({"members": [m.model_dump() for m in members], "combine": lc.teacher.combine}
                       if members else {}), **(model.describe() if llm else {})},
        "inputs": _input_fingerprints(files),
        "beam_options": flags,
        "timings": {"setup_s": round(t_setup - t_start, 3), "pipeline_s": round(t_pipeline - t_setup, 3),
                    "teacher_s": round(teacher_s, 3)},
        "config": cfg.model_dump(mode="json"),
    }
    if cache is not None:
        manifest["cache"] = {"dir": str(cache.dir), "files_read": len(cache_files)}
    _commit(out_dir, work, cfg, manifest)  # the manifest is now in place: the output is complete
    if cache is not None:
        parts = sorted((work / "cache").glob("*.parquet")) if (work / "cache").is_dir() else []
        try:
            cache.commit(parts)
            manifest["cache"].update(cache.evict(cfg.run.cache.max_rows))
        except OSError as err:  # the labels are done; a cache that cannot be written only costs time
            log.warning("teacher cache at %s not updated: %s", cache.dir, err)
    shutil.rmtree(work, ignore_errors=True)
    manifest["timings"]["total_s"] = round(time.perf_counter() - t_start, 3)
    return manifest


def run(argv: list[str] | None = None, test_pipeline=None) -> dict:
    """Beam-example entry point: our flags are parsed here, everything else goes to PipelineOptions."""
    from zuoxiao.core.config import load_config

    parser = argparse.ArgumentParser(prog="python -m pipelines.label", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/demo.yaml")
    parser.add_argument("--output", help="output dir (default <output_dir>/label)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    known, beam_args = parser.parse_known_args(argv)
    cfg = load_config(known.config, known.overrides)
    out = Path(known.output) if known.output else StagePaths(Path(cfg.output_dir)).label
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
