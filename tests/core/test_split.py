"""task.split and sample: N (zuoxiao/core/split.py), limit's meaning, and the errors around them."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tests.run.conftest import REPO
from zuoxiao.core.config import DataSource, load_config, parse_config, save_resolved
from zuoxiao.core.errors import ConfigError, InputError
from zuoxiao.core.goldsets import read_labelled
from zuoxiao.core.split import prepare_data, split_counts

CLASSES = [f"intent_{c}" for c in range(7)]


def sorted_csv(path: Path, shuffle: int | None = None) -> Path:
    """7 classes x 20 rows, sorted by class, plus one class with a single row; (optionally shuffled)."""
    rows = [(f"r{c}-{i}", f"please help with {name} case {i}", name) for c, name in enumerate(CLASSES) for i in range(20)]
    rows.append(("lonely", "the one and only row of its class", "rare"))
    if shuffle is not None:
        random.Random(shuffle).shuffle(rows)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        w.writerows(rows)
    return path


def _cfg(tmp_path, split=None, **sections) -> dict:
    raw = {"output_dir": str(tmp_path / "out"), "task": {"name": "t"}}
    if split is not None:
        raw["task"]["split"] = split
    raw.update(sections)
    return raw


def _jsonl(source: DataSource) -> list[dict]:
    return [json.loads(x) for x in Path(source.path).read_text().splitlines()]


def test_split_of_a_class_sorted_csv_is_stratified_and_fills_the_unset_sources(tmp_path):
    data = sorted_csv(tmp_path / "all.csv")
    raw = _cfg(tmp_path, {"source": {"path": str(data), "id_column": "id"}, "dev": 0.1, "test": 0.1},
               finetune={})
    cfg, info = prepare_data(parse_config(raw))
    job = info["jobs"][0]
    parts = {"train": cfg.finetune.data, "dev": cfg.task.dev, "test": cfg.task.eval}
    assert cfg.label.input == cfg.finetune.data and cfg.task.split is None
    rows = {p: _jsonl(s) for p, s in parts.items()}
    for p in ("dev", "test"):  # 20 rows x 0.1 = 2 of every class that has enough rows
        assert sorted(r["label"] for r in rows[p]) == sorted(CLASSES * 2)
        assert job["parts"][p]["classes"] == dict.fromkeys(CLASSES, 2)
    assert job["parts"]["train"]["classes"] == {**dict.fromkeys(CLASSES, 16), "rare": 1}
    assert "rare" in job["not_stratified"] and "kept in train" in job["not_stratified"]["rare"]
    ids = [r["id"] for p in rows.values() for r in p]
    assert len(ids) == len(set(ids)) == 141  # every row once, none in two parts
    assert all(s.format == "jsonl" and s.id_column == "id" for s in parts.values())
    train = read_labelled(parts["train"])  # what fine-tuning and evaluation read
    assert len(train.texts) == 113 and read_labelled(parts["dev"], train.label_names).label_names == [*CLASSES, "rare"]
    report = json.loads((Path(job["dir"]) / "split.json").read_text())
    assert report["settings"] == {"dev": 0.1, "test": 0.1, "seed": 0} and report["fingerprint"] == job["fingerprint"]
    assert report["source"]["files"][0][0] == "all.csv"
    # the resolved config reloads as is (no split left to redo, and task.dev no longer conflicts)
    again = load_config(save_resolved(cfg, tmp_path / "r"))
    assert again.task.dev == cfg.task.dev and prepare_data(again)[1] == {"jobs": []}


_SCRIPT = """
import json, sys
from zuoxiao.core.config import parse_config
from zuoxiao.core.split import prepare_data
cfg, info = prepare_data(parse_config(json.loads(sys.argv[1])))
print(json.dumps({p: open(s.path, "rb").read().decode() for p, s in
                  [("train", cfg.label.input), ("dev", cfg.task.dev), ("test", cfg.task.eval)]}))
