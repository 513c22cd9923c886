"""The label stage's view: what it reads, and what its run fingerprint covers (zuoxiao.run.stages)."""

from zuoxiao.core.config import parse_config
from zuoxiao.core.config.views import FinetuneView, LabelView
from zuoxiao.run.stages import stage_inputs


def _cfg(path="in.jsonl", **label):
    return parse_config({"output_dir": "/tmp/o", "seed": 3, "task": {"label_names": ["neg", "pos"]},
                         "label": {"input": {"path": str(path)}, **label}})


def test_label_view_holds_its_section_and_the_few_things_it_reads_elsewhere():
    cfg = _cfg()
    view = LabelView.of(cfg)
    assert view.label is cfg.label and view.label_names == ["neg", "pos"] and view.seed == 3
    assert view.dev is None and not view.finetuned and view.cache_max_rows == cfg.run.cache.max_rows
    assert view.resolved == cfg.model_dump(mode="json")  # recorded beside the shards, never fingerprinted
    assert set(view.fingerprint_json()) == {"label", "label_names", "dev", "seed", "finetuned"}


def test_label_fingerprint_ignores_speed_and_follows_results(tmp_path):
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"text": "good", "label": "pos"}\n')
    fp = lambda cfg: stage_inputs(cfg, "label")  # noqa: E731
    base = fp(_cfg(rows))
    assert fp(_cfg(rows, beam={"runner": "DirectRunner", "direct_num_workers": 2})) == base  # where it runs
    assert fp(_cfg(rows, teacher={"num_threads": 2})) == base  # how many threads
    assert fp(parse_config({**_cfg(rows).model_dump(mode="json"), "run": {"cache": {"max_rows": 5}}})) == base
    assert fp(_cfg(rows, batch_size=8)) != base and fp(_cfg(rows, top_k=3, max_full_classes=4)) != base
    assert fp(parse_config({**_cfg(rows).model_dump(mode="json"), "seed": 4})) != base
    rows.write_text('{"text": "bad", "label": "neg"}\n')
    assert fp(_cfg(rows)) != base  # the rows themselves
    assert "eval" not in base and "dev" not in base  # the label stage reads neither gold set


def test_finetune_view_is_task_finetune_and_seed():
    cfg = parse_config({"finetune": {"data": {"path": "gold.jsonl"}, "teacher": {"num_threads": 2}}})
    view = FinetuneView.of(cfg)
    assert (view.task, view.finetune, view.seed) == (cfg.task, cfg.finetune, cfg.seed)
    assert "num_threads" not in view.fingerprint_json()["finetune"]["teacher"]


def test_label_fingerprint_of_a_served_teacher_follows_the_model_not_the_requests_in_flight(tmp_path):
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"text": "good", "label": "pos"}\n')
    fp = lambda **ep: stage_inputs(_cfg(rows, teacher={  # noqa: E731
        "kind": "endpoint", "path": "tok", "endpoint": {"base_url": "http://127.0.0.1:1/v1", "model": "m", **ep}}),
        "label")
    base = fp()
    assert LabelView.of(_cfg(rows, teacher={"kind": "endpoint", "path": "tok", "endpoint": {
        "base_url": "http://h/v1", "model": "m"}})).fingerprint_json()["label"]["teacher"]["endpoint"]["model"] == "m"
    assert fp(concurrency=16) == base  # requests in flight: speed only, like num_threads
    assert fp(model="other") != base and fp(api="chat") != base and fp(top_logprobs=5) != base
