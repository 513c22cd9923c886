"""The launcher's half of the label sink: read the pipeline's summary, then commit its files.

Runs in the process that launched the pipeline, after it succeeded, through Beam's FileSystems so the
output may be any Beam path (local, gs://, s3://). The order makes every crash safe:

    1. the old manifest is deleted   -> from here on the output reads as incomplete
    2. old shards / rejected files are deleted, the new ones renamed from the temp dir into place
    3. every committed file is read back through FileSystems for its sha256 and size
    4. config.resolved.yaml, then manifest.json (temp file + rename) LAST

A run killed anywhere in between leaves no manifest (readers refuse the directory) and a temp dir
that the next run deletes.
"""

from __future__ import annotations

import json
import logging
import math

import yaml

from zuoxiao.core import fsio
from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.manifest import Manifest, data_hash
from zuoxiao.core.shards import MANIFEST
from zuoxiao.pipelines.write import SUMMARY

log = logging.getLogger(__name__)

WORK_PREFIX = ".work-"
SUBDIRS = ("shards", "rejected")


def clean_stale_work(out_dir: str) -> None:
    """Temp dirs of runs that died (kill -9): never referenced by a manifest, safe to drop.

    The launcher's first touch of the output: an object store that does not answer fails here, in the
    time label.beam.object_store allows (fsio.check_store), before any compute."""
    fsio.check_store(out_dir)
    if fsio.is_local(out_dir):
        import glob

        for stale in glob.glob(fsio.join(out_dir, WORK_PREFIX + "*")):
            fsio.delete_tree(stale)
    else:
        fsio.delete_files(fsio.list_files(fsio.join(out_dir, WORK_PREFIX + "*", "**")))


def read_summary(temp_dir: str) -> dict:
    """The counts the pipeline wrote (write.WriteSummary): {'read': n, 'files': [per-file counts]}."""
    return json.loads(fsio.read_bytes(fsio.join(temp_dir, SUMMARY)))


def summary_counts(summary: dict, cache_enabled: bool) -> tuple[dict, list[dict], list[dict]]:
    """The pipeline's summary -> (manifest counts, shard entries, rejected entries); checks no row was lost."""
    shard_stats = [s for s in summary["files"] if s["kind"] == "shards"]
    rej_stats = [s for s in summary["files"] if s["kind"] == "rejected"]
    rows = sum(s["rows"] for s in shard_stats)
    augmented = sum(s["augmented"] for s in shard_stats)
    rejected = sum(s["rows"] for s in rej_stats)
    reasons: dict[str, int] = {}
    for s in rej_stats:
        for k, v in s["reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    labeled = rows - augmented
    read = summary["read"]
    if read != labeled + rejected:
        raise IntegrityError(f"label pipeline lost rows: read {read} but labeled {labeled} + rejected {rejected}; "
                             "this is a bug, please report it")
    total = lambda key: sum(s[key] for s in shard_stats)  # noqa: E731
    argmax: dict[str, int] = {}
    for s in shard_stats:
        for k, v in s.get("argmax_counts", {}).items():
            argmax[k] = argmax.get(k, 0) + v
    counts = {
        "read": read, "labeled": labeled, "rejected": rejected,
        "truncated": total("truncated"), "truncated_augmented": total("truncated_augmented"),
        "augmented": augmented, "rows_in_shards": rows,
        "cache_hits": total("cache_hits"),
        "cache_misses": total("cache_misses") if cache_enabled else rows,
        "teacher_rows": total("teacher_rows"), "teacher_tokens": total("teacher_tokens"),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "mean_entropy_nats": round(total("entropy_sum") / labeled, 6) if labeled else None,
        "teacher_argmax": dict(sorted(argmax.items(), key=lambda kv: int(kv[0]))),
    }
    # sha256 and bytes are filled in by commit(), from the committed files
    shards = [{"file": s["file"], "rows": s["rows"], "sha256": None, "bytes": None} for s in shard_stats]
    rejected_files = [{"file": s["file"], "rows": s["rows"], "sha256": None, "bytes": None} for s in rej_stats]
    return counts, shards, rejected_files


def soft_label_stats(counts: dict, label_names: list[str]) -> dict:
    """The label stage's headline numbers about the soft labels, from the pipeline's counts: mean teacher
    entropy in nats and as a share of ln(classes) (0 = one-hot, 1 = uniform: a teacher that says nothing),
    and how many labelled rows the teacher put in each class, most frequent first."""
    mean = counts.get("mean_entropy_nats")
    stats: dict = {"mean_entropy_nats": mean,
                   "entropy_fraction": round(mean / math.log(len(label_names)), 6)
                   if mean is not None and len(label_names) > 1 else None}
    dist = {label_names[int(k)]: v for k, v in (counts.get("teacher_argmax") or {}).items()}
    stats["label_distribution"] = dict(sorted(dist.items(), key=lambda kv: (-kv[1], kv[0])))
    return stats


def commit(out_dir: str, temp_dir: str, files: list[str], config: dict, manifest: Manifest) -> Manifest:
    """Move ``files`` (relative, e.g. 'shards/part-...') from temp_dir into out_dir, write the manifest.

    Fills the sha256 and size of every entry of ``manifest.shards`` / ``.rejected_files`` from the
    committed files, and ``manifest.data_hash`` from the shard checksums; returns the manifest.
    """
    fsio.delete_files([p for p in [fsio.join(out_dir, MANIFEST)] if fsio.exists(p)])
    for sub in SUBDIRS:
        fsio.delete_files(fsio.list_files(fsio.join(out_dir, sub, "*")))
    for rel in files:
        fsio.move(fsio.join(temp_dir, rel), fsio.join(out_dir, rel))
    if fsio.is_local(out_dir):  # readers list these folders; an object store has no empty folders
        import os

        for sub in SUBDIRS:
            os.makedirs(fsio.join(out_dir, sub), exist_ok=True)
    for entry in manifest.shards + manifest.rejected_files:
        entry.sha256, entry.bytes = fsio.sha256(fsio.join(out_dir, entry.file))
    manifest.data_hash = data_hash(manifest.shards)
    manifest.stats = soft_label_stats(manifest.counts, manifest.label_names)
    fsio.write_bytes_atomic(fsio.join(out_dir, "config.resolved.yaml"),
                            yaml.safe_dump(config, sort_keys=False).encode())
    fsio.write_bytes_atomic(fsio.join(out_dir, MANIFEST),
                            json.dumps(manifest.to_json(), indent=2, sort_keys=False, default=str).encode())
    return manifest
