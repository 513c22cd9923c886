"""CLI messages of issue 13: `predict` on a run folder / output dir / missing `latest`, `--top-k`, and the
noise filter that drops exactly Beam's apitools warning and transformers' new-head load report."""

import json
import logging
import os

import pytest

from tests.ship.test_predict_input import _bundle
from zuoxiao.cli import main
from zuoxiao.core.errors import EXIT_BAD_INPUT
from zuoxiao.run.noise import BEAM_APITOOLS, install_noise_filters, is_new_head_report


def _run_folder(out, run_id, status, bundle_weights=None):
    d = out / "runs" / run_id
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"run_id": run_id, "status": status, "started_at": run_id}))
    if bundle_weights is not None:
        _bundle(d / "bundle", bundle_weights)
    return d


# ---- predict: where the bundle is ------------------------------------------------------------------------


def test_predict_missing_latest_says_no_run_passed_and_lists_runs(tmp_path, capsys):
    out = tmp_path / "outputs" / "x"
    _run_folder(out, "20250101T000000Z", "gate_failed")
    _run_folder(out, "20250102T000000Z", "running")
    code = main(["predict", str(out / "latest" / "bundle"), "good film"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "not a bundle" not in err and "no config.json" not in err
    assert f"{out / 'latest' / 'bundle'} does not exist" in err
    assert "no run in" in err and "has passed its quality gate yet" in err
    assert "20250101T000000Z (gate_failed)" in err and "20250102T000000Z (running)" in err
    assert "--run 20250101T000000Z --no-gate" in err  # what to do with the refused run


def test_predict_plain_missing_path_says_it_does_not_exist(tmp_path, capsys):
    code = main(["predict", str(tmp_path / "nowhere" / "bundle"), "good film"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and f"{tmp_path / 'nowhere' / 'bundle'} does not exist" in err
    assert "config.json" not in err


def test_predict_accepts_run_folder_output_dir_and_latest(tmp_path, capsys):
    out = tmp_path / "outputs" / "x"
    run = _run_folder(out, "20250101T000000Z", "passed", bundle_weights=[0.3, -0.3])
    os.symlink("runs/20250101T000000Z", out / "latest", target_is_directory=True)
    for arg in (run, out, out / "latest", out / "latest" / "bundle"):
        assert main(["predict", str(arg), "good film"]) == 0, arg
        captured = capsys.readouterr()
        assert json.loads(captured.out)[0]["label"] == "c0"
        if arg != out / "latest" / "bundle":
            assert "using the bundle" in captured.err and "bundle" in captured.err


def test_predict_uses_latest_json_without_the_symlink(tmp_path, capsys):
    out = tmp_path / "outputs" / "x"
    _run_folder(out, "r1", "passed", bundle_weights=[0.3, -0.3])
    (out / "latest.json").write_text(json.dumps({"run_id": "r1", "run_dir": "runs/r1", "bundle": "runs/r1/bundle"}))
    assert main(["predict", str(out / "latest" / "bundle"), "good film"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] == "c0"


def test_predict_run_folder_without_bundle_gives_its_status(tmp_path, capsys):
    run = _run_folder(tmp_path / "out", "r1", "gate_failed")
    assert main(["predict", str(run), "good film"]) == EXIT_BAD_INPUT
    assert "run folder without a bundle (status gate_failed)" in capsys.readouterr().err


# ---- predict --top-k -------------------------------------------------------------------------------------


WEIGHTS = [0.1, 0.7, -0.2, 0.5, 0.0, 0.9, -0.4]  # 7 classes; logits = tokens x w: c5 > c1 > c3 > c0 > c4 > ...


def test_top_k_default_five_most_probable_first(tmp_path, capsys):
    d = _bundle(tmp_path / "b", WEIGHTS)
    assert main(["predict", str(d), "good film", "bad"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:
        assert list(row["probabilities"]) == ["c5", "c1", "c3", "c0", "c4"]
        assert row["num_classes"] == 7 and row["label"] == "c5"
        assert sum(row["probabilities"].values()) < 1.0  # two left out, not renormalised


def test_top_k_n_json_and_text(tmp_path, capsys):
    d = _bundle(tmp_path / "b", WEIGHTS)
    assert main(["predict", str(d), "good film", "--top-k", "2"]) == 0
    assert list(json.loads(capsys.readouterr().out)[0]["probabilities"]) == ["c5", "c1"]
    assert main(["predict", str(d), "good film", "--top-k", "2", "--format", "text"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "'good film'" and len(lines) == 3
    assert lines[1].split()[0] == "c5" and lines[2].split()[0] == "c1"


def test_top_k_larger_than_classes_shows_all(tmp_path, capsys):
    d = _bundle(tmp_path / "b", WEIGHTS)
    assert main(["predict", str(d), "good film", "--top-k", "50"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["probabilities"]) == 7


@pytest.mark.parametrize("bad", ["0", "-3", "two"])
def test_top_k_below_one_is_an_argparse_error(tmp_path, capsys, bad):
    d = _bundle(tmp_path / "b", WEIGHTS)
    with pytest.raises(SystemExit) as exc:
        main(["predict", str(d), "good film", "--top-k", bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--top-k" in err and ("less than 1" in err or "not a whole number" in err)


# ---- noise filter ----------------------------------------------------------------------------------------

HEAD_REPORT = (
    "\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: /tmp/backbone\n"
    "Key               | Status  | \n------------------+---------+-\n"
    "classifier.weight | \x1b[31mMISSING\x1b[0m | \nclassifier.bias   | \x1b[31mMISSING\x1b[0m | \n\n"
    "Notes:\n- MISSING:\tthose params were newly initialized because missing from the checkpoint. "
    "Consider training on your downstream task."
)
ENCODER_REPORT = HEAD_REPORT.replace("classifier.bias  ", "bert.encoder.layer.0.attention.self.query.weight")


class _Catch(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_noise_filter_drops_exactly_the_noise():
    assert is_new_head_report(HEAD_REPORT)
    assert not is_new_head_report(ENCODER_REPORT)  # a real missing weight keeps the whole report
    assert not is_new_head_report("something else")
    install_noise_filters()
    install_noise_filters()  # idempotent
    catch = _Catch()
    root, hf = logging.getLogger(), logging.getLogger("transformers.modeling_utils")
    root.addHandler(catch)
    hf.addHandler(catch)
    try:
        logging.warning(BEAM_APITOOLS)
        logging.warning("apitools not found")  # not the exact message: kept
        logging.warning("a real warning")
        hf.warning(HEAD_REPORT)
        hf.warning(ENCODER_REPORT)
        hf.warning("Some other transformers warning")
    finally:
        root.removeHandler(catch)
        hf.removeHandler(catch)
    assert BEAM_APITOOLS not in catch.messages and HEAD_REPORT not in catch.messages
    assert "apitools not found" in catch.messages and "a real warning" in catch.messages
    assert ENCODER_REPORT in catch.messages and "Some other transformers warning" in catch.messages


def test_beam_import_warning_is_silenced_by_the_cli_filter():
    """The real message from the installed apache_beam, caught through the filter."""
    import importlib
    import sys

    install_noise_filters()
    catch = _Catch()
    logging.getLogger().addHandler(catch)
    try:
        sys.modules.pop("apache_beam.io.gcp.internal.clients.bigquery", None)
        importlib.import_module("apache_beam.io.gcp.internal.clients.bigquery")
    finally:
        logging.getLogger().removeHandler(catch)
    assert not [m for m in catch.messages if "apitools" in m]


def test_real_new_head_report_is_replaced_by_one_info_line(tmp_path, caplog):
    """transformers' own LOAD REPORT for a backbone that gets a head: matched by the filter as emitted,
    dropped once the CLI filter is on, and zuoxiao's INFO line says what happened instead."""
    from tests.run.conftest import build_tiny_backbone
    from zuoxiao.teacher.classifier import load_classifier

    backbone = build_tiny_backbone(tmp_path / "backbone")
    hf = logging.getLogger("transformers.modeling_utils")
    saved = list(hf.filters)
    catch = _Catch()
    hf.addHandler(catch)
    try:
        for f in saved:
            hf.removeFilter(f)
        load_classifier(str(backbone), ["a", "b", "c"])
        unfiltered = [m for m in catch.messages if "LOAD REPORT" in m]
        assert unfiltered and all(is_new_head_report(m) for m in unfiltered)  # the real format parses
        catch.messages.clear()
        install_noise_filters()
        with caplog.at_level(logging.INFO, logger="zuoxiao.teacher.classifier"):
            load_classifier(str(backbone), ["a", "b", "c"])
        assert not [m for m in catch.messages if "LOAD REPORT" in m]
        assert "new classification head for 3 labels" in caplog.text and "as intended" in caplog.text
    finally:
        hf.removeHandler(catch)
        for f in saved:
            if f not in hf.filters:
                hf.addFilter(f)


def test_a_ctrl_c_while_exiting_keeps_the_exit_code_and_says_so():
    """Python joins leftover non-daemon threads (Beam's, gRPC's) after main() returns; a Ctrl-C then must
    not turn a finished command into a silent SIGINT death (exit -2)."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import threading, time\n"
            "from zuoxiao import cli\n"
            "def fake_main(argv=None):\n"
            "    threading.Thread(target=time.sleep, args=(30,)).start()  # a thread shutdown must join\n"
            "    print('finished', flush=True)\n"
            "    return 0\n"
            "cli.main = fake_main\n"
            "cli.entry()\n")
    # a Ctrl-C as a terminal sends it: SIGINT at its default disposition (a CI job started in the background
    # inherits SIGINT ignored, and entry() then keeps ignoring it, as it should)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline().strip() == "finished"
        time.sleep(0.5)  # main() has returned; the interpreter waits for the thread
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted while exiting" in err and "already finished (exit 0)" in err
    assert "Traceback" not in err  # before: "Exception ignored in: <module 'threading'>" + KeyboardInterrupt
