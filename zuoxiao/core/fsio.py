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

Failing in bounded time: Beam's S3 client retries a refused connection with its own exponential backoff
(7 retries from 5 s: over 10 minutes) and takes no timeout settings. So before the first write the
launcher (pipelines/commit.py) and each shard writer (pipelines/write.py) call ``check_store``: one
request with the connect/read timeouts and capped attempts of ``label.beam.object_store`` (carried to
workers as the ``--store_*`` pipeline options of ``StoreOptions``), then a StorageError (exit 2) naming
the endpoint and the setting. A store that dies in the middle of an upload is still Beam's to retry.
Other schemes (gs://, hdfs://) are not probed. A write that finds the local disk full raises DiskFull
naming the path and the bytes needed (``writing``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from zuoxiao.core.errors import StorageError, disk_full

RAW = CompressionTypes.UNCOMPRESSED  # never let Beam guess a codec from the file name
CHUNK = 1 << 20
SETTING = "label.beam.object_store"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class StoreOptions(PipelineOptions):
    """``label.beam.object_store`` as pipeline options, so workers of any runner read the same values."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--store_connect_timeout_s", type=float, default=10.0)
        parser.add_argument("--store_read_timeout_s", type=float, default=60.0)
        parser.add_argument("--store_max_attempts", type=int, default=3)


def configure(options) -> None:
    """Make FileSystems use these pipeline options (S3 endpoint/credentials, GCS project ...)."""
    FileSystems.set_options(options)


def options_for_workers() -> dict:
    """The options configure() was given, as a dict that travels inside a DoFn (``configure_worker``).

    Beam's SDK harness gets the pipeline options from its runner (sdk_worker_main sets them on
    FileSystems), but a bare harness, as Beam's worker pool starts it for an EXTERNAL environment
    without a container executable, gets none: FileSystems there would reach S3 with no endpoint, no
    credentials and no store_* limits. So every DoFn of the label stage that writes carries these."""
    opts = FileSystems._pipeline_options
    return opts.get_all_options(drop_default=True) if isinstance(opts, PipelineOptions) else {}


def configure_worker(options: dict) -> None:
    """In a worker: use the options a DoFn carried, unless the harness already set some."""
    if options and FileSystems._pipeline_options is None:
        FileSystems.set_options(PipelineOptions.from_dictionary(options))


class InWorker:
    """``fn`` with the launcher's filesystem options, for a beam.Map that writes: configures the worker's
    FileSystems (configure_worker) before each call."""

    def __init__(self, fn):
        self.fn, self.options = fn, options_for_workers()
        self.__name__ = getattr(fn, "__name__", "fn")

    def __call__(self, *args, **kwargs):
        configure_worker(self.options)
        return self.fn(*args, **kwargs)


def _options() -> PipelineOptions:
    """The pipeline options FileSystems uses here: the launcher's (configure) or a Beam worker's."""
    opts = FileSystems._pipeline_options  # set by configure() and by Beam's SDK worker harness
    if isinstance(opts, PipelineOptions):
        return opts
    return PipelineOptions.from_dictionary(dict(opts or {}))


def check_store(path: str) -> None:
    """For an s3:// path: one HEAD of its bucket within the connect/read timeouts and attempts of
    label.beam.object_store, else StorageError naming the endpoint and the setting. Other paths: no-op."""
    if FileSystems.get_scheme(str(path)) != "s3":
        return
    import botocore.config
    import botocore.exceptions
    from apache_beam.io.aws.clients.client_options import get_client_kwargs
    from apache_beam.options.pipeline_options import S3Options

    opts = _options()
    store = opts.view_as(StoreOptions)
    kwargs = get_client_kwargs(opts, S3Options)
    endpoint = kwargs.get("endpoint_url") or "the default AWS S3 endpoint"
    limits = (f"{SETTING}: connect_timeout_s={store.store_connect_timeout_s:g}, read_timeout_s="
              f"{store.store_read_timeout_s:g}, max_attempts={store.store_max_attempts}")
    config = botocore.config.Config(connect_timeout=store.store_connect_timeout_s,
                                    read_timeout=store.store_read_timeout_s,
                                    retries={"max_attempts": store.store_max_attempts, "mode": "standard"})
    import boto3

    bucket = str(path)[len("s3://"):].split("/", 1)[0]
    try:
        boto3.session.Session().client("s3", config=config, **kwargs).head_bucket(Bucket=bucket)
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError) as err:
        raise StorageError(f"the object store at {endpoint} did not answer for {path} ({err}) within {limits}; "
                           "check --s3_endpoint_url and that the store is up and reachable from here, or raise "
                           f"those limits in {SETTING}") from None
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "?")
        raise StorageError(f"the object store at {endpoint} refused bucket {bucket!r} for {path} ({code}: {err}); "
                           "check that the bucket exists and the credentials (--s3_access_key_id ...) may use it"
                           ) from None


@contextlib.contextmanager
def writing(path: str, nbytes: int | None = None):
    """Turn a full disk (ENOSPC / EDQUOT) during the block into DiskFull naming ``path`` and ``nbytes``."""
    try:
        yield
    except OSError as err:
        if err.errno in _DISK_FULL:
            raise disk_full(path, nbytes) from err
        raise


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


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (complete once this returns). A full disk is DiskFull, reported after the
    partial file is removed: the free space it names is what the rerun gets."""
    try:
        f = create(path)
        try:
            f.write(data)
            _close_durably(f)
        finally:
            if not f.closed:
                with contextlib.suppress(OSError):
                    f.close()
    except OSError as err:
        if err.errno not in _DISK_FULL:
            raise
        if is_local(path):
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise disk_full(path, len(data)) from err


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write a hidden temp file beside ``path``, then rename it over ``path``."""
    parent, name = path.rsplit("/", 1)
    tmp = join(parent, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    write_bytes(tmp, data)
    move(tmp, path)


def move(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst`` (replacing it). Across schemes (e.g. s3 -> local): copy then delete."""
    if is_local(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    if FileSystems.get_scheme(src) == FileSystems.get_scheme(dst):
        FileSystems.rename([src], [dst])
        return
    tmp = f"{dst}.tmp-{uuid.uuid4().hex[:8]}"
    with open_read(src) as fin, writing(dst, FileSystems.match([src])[0].metadata_list[0].size_in_bytes):
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
