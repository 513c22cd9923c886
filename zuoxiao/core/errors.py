"""Errors that the CLI turns into documented exit codes.

Exit codes (also in the README):
  0  ok
  1  unexpected internal error (a bug: please report it with the traceback)
  2  bad config or bad input (the message names the key/value and the fix)
  3  quality gate failed: nothing was published
  4  another run holds the lock on this output directory
  5  data integrity: a shard, manifest or checkpoint does not match what was recorded
  130 interrupted (Ctrl-C / SIGINT): nothing half-written is committed; rerun to continue
"""

from __future__ import annotations

import errno
import re

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
    classes = {c.__name__: c for c in (ConfigError, InputError, IntegrityError, GateFailed, LockHeld)}
    if found and found[-1][0] in classes:
        return _rebuild(classes[found[-1][0]], found[-1][1])
    if isinstance(err, OSError) and err.errno in _ENVIRONMENT_ERRNOS:
        where = f" {err.filename!s}" if err.filename else ""
        return InputError(f"cannot use{where}: {err.strerror or err}; check that the path exists, is a "
                          "directory where one is expected, is writable and the disk has space")
    return err
