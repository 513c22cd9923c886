"""Logs for cron (zuoxiao.run.logs): no progress-bar frames when stderr is not a terminal, progress lines with
rate and ETA instead, --quiet and --log-json; everything restored after the command."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import tqdm.auto

from zuoxiao.run.logs import LineProgress, cli_logging


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_not_a_terminal_gives_progress_lines_not_frames(capsys, caplog, monkeypatch):
    monkeypatch.setenv("ZUOXIAO_PROGRESS_EVERY_S", "0")
    original, env_before = tqdm.auto.tqdm, os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
    with caplog.at_level(logging.INFO, logger="zuoxiao.progress"), cli_logging(stream=io.StringIO()):
        bar_cls = tqdm.auto.tqdm  # what `from tqdm.auto import tqdm` gives a stage module imported now
        assert bar_cls is LineProgress and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
        for _ in bar_cls(range(40), desc="work", unit="batch"):
            pass
        with bar_cls(total=10, desc="steps", unit="step", disable=False) as bar:  # loop.py's explicit form
            bar.update(4)
    lines = [r.getMessage() for r in caplog.records if r.name == "zuoxiao.progress"]
    assert lines[0].startswith("work: 0/40 batch (0%)")
    assert any(line.startswith("work: 40/40 batch (100%), ") and "batch/s" in line and "ETA 00:00" in line
               for line in lines), lines
    assert lines[-1].startswith("steps: 4/10 step (40%)") and "ETA" in lines[-1]
    err = capsys.readouterr().err
    assert "\r" not in err and "|" not in err  # no bar drawn anywhere
    assert tqdm.auto.tqdm is original and os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == env_before


def test_terminal_keeps_bars_and_quiet_silences_progress():
    original = tqdm.auto.tqdm
    with cli_logging(stream=_Tty()):
        assert tqdm.auto.tqdm is original
    level = logging.getLogger("zuoxiao").level
    with cli_logging(quiet=True, stream=_Tty()):
        assert tqdm.auto.tqdm is LineProgress
        assert not logging.getLogger("zuoxiao.progress").isEnabledFor(logging.INFO)
    assert logging.getLogger("zuoxiao").level == level and tqdm.auto.tqdm is original


def test_log_json_lines():
    stream = io.StringIO()
    with cli_logging(log_json=True, stream=stream):
        logging.getLogger("zuoxiao.test").warning("disk %s", "full")
    record = json.loads(stream.getvalue().splitlines()[-1])
    assert record["level"] == "WARNING" and record["logger"] == "zuoxiao.test" and record["msg"] == "disk full"
    assert stream not in [getattr(h, "stream", None) for h in logging.getLogger().handlers]  # removed again


def test_cron_style_command_log_has_no_carriage_returns(tmp_path):
    """`zuoxiao compress CONFIG > log 2>&1` (stderr a file): progress lines, no carriage-return frames."""
    from tests.student.compress.compress_fixtures import make_stage_root
    from zuoxiao.core.config import save_resolved

    cfg, _ = make_stage_root(tmp_path / "job", steps=[{"kind": "quantize"}])
    config = save_resolved(cfg, tmp_path)
    log = tmp_path / "cron.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ZUOXIAO_PROGRESS_EVERY_S": "0"}
    env.pop("TQDM_DISABLE", None)
    with log.open("wb") as f:
        res = subprocess.run([sys.executable, "-m", "zuoxiao.cli", "compress", str(config)], stdout=f,
                             stderr=subprocess.STDOUT, env=env, timeout=300)
    text = log.read_bytes()
    assert res.returncode == 0, text.decode()[-3000:]
    assert b"\r" not in text
    assert b"zuoxiao.progress: compress steps: 1/1 it (100%)" in text and b"ETA" in text
