from pathlib import Path

import pytest

from zuoxiao.cli import main
from zuoxiao.core.config import load_config, parse_config
from zuoxiao.core.errors import EXIT_BAD_INPUT, ConfigError

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_configs_exist():
    assert CONFIGS, "configs/*.yaml should not be empty"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_validates(path):
    cfg = load_config(path)
    assert cfg.label is not None


def _minimal(**extra):
    raw = {"label": {"input": {"path": "data.jsonl"}}}
    raw.update(extra)
    return raw


def test_all_problems_reported_at_once_with_key_value_and_fix():
    raw = _minimal(seed="zero")
    raw["label"]["batch_sise"] = 64  # typo
    raw["label"]["top_k"] = -3
    raw["train"] = {"loss": {"kind": "kld"}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    problems = info.value.problems
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert "label.batch_sise: unknown key" in text and "did you mean 'batch_size'" in text
    assert "seed: got 'zero'" in text
    assert "label.top_k: got -3" in text
    assert "train.loss.kind: got 'kld'" in text and "'kl'" in text


def test_impossible_combination_named():
    with pytest.raises(ConfigError, match="top_k=40 must be smaller than max_full_classes=32"):
        parse_config(_minimal(label={"input": {"path": "x"}, "top_k": 40}))


def test_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("label:\n  input: {path: data.jsonl}\n")
    cfg = load_config(p, ["label.batch_size=7", "label.beam.runner=FlinkRunner", "task.label_names=[a, b]"])
    assert cfg.label.batch_size == 7
    assert cfg.label.beam.runner == "FlinkRunner"
    assert cfg.task.label_names == ["a", "b"]


def test_yaml_off_and_no_spellings_mean_the_documented_words(tmp_path):
    """YAML 1.1 reads bare off / no as False: they must still mean "off" / "no", in files and in --set."""
    p = tmp_path / "c.yaml"
    p.write_text("label:\n  input: {path: data.jsonl}\nfinetune:\n  data: {path: g.jsonl}\n  blend_baseline: off\n"
                 "run:\n  data_check: off\n")
    cfg = load_config(p, ["train.optim.mixed_precision=no"])
    assert cfg.finetune.blend_baseline == "off" and cfg.run.data_check == "off"
    assert cfg.train.optim.mixed_precision == "no"
    assert load_config(p, ["finetune.blend_baseline=auto"]).finetune.blend_baseline == "auto"
    with pytest.raises(ConfigError, match="blend_baseline"):
        load_config(p, ["finetune.blend_baseline=true"])  # True is not a spelling of auto


def test_validate_cli_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("label:\n  input: {path: data.jsonl}\n")
    assert main(["validate", "--quiet", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("label:\n  input: {path: data.jsonl}\n  batchsize: 3\n")
    assert main(["validate", str(bad)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "label.batchsize: unknown key" in err and "batch_size" in err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == EXIT_BAD_INPUT


def test_read_labelled_skips_empty_files_and_names_the_source(tmp_path):
    from zuoxiao.core.config import DataSource
    from zuoxiao.core.errors import InputError
    from zuoxiao.core.goldsets import read_labelled

    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").write_text('{"text": "hi", "label": "x"}\n{"text": " ", "label": "y"}\n')
    data = read_labelled(DataSource(path=str(tmp_path / "*.jsonl")))
    assert data.texts == ["hi"] and data.label_names == ["x"] and data.skipped == {"empty_text": 1}
    with pytest.raises(InputError, match="no usable labelled rows"):
        read_labelled(DataSource(path=str(tmp_path / "a.jsonl")))
