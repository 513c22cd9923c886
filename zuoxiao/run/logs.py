"""Logs for terminals and for cron: progress bars only on a terminal, one progress line per N seconds elsewhere.

    with cli_logging(quiet=False, log_json=False):   # zuoxiao.cli main() wraps every command in this
        ...

On a terminal nothing changes (tqdm bars). When stderr is not a terminal (cron, `> log 2>&1`, CI, a
scheduler), a tqdm bar would write a carriage-return frame every 0.1 s into the log; instead every
``tqdm.auto.tqdm`` created inside the block is a ``LineProgress``: it draws nothing and logs one line
(``zuoxiao.progress`` logger) at start, every ZUOXIAO_PROGRESS_EVERY_S seconds (default 30) and at the end,
with count, rate and ETA. Library bars we do not create (Hugging Face hub / datasets) are switched off by
their environment variables. ``--quiet``: warnings and errors only (no progress lines either).
``--log-json``: one JSON object per log line ({"ts", "level", "logger", "msg"}) on stderr.

Everything is restored when the block exits (tests call the CLI in-process many times).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextlib import contextmanager

import tqdm as _tqdm_pkg
import tqdm.auto as _tqdm_auto
from tqdm.std import tqdm as _StdTqdm

#: Our loggers (cli.py sets them to INFO; --quiet to WARNING).
OWN_LOGGERS = ("zuoxiao", "pipelines", "teacher", "student")
#: Progress bars of libraries we do not construct ourselves, off when not on a terminal.
QUIET_BAR_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                 "TQDM_DISABLE": "1"}  # TQDM_DISABLE: default of any other bar (explicit disable= wins)
log = logging.getLogger("zuoxiao.progress")


def _hms(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class LineProgress(_StdTqdm):
    """A tqdm that never draws: it logs ``desc: n/total unit (pct) rate, elapsed, ETA`` lines instead."""

    every_s = 30.0

    def __init__(self, *args, **kwargs):
        self._zx_last, self._zx_logged_n = None, None
        kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed in close(); tqdm's own writes go here
        kwargs.pop("ncols", None)
        super().__init__(*args, **kwargs)

    def line(self) -> str:
        d = self.format_dict
        n, total, elapsed, unit = d["n"], d["total"], d["elapsed"], d.get("unit") or "it"
        rate = n / elapsed if elapsed > 0 and n else None
        parts = [f"{d.get('prefix') or 'progress'}: {n}" + (f"/{total}" if total else "") + f" {unit}"]
        if total:
            parts.append(f"({n / total:.0%})")
        parts.append(f"{rate:.3g} {unit}/s" if rate else f"? {unit}/s")
        parts.append(f"elapsed {_hms(elapsed)}")
        if total:
            parts.append(f"ETA {_hms((total - n) / rate if rate else None)}")
        return " ".join(parts[:2]) + ", " + ", ".join(parts[2:])

    def display(self, msg=None, pos=None):
        now = time.monotonic()
        final = msg == "" or (self.total is not None and self.n >= self.total)  # close() or the last step
        due = self._zx_last is None or now - self._zx_last >= self.every_s
        if (due or final) and self.n != self._zx_logged_n:
            log.info(self.line())
            self._zx_last, self._zx_logged_n = now, self.n
        return True

    def close(self):
        if self.disable:
            return
        fp = self.fp
        try:
            super().close()
        finally:
            fp.close()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


@contextmanager
def cli_logging(quiet: bool = False, log_json: bool = False, stream=None):
    """Apply the terminal / cron logging policy for one CLI command; restore everything afterwards."""
    stream = stream or sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    saved_env = {k: os.environ.get(k) for k in QUIET_BAR_ENV}
    saved_tqdm = (_tqdm_auto.tqdm, _tqdm_pkg.tqdm)
    saved_levels = {n: logging.getLogger(n).level for n in OWN_LOGGERS}
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    try:
        if quiet:
            for name in OWN_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        if not tty or quiet or log_json:
            os.environ.update(QUIET_BAR_ENV)
            LineProgress.every_s = float(os.environ.get("ZUOXIAO_PROGRESS_EVERY_S", "30"))
            _tqdm_auto.tqdm = _tqdm_pkg.tqdm = LineProgress  # modules import tqdm.auto lazily, after this
        if log_json:  # replace the plain-text handlers of stderr with a JSON one
            handler = logging.StreamHandler(stream)
            handler.setFormatter(_JsonFormatter())
            root.handlers = [h for h in root.handlers if getattr(h, "stream", None) not in (sys.stderr, stream)]
            root.addHandler(handler)
        yield
    finally:
        _tqdm_auto.tqdm, _tqdm_pkg.tqdm = saved_tqdm
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
        root.handlers = saved_root[0]
        root.setLevel(saved_root[1])
