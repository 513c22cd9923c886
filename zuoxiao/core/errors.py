"""Errors that the CLI turns into documented exit codes.

Exit codes (also in the README):
  0  ok
  1  unexpected internal error (a bug: please report it with the traceback)
  2  bad config or bad input (the message names the key/value and the fix)
  3  quality gate failed: nothing was published
  4  another run holds the lock on this output directory
  5  data integrity: a shard, manifest or checkpoint does not match what was recorded
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3
EXIT_LOCKED = 4
EXIT_INTEGRITY = 5


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
