"""The soft-label shard format: one pyarrow schema, the manifest, and their checks.

Written by the label pipeline (pipelines/label.py) and read by the student (student/data.py); both
import SHARD_SCHEMA from here so the two sides cannot drift.

A label output directory holds:
    shards/part-00000-of-00003.parquet ...   soft labels (zstd, compliant nested lists)
    rejected/rejected-*.parquet               dead-letter rows: original row (JSON) + reason
    manifest.json                             written LAST: its presence marks the output complete

The directory may be local or a URI (``s3://bucket/prefix``, ``gs://...``): readers resolve it with
``resolve_filesystem`` to a pyarrow filesystem. S3 settings come from the environment:
AWS_ENDPOINT_URL (e.g. ``http://127.0.0.1:9000`` for MinIO/moto; unset = AWS), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_REGION / AWS_DEFAULT_REGION.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.manifest import Manifest

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

#: Per-row soft labels. For C <= max_full_classes, `logits` holds all C raw teacher logits (float32) and
#: the top-k columns are null. Above it, `logits` is null and `topk_indices` / `topk_logprobs` hold the k
#: most likely classes (log-softmax at T=1) with `residual_mass` = 1 - sum(exp(topk_logprobs)).
SHARD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("gold", pa.int32(), nullable=True),  # gold label index, null when unlabelled
        pa.field("augmented", pa.bool_(), nullable=False),  # true for rows made by augmentation
        pa.field("teacher_argmax", pa.int32(), nullable=False),
        pa.field("confidence", pa.float32(), nullable=False),  # max softmax probability
        pa.field("entropy", pa.float32(), nullable=False),  # nats, of the teacher softmax
        pa.field("num_tokens", pa.int32(), nullable=False),  # teacher tokens before truncation
        pa.field("truncated", pa.bool_(), nullable=False),
        pa.field("logits", pa.list_(pa.field("element", pa.float32(), nullable=False)), nullable=True),
        pa.field("topk_indices", pa.list_(pa.field("element", pa.int32(), nullable=False)), nullable=True),
        pa.field("topk_logprobs", pa.list_(pa.field("element", pa.float32(), nullable=False)), nullable=True),
        pa.field("residual_mass", pa.float32(), nullable=False),
        # OPTIONAL: the teacher's sentence representation (first-token final hidden state) [D], fp16, written
        # when label.store_representation is on (D = manifest teacher.repr_dim); null otherwise. Shards
        # written before this column existed lack it and stay readable: readers treat it as all-null.
        pa.field("teacher_repr", pa.list_(pa.field("element", pa.float16(), nullable=False)), nullable=True),
    ]
)

#: Columns a shard may lack (older shards): readers check the rest exactly and read these only if present.
OPTIONAL_COLUMNS = ("teacher_repr",)

#: Dead-letter rows: nothing read is ever dropped silently.
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),  # file the row came from
        pa.field("row", pa.string()),  # the original row as JSON (bytes shown as latin-1 repr)
        pa.field("reason", pa.string()),  # machine-friendly code, e.g. "empty_text"
        pa.field("detail", pa.string()),  # human message
    ]
)


def required_schema() -> pa.Schema:
    """SHARD_SCHEMA without OPTIONAL_COLUMNS: what every readable shard has."""
    return pa.schema([f for f in SHARD_SCHEMA if f.name not in OPTIONAL_COLUMNS])


def schema_with_metadata(label_names: list[str], storage: str, optional_columns: bool = False) -> pa.Schema:
    """SHARD_SCHEMA plus metadata that readers need: label names, schema version, storage kind.

    ``optional_columns`` keeps OPTIONAL_COLUMNS (the label stage always writes them, null when off);
    without it the schema is the required columns only (what shards written before them look like).
    """
    schema = SHARD_SCHEMA if optional_columns else required_schema()
    return schema.with_metadata(
        {
            b"zuoxiao.schema_version": str(SCHEMA_VERSION).encode(),
            b"zuoxiao.label_names": json.dumps(label_names).encode(),
            b"zuoxiao.storage": storage.encode(),  # "full" or "topk"
        }
    )


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str | Path, obj: dict) -> None:
    """Write to a temp file, fsync, rename: a reader sees the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_uri(path: str | Path) -> bool:
    """True for ``scheme://...`` (s3, gs, hdfs ...); local paths and ``file://`` are not URIs here."""
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


