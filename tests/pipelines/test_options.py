from apache_beam.options.pipeline_options import PipelineOptions

from zuoxiao.core.config import parse_config
from zuoxiao.pipelines.options import beam_flags, make_runner, worker_threads


def _cfg(**beam):
    return parse_config({"label": {"input": {"path": "x.tsv"}, "beam": beam}})


def test_flags_order_config_then_options_then_command_line():
    cfg = _cfg(options=["--job_name=a"])
    flags = beam_flags(cfg, ["--runner=FlinkRunner"])
    assert flags[0] == "--runner=DirectRunner" and flags[-2:] == ["--job_name=a", "--runner=FlinkRunner"]


def test_direct_runner_is_built_explicitly_other_runners_by_name():
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

    assert isinstance(make_runner(PipelineOptions(["--runner=DirectRunner"])), FnApiRunner)
    assert make_runner(PipelineOptions(["--runner=DataflowRunner"])) is None


def test_threads_split_across_worker_processes(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    cfg = _cfg()
    assert worker_threads(cfg, PipelineOptions([])) == 8
    mp = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert worker_threads(cfg, mp) == 4
    cfg.label.teacher.num_threads = 3
    assert worker_threads(cfg, mp) == 3