"""


def test_split_is_byte_identical_across_hash_seeds_and_row_order(tmp_path):
    outs = []
    for hash_seed, shuffle in (("1", None), ("2", None), ("3", 7)):
        data = sorted_csv(tmp_path / f"data-{hash_seed}.csv", shuffle=shuffle)
        raw = _cfg(tmp_path / hash_seed, {"source": {"path": str(data)}, "seed": 5})
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(raw)], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)
        outs.append(json.loads(res.stdout))
    assert outs[0] == outs[1] == outs[2]
    other = prepare_data(parse_config(_cfg(tmp_path / "s6", {"source": {"path": str(data)}, "seed": 6})))[0]
    assert Path(other.task.eval.path).read_text() != outs[0]["test"]  # the seed does change the draw


def test_fractions_are_respected_per_class_within_rounding(tmp_path):
    path = tmp_path / "d.jsonl"
    sizes = {"a": 100, "b": 37, "c": 11, "d": 3, "e": 2}
    path.write_text("".join(json.dumps({"text": f"{c} text {i}", "label": c}) + "\n"
                            for c, n in sizes.items() for i in range(n)))
    _, info = prepare_data(parse_config(_cfg(tmp_path, {"source": {"path": str(path)}, "dev": 0.2, "test": 0.15})))
    parts = info["jobs"][0]["parts"]
    for c, n in sizes.items():
        got = {p: parts[p]["classes"].get(c, 0) for p in parts}
        assert sum(got.values()) == n
        if n >= 3:
            assert abs(got["dev"] - n * 0.2) <= 0.5 or got["dev"] == 1
            assert abs(got["test"] - n * 0.15) <= 0.5 or got["test"] == 1
            assert got["train"] >= 1
    assert parts["dev"]["classes"]["a"] == 20 and parts["test"]["classes"]["a"] == 15
    assert info["jobs"][0]["not_stratified"] == {"e": "2 row(s), 2 distinct text(s): too few for train + dev + "
                                                       "test, kept in train"}
    assert split_counts(1, 0.1, 0.1) == (0, 0) and split_counts(2, 0.1, 0.1) == (0, 0)
    assert split_counts(3, 0.1, 0.1) == (1, 1) and split_counts(3, 0.45, 0.45) == (1, 1)
    assert split_counts(2, 0.1, 0.0) == (1, 0) and split_counts(10, 0.0, 0.0) == (0, 0)


def test_duplicate_texts_stay_in_one_part_and_bad_rows_follow_the_shared_row_policy(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"id": i, "text": f"t{i % 10}", "label": "x" if i % 10 < 5 else "y"}) for i in range(60)]
    lines += ['{"id": 60, "text": broken', json.dumps({"id": 3, "text": "again", "label": "x"}),
              json.dumps({"id": 61, "text": " ", "label": "x"})]
    path.write_text("\n".join(lines) + "\n")
    cfg, info = prepare_data(parse_config(_cfg(tmp_path, {"source": {"path": str(path), "id_column": "id"},
                                                          "dev": 0.2, "test": 0.2})))
    texts = {p: {r["text"] for r in _jsonl(s)} for p, s in
             (("train", cfg.label.input), ("dev", cfg.task.dev), ("test", cfg.task.eval))}
    assert not (texts["train"] & texts["dev"]) and not (texts["train"] & texts["test"]) and not (texts["dev"] & texts["test"])
    assert sum(p["rows"] for p in info["jobs"][0]["parts"].values()) == 60
    skipped = info["jobs"][0]["skipped"]
    assert skipped["counts"] == {"duplicate_id": 1, "empty_text": 1, "malformed_row": 1}
    assert skipped["where"]["malformed_row"] == ["d.jsonl line 61"]


def test_sample_is_stratified_on_a_sorted_file_and_limit_stays_first_n(tmp_path):
    data = sorted_csv(tmp_path / "all.csv")
    raw = _cfg(tmp_path, task={"eval": {"path": str(data), "sample": 24}},
               label={"input": {"path": str(data), "label_column": None, "sample": 30, "sample_seed": 3}})
    cfg, info = prepare_data(parse_config(raw))
    ev = _jsonl(cfg.task.eval)
    assert len(ev) == 24 and {r["label"] for r in ev} == {*CLASSES, "rare"}  # every class keeps a share
    assert cfg.task.eval.sample is None and cfg.task.eval.format == "jsonl"
    unl = _jsonl(cfg.label.input)
    assert len(unl) == 30 and list(unl[0]) == ["text"] and len({r["text"] for r in unl}) == 30
    assert {j["key"] for j in info["jobs"]} == {"task.eval", "label.input"}
    # limit keeps its meaning: the first N rows in file order (here: one class only)
    first = read_labelled(DataSource(path=str(data), limit=24))
    assert first.texts[:2] == ["please help with intent_0 case 0", "please help with intent_0 case 1"]
    assert first.label_names == ["intent_0", "intent_1"] and len(first.texts) == 24


def test_library_calls_refuse_a_sample_or_split_that_was_not_drawn(tmp_path):
    """A config loaded as is still says `sample: N` / `task.split`: reading it would silently use every row
    (or hold out a 10% dev split of its own), so the readers refuse it until prepare_data has run."""
    from zuoxiao.pipelines.label import label_from_config
    from zuoxiao.teacher.finetune.goldsplit import read_splits

    data = sorted_csv(tmp_path / "all.csv")
    src = {"path": str(data), "sample": 24}
    with pytest.raises(ConfigError, match=r"sample: 24.*prepare_data\(cfg\)"):
        read_labelled(DataSource(**src))
    raw = _cfg(tmp_path, finetune={"data": src}, label={"input": {**src, "label_column": None}})
    with pytest.raises(ConfigError, match=r"finetune.data .*sample: 24"):
        read_splits(parse_config(raw))
    with pytest.raises(ConfigError, match=r"label.input .*sample: 24"):
        label_from_config(parse_config(raw), tmp_path / "label")
    with pytest.raises(ConfigError, match=r"task.split is set"):
        read_splits(parse_config(_cfg(tmp_path, split={"source": {"path": str(data)}, "dev": 0.2},
                                      finetune={"data": None})))
    cfg, _ = prepare_data(parse_config(raw))  # the drawn parts read as they are
    assert len(read_labelled(cfg.finetune.data).texts) == 24


def test_limit_and_sample_together_and_split_settings_are_config_errors(tmp_path):
    src = {"path": "x.csv"}
    bad = [
        (_cfg(tmp_path, label={"input": {**src, "limit": 5, "sample": 5}}), ["limit=5 and sample=5 are both set"]),
        (_cfg(tmp_path, {"source": src, "dev": 0.5, "test": 0.5}), ["leaves no rows to train on"]),
        (_cfg(tmp_path, {"source": src, "dev": 1.0}), ["task.split.dev", "less than 1"]),
        (_cfg(tmp_path, {"source": src, "test": -0.1}), ["task.split.test", "greater than or equal to 0"]),
        (_cfg(tmp_path, {"source": {**src, "label_column": None}}), ["needs gold labels"]),
        (_cfg(tmp_path, {"source": src}, task={"name": "t", "split": {"source": src}, "dev": src}),
         ["task.dev and task.split.dev=0.1 are both set", "task.split.dev: 0"]),
        (_cfg(tmp_path, {"source": src}, task={"name": "t", "split": {"source": src}, "eval": src}),
         ["task.eval and task.split.test=0.1 are both set"]),
        (_cfg(tmp_path, {"source": src}, finetune={"data": src}, label={"input": src}),
         ["task.split and finetune.data and label.input are set", "used nowhere"]),
        (_cfg(tmp_path, finetune={}, label={"input": src}), ["finetune.data is missing", "task.split"]),
    ]
    for raw, parts in bad:
        with pytest.raises(ConfigError) as err:
            parse_config(raw)
        assert all(p in str(err.value) for p in parts), str(err.value)
    # what makes sense is allowed: keep an explicit task.dev with dev: 0, label other rows than the split's
    ok = parse_config(_cfg(tmp_path, task={"name": "t", "split": {"source": src, "dev": 0}, "dev": src},
                           finetune={}, label={"input": {"path": "unl.jsonl", "label_column": None}}))
    assert ok.finetune.data is None and ok.task.split.dev == 0


def test_an_empty_held_out_part_is_an_input_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": f"c{i}"}) + "\n" for i in range(4)))
    with pytest.raises(InputError, match=r"task.split.dev=0.1 gives an empty dev part.*task.split.dev: 0"):
        prepare_data(parse_config(_cfg(tmp_path, {"source": {"path": str(path)}})))


def test_label_names_error_says_limit_is_first_n_and_suggests_sample(tmp_path):
    data = sorted_csv(tmp_path / "all.csv")
    names = read_labelled(DataSource(path=str(data), limit=40)).label_names  # e.g. the fine-tune source
    with pytest.raises(InputError) as err:  # a sibling source read with limit
        read_labelled(DataSource(path=str(data)), names)
    msg = str(err.value)
    assert "not in label_names" in msg and "first N rows in file order" in msg and "sample: N" in msg
    with pytest.raises(InputError) as err:  # this very source has limit
        read_labelled(DataSource(path=str(data), limit=60), ["intent_0", "intent_1"])
    msg = str(err.value)
    assert "limit: 60, which keeps the first 60 rows in file order" in msg and "sample: 60" in msg


def test_parts_are_reused_when_intact_and_rebuilt_when_damaged(tmp_path):
    data = sorted_csv(tmp_path / "all.csv")
    cfg = parse_config(_cfg(tmp_path, {"source": {"path": str(data)}}))
    first, info = prepare_data(cfg)
    dev = Path(first.task.dev.path)
    before, stamp = dev.read_bytes(), dev.stat().st_mtime_ns
    assert prepare_data(cfg)[0] == first and dev.stat().st_mtime_ns == stamp  # reused, not rewritten
    dev.write_text('{"text": "edited", "label": "intent_0"}\n')
    assert prepare_data(cfg)[0] == first and dev.read_bytes() == before  # verified against split.json: rebuilt
    assert not [p for p in dev.parent.parent.iterdir() if p.name.startswith(".")]  # no temp dir left behind


def test_run_copies_the_split_and_stage_fingerprints_follow_it(tmp_path, capsys):
    from tests.run.fake_stages import FAKES
    from zuoxiao.cli import _load
    from zuoxiao.run.runner import run_job

    data = sorted_csv(tmp_path / "all.csv")

    def run(**split):
        raw = _cfg(tmp_path, {"source": {"path": str(data), "id_column": "id"}, **split}, finetune={},
                   ship={"gate": {"min_retention": 0.5}})
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(raw))
        cfg = load_config(tmp_path / "job.yaml")
        console = Console(file=open(os.devnull, "w"))
        return run_job(cfg, stage_fns=FAKES, console=console)

    first = run()
    run_dir = Path(first["run_dir"])
    assert json.loads((run_dir / "data" / "split.json").read_text())["parts"]["dev"]["rows"] == 14
    events = [json.loads(x) for x in (run_dir / "logs" / "events.jsonl").read_text().splitlines()]
    prepared = [e for e in events if e["event"] == "data_prepared"]
    assert len(prepared) == 1 and prepared[0]["jobs"][0]["parts"]["train"] == {"rows": 113, "classes": 8}
    resolved = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    assert resolved["task"]["split"] is None and resolved["task"]["dev"]["path"].endswith("dev.jsonl")
    # a stand-alone stage command sees the very same parts
    cli_cfg = _load(Namespace(config=str(tmp_path / "job.yaml"), overrides=[]))
    assert cli_cfg.model_dump(mode="json") == resolved
    fps = {s: i["fingerprint"] for s, i in first["stages"].items()}
    same = run()
    assert {s: i["fingerprint"] for s, i in same["stages"].items()} == fps  # (a new run reuses every stage)
    assert {i["action"] for i in same["stages"].values()} == {"reused"}
    reseeded = run(seed=1)
    new = {s: i["fingerprint"] for s, i in reseeded["stages"].items()}
    assert new["finetune"] != fps["finetune"] and new["label"] != fps["label"]
    refraction = run(dev=0.2)
    assert refraction["stages"]["label"]["fingerprint"] not in (fps["label"], new["label"])


def test_extra_inputs_are_sampled_too_and_may_add_to_the_split_train_part(tmp_path):
    """label.extra_inputs (a list) gets `sample` like every other source, and with task.split the extra inputs
    add to the train part that fills label.input (no label.input needed)."""
    data = sorted_csv(tmp_path / "all.csv")
    unl = tmp_path / "more.jsonl"
    unl.write_text("".join(json.dumps({"body": f"unlabelled line {i}"}) + "\n" for i in range(50)))
    raw = _cfg(tmp_path, split={"source": {"path": str(data)}, "dev": 0.1, "test": 0.1},
               label={"extra_inputs": [{"path": str(unl), "text_column": "body", "label_column": None, "sample": 12}]})
    cfg, info = prepare_data(parse_config(raw))
    extra = cfg.label.extra_inputs[0]
    assert extra.sample is None and extra.format == "jsonl" and extra.text_column == "body"
    assert len(_jsonl(extra)) == 12
    assert cfg.label.input is not None and Path(cfg.label.input.path).name == "train.jsonl"
    assert {j["key"] for j in info["jobs"]} == {"label.extra_inputs[0]", "task.split"}
    # without task.split, extra inputs still need label.input
    raw = _cfg(tmp_path, label={"extra_inputs": [{"path": str(unl), "text_column": "body", "label_column": None}]},
               finetune={"data": {"path": str(data)}})
    with pytest.raises(ConfigError, match="label.extra_inputs is set but label.input is not"):
        parse_config(raw)