def _s3_from_env() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict = {}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"],
                      secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                      session_token=os.environ.get("AWS_SESSION_TOKEN"))
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def resolve_filesystem(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """A local path or URI -> (pyarrow filesystem, path inside it).

    ``s3://bucket/key`` -> S3FileSystem configured from the AWS_* environment (module docstring) and
    ``bucket/key``; other URIs (gs://, hdfs://) -> pyarrow's own ``FileSystem.from_uri``; anything else
    -> the local filesystem and an absolute path.
    """
    if not is_uri(path):
        p = str(path)[len("file://"):] if str(path).startswith("file://") else str(path)
        return pafs.LocalFileSystem(), os.path.abspath(p)
    if str(path).startswith("s3://"):
        return _s3_from_env(), str(path)[len("s3://"):].rstrip("/")
    try:
        return pafs.FileSystem.from_uri(str(path))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
        raise IntegrityError(f"cannot open {path}: {err}; use a local path, s3:// or gs://") from None


def _join(label_dir: str | Path, rel: str) -> str | Path:
    return f"{str(label_dir).rstrip('/')}/{rel}" if is_uri(label_dir) else Path(label_dir) / rel


def open_shard(path: str | Path):
    """What pyarrow.parquet reads: local paths unchanged; URIs as a random-access file on their filesystem."""
    if not is_uri(path):
        return path
    fs, inner = resolve_filesystem(path)
    try:
        return fs.open_input_file(inner)
    except OSError as err:
        raise IntegrityError(f"cannot read shard {path}: {err}; check the AWS_* settings or relabel") from None


def _sha256_fs(fs: pafs.FileSystem, path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(label_dir: str | Path, verify_checksums: bool = True) -> Manifest:
    """Load and check a label output (a local dir or a URI). Raises IntegrityError naming the problem and the fix."""
    fs, root = resolve_filesystem(label_dir)
    mpath = _join(label_dir, MANIFEST)
    try:
        if fs.get_file_info(f"{root}/{MANIFEST}").type != pafs.FileType.File:
            raise FileNotFoundError(mpath)
        with fs.open_input_stream(f"{root}/{MANIFEST}") as f:
            text = f.read().decode()
    except FileNotFoundError:
        raise IntegrityError(
            f"{label_dir} has no {MANIFEST}: the label stage did not finish there (or this is not a label "
            "output directory); rerun `zuoxiao label` or point at a completed output"
        ) from None
    except OSError as err:
        raise IntegrityError(f"cannot read {mpath}: {err}; check the path (and the AWS_* settings for s3://)") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as err:
        raise IntegrityError(f"{mpath} is not valid JSON ({err}); rerun the label stage") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise IntegrityError(
            f"{mpath}: shard schema_version {version!r} but this zuoxiao reads version {SCHEMA_VERSION}; "
            "relabel with this version of zuoxiao"
        )
    manifest = Manifest.parse(manifest, mpath)
    for shard in manifest.shards:
        p, inner = _join(label_dir, shard.file), f"{root}/{shard.file}"
        if fs.get_file_info(inner).type != pafs.FileType.File:
            raise IntegrityError(f"shard {p} listed in the manifest is missing; relabel or restore it")
        if verify_checksums and _sha256_fs(fs, inner) != shard.sha256:
            raise IntegrityError(
                f"shard {p} does not match the sha256 in {mpath} (corrupt or modified); relabel or restore it"
            )
    return manifest


def shard_paths(label_dir: str | Path, manifest: Manifest) -> list:
    """Shard locations: Paths for a local dir, URI strings otherwise (open either with ``open_shard``)."""
    return [_join(label_dir, s.file) for s in manifest.shards]
