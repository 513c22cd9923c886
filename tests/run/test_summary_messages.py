"""The run summary's words after a gate failure (issue 13): what is true about `latest`, the failing checks
as measured vs required, and paths printed whole (never cut with "…"), plus where `export` finds its input."""

import json
import os
from io import StringIO

import pytest
from rich.console import Console

from tests.run.fake_stages import FAKES
from zuoxiao.core.config import load_config
from zuoxiao.core.errors import InputError
from zuoxiao.run.locate import compress_source
from zuoxiao.run.runner import run_job
from zuoxiao.run.summary import gate_cell


def _run(cfg_path, width=60):
    buf = StringIO()
    summary = run_job(load_config(cfg_path), stage_fns=FAKES, console=Console(file=buf, width=width))
    return summary, buf.getvalue()


def test_first_run_gate_failure_says_there_is_no_latest(fake_job):
    summary, text = _run(fake_job(run__run_id="first", ship__gate__min_retention=0.99))
    assert summary["status"] == "gate_failed"
    assert "still points" not in text
    assert "no run has passed its gate yet, so there is no" in text
    assert str(fake_job.out / "latest") in text  # the path, whole, on one line
    assert str(fake_job.out / "runs" / "first" / "summary.json") in text
    assert "zuoxiao export CONFIG --run first --no-gate" in text
    assert "…" not in text


def test_later_gate_failure_names_the_run_latest_points_at(fake_job):
    _run(fake_job(run__run_id="good"))
    _, text = _run(fake_job(run__run_id="bad", ship__gate__min_retention=0.99))
    assert "'latest' still points at the last run that passed, good" in text
    assert "no run has passed" not in text


def test_long_paths_are_never_cut(fake_job, tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "out"
    _, text = _run(fake_job(run__run_id="r1", output_dir=str(deep), ship__gate__min_retention=0.99), width=50)
    assert "…" not in text
    assert str(deep / "runs" / "r1" / "summary.json") in text  # soft-wrapped: whole, on one line
    assert str(deep / "runs" / "r1" / "logs" / "events.jsonl") in text


def test_gate_cell_shows_failing_checks_measured_vs_required():
    gate = {"passed": False, "message": "gate: FAILED\n  ...",
            "checks": [{"name": "finite_outputs", "value": 0, "limit": 0, "ok": True},
                       {"name": "min_retention", "value": 0.912345, "limit": 0.95, "ok": False},
                       {"name": "max_size_mb", "value": 31.2, "limit": 20, "ok": False},
                       {"name": "max_latency_ms_p50", "value": 3.0, "limit": 10, "ok": True}]}
    cell = gate_cell(gate)
    assert cell == "FAILED: min_retention 0.9123 (needs >= 0.95); max_size_mb 31.2 (needs <= 20)"
    assert "gate: FAILED" not in cell
    assert gate_cell({"passed": True, "checks": []}) == "PASSED" and gate_cell(None) == "not run"
    # a gate without checks (an older record): the reason, once
    assert gate_cell({"passed": False, "message": "retention 0.978 < min_retention 0.99"}) == \
        "FAILED: retention 0.978 < min_retention 0.99"


def test_summary_table_cell_is_not_redundant(fake_job):
    _, text = _run(fake_job(run__run_id="r1", ship__gate__min_retention=0.99), width=200)
    assert "FAILED: gate: FAILED" not in text
    assert "FAILED: min_retention 0.9778 (needs >= 0.99)" in text  # the fake gate's check, measured vs required


# ---- where `export` finds the compress output ---------------------------------------------------------


def _fake_run(out, run_id, status="gate_failed", compress=True):
    d = out / "runs" / run_id
    (d / "compress").mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"run_id": run_id, "status": status, "started_at": run_id}))
    if compress:
        (d / "compress" / "report.json").write_text("{}")
    return d


def test_export_source_neither_place_names_both(tmp_path):
    with pytest.raises(InputError) as err:
        compress_source(tmp_path / "out", None)
    msg = str(err.value)
    assert str(tmp_path / "out" / "compress" / "report.json") in msg and "zuoxiao compress CONFIG" in msg
    assert str(tmp_path / "out" / "runs") in msg and "zuoxiao run CONFIG" in msg


def test_export_source_prefers_standalone_then_newest_run(tmp_path):
    out = tmp_path / "out"
    _fake_run(out, "2025a")
    newest = _fake_run(out, "2025b")
    _fake_run(out, "2025c", status="failed", compress=False)  # died before compress: skipped
    src, note = compress_source(out, None)
    assert src == newest and "using the compress output of run 2025b" in note and "--run" in note
    (out / "compress").mkdir()
    (out / "compress" / "report.json").write_text("{}")
    assert compress_source(out, None) == (out, None)  # `zuoxiao compress` output first, as before


def test_export_source_run_choices(tmp_path):
    out = tmp_path / "out"
    a = _fake_run(out, "2025a", status="passed")
    _fake_run(out, "2025b")
    assert compress_source(out, "2025a")[0] == a
    assert compress_source(out, str(a))[0] == a
    with pytest.raises(InputError, match="no run in .* has passed its quality gate yet"):
        compress_source(out, "latest")
    os.symlink("runs/2025a", out / "latest", target_is_directory=True)
    assert compress_source(out, "latest")[0] == out / "latest"
    with pytest.raises(InputError, match=r"--run nope: neither a run id .*2025b \(gate_failed\)"):
        compress_source(out, "nope")
    _fake_run(out, "2025c", compress=False)
    with pytest.raises(InputError, match="did not finish its compress stage"):
        compress_source(out, "2025c")
