"""`zuoxiao export` after `zuoxiao run`, and an export that overrides the gate (issue 13): the bundle's card,
shipped.json and the console record the gate as configured, its failed checks and who overrode it."""

import json
import shutil

import yaml

from tests.student.compress.compress_fixtures import compressed_stage
from zuoxiao.cli import main
from zuoxiao.core.errors import EXIT_BAD_INPUT

RUN_ID = "20250101T000000Z"


def _copy_job(tmp_path, gate: dict, into_run: bool = False):
    """A copy of the compressed tiny job (no bundle yet) and its config with ``gate`` as ship.gate."""
    cfg, paths, _ = compressed_stage()
    out = tmp_path / "out"
    root = out / "runs" / RUN_ID if into_run else out
    shutil.copytree(paths.root, root, ignore=shutil.ignore_patterns("bundle", "ship", ".bundle*"))
    if into_run:
        (root / "run.json").write_text(json.dumps({"run_id": RUN_ID, "status": "gate_failed", "started_at": RUN_ID}))
    raw = cfg.model_dump(mode="json")
    raw["output_dir"] = str(out)
    raw["ship"]["gate"] = gate
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, out


def test_no_gate_export_records_the_failed_configured_gate(tmp_path, capsys):
    config, out = _copy_job(tmp_path, {"min_retention": 0.5, "max_size_mb": 0.001})
    assert main(["export", str(config), "--no-gate"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: the quality gate as configured FAILED (max_size_mb" in err
    assert "published anyway because of --no-gate" in err
    card = (out / "bundle" / "README.md").read_text()
    section = card.split("## Quality gate", 1)[1].split("\n## ", 1)[0]
    assert "**Published although the quality gate as configured FAILED.**" in section
    assert "- max_size_mb: model + tokenizer + config" in section and "(limit 0.001) — FAILED" in section
    assert "Override: `--no-gate` (publish whatever the verdict), by " in section and "Z." in section
    assert section.count("- max_size_mb") == 1  # the gate applied is the configured one: listed once
    assert "no bounds configured" not in section
    shipped = json.loads((out / "ship" / "shipped.json").read_text())
    override = shipped["override"]
    assert shipped["published"] is True and override["flags"] == ["--no-gate"] and override["publish_anyway"]
    assert override["configured_gate"]["passed"] is False and "@" in override["by"] and override["at"]
    failed = [c["name"] for c in override["configured_gate"]["checks"] if not c["ok"]]
    assert failed == ["max_size_mb"]
    metrics = json.loads((out / "bundle" / "metrics.json").read_text())
    assert metrics["gate_override"]["configured_gate"]["passed"] is False


def test_gate_bounds_removed_with_set_are_recorded_as_an_override(tmp_path, capsys):
    config, out = _copy_job(tmp_path, {"min_retention": 0.5, "max_size_mb": 0.001})
    assert main(["export", str(config), "--set", "ship.gate.max_size_mb=null",
                 "--set", "ship.gate.min_retention=null"]) == 0
    err = capsys.readouterr().err
    assert "gate: PASSED (no bounds configured)" in err  # what the export applied...
    assert "WARNING: the quality gate as configured FAILED" in err  # ...and what is true about the config
    card = (out / "bundle" / "README.md").read_text()
    assert "**Published although the quality gate as configured FAILED.**" in card
    assert "`--set ship.gate.max_size_mb=null` `--set ship.gate.min_retention=null`" in card
    assert "no bounds configured in ship.gate" in card  # the applied gate, labelled as such


def test_plain_export_has_no_override_record(tmp_path, capsys):
    config, out = _copy_job(tmp_path, {"min_retention": 0.5})
    assert main(["export", str(config)]) == 0
    assert "WARNING" not in capsys.readouterr().err
    shipped = json.loads((out / "ship" / "shipped.json").read_text())
    assert shipped["override"] is None and shipped["published"] is True
    assert "Published although" not in (out / "bundle" / "README.md").read_text()


def test_export_after_run_uses_the_run_folder_and_says_so(tmp_path, capsys):
    config, out = _copy_job(tmp_path, {"min_retention": 0.5}, into_run=True)
    run = out / "runs" / RUN_ID
    assert main(["export", str(config), "--run", "latest"]) == EXIT_BAD_INPUT
    assert "no run in" in capsys.readouterr().err
    assert main(["export", str(config)]) == 0
    err = capsys.readouterr().err
    assert f"using the compress output of run {RUN_ID} ({run})" in err
    assert f"the bundle goes to {out / 'bundle'}" in err
    assert (out / "bundle" / "config.json").is_file() and not (run / "bundle").exists()  # the run is untouched
    assert main(["export", str(config), "--run", str(run)]) == 0
    assert f"using the compress output of {run}" in capsys.readouterr().err
    assert main(["predict", str(out / "bundle"), "good movie", "--top-k", "1"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert list(row["probabilities"]) == [row["label"]] and row["num_classes"] == 2
