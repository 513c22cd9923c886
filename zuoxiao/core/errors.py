"""Errors that the CLI turns into documented exit codes.

Exit codes (also in the README):
  0  ok
  1  unexpected internal error (a bug: please report it with the traceback)
  2  bad config or bad input (the message names the key/value and the fix)
  3  quality gate failed: nothing was published
     (also: an object store that does not answer in time, a full disk: the message names the
     endpoint and the setting, or the path and the space needed)
  4  another run holds the lock on this output directory
  5  data integrity: a shard, manifest or checkpoint does not match what was recorded
  130 interrupted (Ctrl-C / SIGINT): nothing half-written is committed; rerun to continue
"""

from __future__ import annotations

import errno
import os
import re
import shutil

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3
EXIT_LOCKED = 4
EXIT_INTEGRITY = 5
EXIT_INTERRUPTED = 130


class ZuoxiaoError(Exception):
    """Base class: an error with a user-facing message and an exit code."""

    exit_code = EXIT_INTERNAL


class ConfigError(ZuoxiaoError):
    """The config is invalid. ``problems`` holds one line per problem (key, value, fix)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: list[str] | str, source: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        head = f"invalid config {source}" if source else "invalid config"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


class InputError(ZuoxiaoError):
    """Input data or a path is unusable (missing file, unknown format, no rows...)."""

    exit_code = EXIT_BAD_INPUT


class IntegrityError(ZuoxiaoError):
    """A shard, manifest or checkpoint does not match its recorded checksum/schema."""

    exit_code = EXIT_INTEGRITY


class GateFailed(ZuoxiaoError):
    """The quality gate refused to publish; ``result`` holds what was measured (a ShipResult or a dict)."""

    exit_code = EXIT_GATE_FAILED

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class LockHeld(ZuoxiaoError):
    """Another run holds the output directory's lock."""

    exit_code = EXIT_LOCKED


class StorageError(ZuoxiaoError):
    """A filesystem or object store cannot take the stage's reads or writes: an endpoint that refuses or
    does not answer within label.beam.object_store's timeouts and retries (zuoxiao.core.fsio.check_store),
    a bucket that is missing or forbidden. The message names the endpoint and the setting."""

    exit_code = EXIT_BAD_INPUT


class DiskFull(StorageError):
    """No space left on the device (or over quota) while writing an output: the message names the path,
    the bytes needed and free. Outputs are committed last (manifest / .done.json), so nothing was marked
    complete; freeing space and rerunning starts clean."""


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# How libraries report a full disk when they do not raise OSError: Beam re-raises a worker's OSError as
# text ("OSError: [Errno 28] No space left on device [while running ...]"), safetensors as "I/O error:
# No space left on device (os error 28)".
_DISK_FULL_TEXT = re.compile(r"No space left on device|os error 28|Errno 28\b|Disk quota exceeded|StorageFull")


def _fmt_bytes(n: int) -> str:
    return f"{n:,} bytes ({n / 2**20:.2f} MiB)"


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the filesystem holding ``path`` (its nearest existing parent); None if unknown."""
    p = os.path.abspath(os.fspath(path))
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def disk_full(path, needed: int | None = None) -> DiskFull:
    """The DiskFull error for a write of ``needed`` bytes (None: unknown) to ``path`` that ran out of space."""
    free = free_bytes(path) if path and "://" not in str(path) else None
    need = f"{_fmt_bytes(needed)} needed" if needed is not None else "more space needed"
    have = f", {_fmt_bytes(free)} free on its filesystem" if free is not None else ""
    return DiskFull(f"no space left on device writing {path or 'an output file'}: {need}{have}; free space there "
                    "or choose another output (--output / output_dir), then rerun: nothing was marked complete")


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from or while handling) is a full disk or quota."""
    return _disk_full_cause(err) is not None


def _disk_full_cause(err: BaseException) -> BaseException | None:
    """The DiskFull in the chain (a writer that named path and size), else the first full-disk error."""
    chain: list[BaseException] = []
    e: BaseException | None = err
    while e is not None and all(e is not c for c in chain):
        chain.append(e)
        e = e.__cause__ or e.__context__  # e.g. a failure report that hit the same full disk
    named = [c for c in chain if isinstance(c, DiskFull)]
    full = [c for c in chain if (isinstance(c, OSError) and c.errno in _DISK_FULL_ERRNOS)
            or _DISK_FULL_TEXT.search(str(c))]
    return (named or full or [None])[0]


# An OS error on a path is the environment's problem (exit 2), not a bug: permissions, a read-only or
# full disk, a file where a directory should be.
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                       errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG}
# Beam's multi-process workers send an exception back as text: "...zuoxiao.core.errors.InputError: msg
# [while running 'Step']". The class name and the first line of the message are enough to rebuild it.
_WRAPPED = re.compile(r"zuoxiao\.core\.errors\.(\w+): (.*?)(?: \[while running '[^']*'\])*$", re.M)


def _rebuild(cls: type[ZuoxiaoError], message: str) -> ZuoxiaoError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    if isinstance(err, ConfigError):
        err.problems, err.source = [message], None
    return err


def user_error(err: BaseException) -> BaseException:
    """The error to report for ``err``: a ZuoxiaoError or KeyboardInterrupt even where a Beam runner
    wrapped it (in-process runners re-raise a KeyboardInterrupt as `RuntimeError: KeyboardInterrupt
    [while running ...]`, multi-process ones send everything back as RuntimeError text), an InputError
    for an OS error about a path, else ``err`` itself (a bug: exit 1 with the traceback)."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        if isinstance(e, (ZuoxiaoError, KeyboardInterrupt)):
            return e
        seen.add(id(e))
        # Only explicit causes (`raise X from err`): an error raised *while handling* a ZuoxiaoError
        # (its __context__) may be a bug of its own and must stay exit 1.
        e = e.__cause__
    text = str(err)
    if isinstance(err, RuntimeError) and (text.startswith("KeyboardInterrupt")
                                          or "\nKeyboardInterrupt" in text):
        return KeyboardInterrupt()
    found = _WRAPPED.findall(text)
    classes = {c.__name__: c for c in (ConfigError, InputError, IntegrityError, GateFailed, LockHeld,
                                       StorageError, DiskFull)}
    if found and found[-1][0] in classes:
        return _rebuild(classes[found[-1][0]], found[-1][1])
    full = _disk_full_cause(err)
    if full is not None:  # a writer that did not name its path and size (a library deep inside a stage)
        return full if isinstance(full, DiskFull) else disk_full(getattr(full, "filename", None))
    if isinstance(err, OSError) and err.errno in _ENVIRONMENT_ERRNOS:
        where = f" {err.filename!s}" if err.filename else ""
        return InputError(f"cannot use{where}: {err.strerror or err}; check that the path exists, is a "
                          "directory where one is expected, is writable and the disk has space")
    return err
