"""Small helpers over Beam's FileSystems: the same calls work on local paths, gs://, s3:// (any Beam
filesystem that is installed and configured).

Writers of the label stage (Beam workers and the launching process) go through these, never through
``open``/``os.replace``: on Dataflow, Flink or Spark the workers do not share the launcher's disk, so a
file only exists for the others once it is on a filesystem they can all reach.

Semantics that differ between filesystems, and how they are handled here:
- directories: local rename needs the target directory; object stores have none. ``move`` creates
  the parent for local targets; ``delete_tree`` removes a local directory or every object under a
  prefix.
- atomic rename: local ``rename`` is atomic; on object stores it is copy+delete, but an object
  becomes visible whole (a single upload), so a reader still never sees half a file.

S3 needs ``apache-beam[aws]`` (boto3) and the S3 options (``--s3_endpoint_url``, ``--s3_access_key_id``,
...); call ``configure(options)`` in the launching process (Beam workers get them from the pipeline).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

RAW = CompressionTypes.UNCOMPRESSED  # never let Beam guess a codec from the file name
CHUNK = 1 << 20


def configure(options) -> None:
    """Make FileSystems use these pipeline options (S3 endpoint/credentials, GCS project ...)."""
    FileSystems.set_options(options)


def is_local(path: str) -> bool:
    return FileSystems.get_scheme(str(path)) in (None, "file")


def norm(path) -> str:
    """A path as FileSystems wants it: URIs unchanged, local paths absolute strings."""
    path = str(path)
    return path if not is_local(path) else os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    return FileSystems.join(str(base), *parts)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def list_files(pattern: str) -> list[str]:
    """Files matching a glob (``*`` stays inside one folder, ``**`` crosses them), sorted by path."""
    return sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)


def open_read(path: str):
    """A seekable binary reader (pyarrow can read Parquet from it)."""
    return FileSystems.open(path, mime_type="application/octet-stream", compression_type=RAW)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def create(path: str):
    """A binary writer; the file appears (local: is complete) when it is closed."""
    if is_local(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return FileSystems.create(path, mime_type="application/octet-stream", compression_type=RAW)


def _close_durably(f) -> None:
    """Flush and, where there is a local file descriptor, fsync before closing."""
    f.flush()
    try:
        os.fsync(f.fileno())
    except (AttributeError, OSError, ValueError):  # object stores: the upload completes on close
        pass
    f.close()


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write a hidden temp file beside ``path``, then rename it over ``path``."""
    parent, name = path.rsplit("/", 1)
    tmp = join(parent, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    f = create(tmp)
    f.write(data)
    _close_durably(f)
    move(tmp, path)


def move(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst`` (replacing it). Across schemes (e.g. s3 -> local): copy then delete."""
    if is_local(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    if FileSystems.get_scheme(src) == FileSystems.get_scheme(dst):
        FileSystems.rename([src], [dst])
        return
    tmp = f"{dst}.tmp-{uuid.uuid4().hex[:8]}"
    with open_read(src) as fin:
        fout = create(tmp)
        while block := fin.read(CHUNK):
            fout.write(block)
        _close_durably(fout)
    FileSystems.rename([tmp], [dst])
    FileSystems.delete([src])


def delete_files(paths: Iterable[str]) -> None:
    paths = list(paths)
    if paths:
        FileSystems.delete(paths)


def delete_tree(path: str) -> None:
    """Remove a local directory, or every object under ``path/`` on an object store. Missing: no-op."""
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        delete_files(list_files(join(path, "**")))


def sha256(path: str) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file, streamed back through FileSystems."""
    h, size = hashlib.sha256(), 0
    with open_read(path) as f:
        while block := f.read(CHUNK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size
