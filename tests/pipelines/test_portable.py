"""The label stage on Beam's portable path: the pipeline is serialised to a proto, submitted to a job
service and executed by separate SDK worker processes over the Fn API, as on Flink, Spark and Dataflow
Runner v2.

The test starts Beam's Python job service and Beam's worker pool (`worker_pool_main`, an EXTERNAL
environment: the job service asks it for 2 SDK worker processes) on 127.0.0.1, and labels into s3:// on
the local moto server. The job service is Beam's LocalJobServicer with 2 workers per job
(tests/pipelines/job_service.py): the stock `local_job_service_main` runs every job on one worker. Workers share nothing with this process but the pipeline
options and the object store: they load the teacher themselves and write their shards to S3; this process
commits them. The shards must be byte-identical to the in-process DirectRunner's.

The workers are started by the pool as `python -c ...`: the venv's python must be first on PATH, or
they cannot import Beam (or zuoxiao).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipelines.conftest import SENTENCES, write_tsv
from tests.pipelines.test_s3 import BUCKET, KEY_ID, SECRET, _free_port, _s3, s3_endpoint  # noqa: F401
from zuoxiao.pipelines.label import label_from_config

pytestmark = pytest.mark.slow  # ~30 s: two service processes and two SDK workers start per run


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{proc.args[1:3]} did not listen on 127.0.0.1:{port} (exit {proc.poll()}); its log:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group this test started (the pool's workers included), SIGKILL after 10 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def portable_services(tmp_path_factory):
    """(job endpoint, worker pool endpoint, pool log) of a job service and a worker pool on free local ports."""
    logs = tmp_path_factory.mktemp("portable")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "HF_HUB_OFFLINE": "1"}
    job_port, pool_port = _free_port(), _free_port()
    commands = {
        "job_service": [sys.executable, str(Path(__file__).with_name("job_service.py")), "--port", str(job_port),
                        "--workers", "2"],
        "worker_pool": [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                        "--service_port", str(pool_port)],
    }
    procs = {}
    try:
        for name, cmd in commands.items():
            with open(logs / f"{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)
        _wait_listening(job_port, procs["job_service"], logs / "job_service.log")
        _wait_listening(pool_port, procs["worker_pool"], logs / "worker_pool.log")
        yield f"localhost:{job_port}", f"localhost:{pool_port}", logs / "worker_pool.log"
    finally:
        for proc in procs.values():
            _stop(proc)


def test_portable_runner_with_external_workers_writes_the_direct_runners_bytes_to_s3(
        tmp_path, make_cfg, s3_endpoint, portable_services):  # noqa: F811
    job, pool, pool_log = portable_services
    rows = [(f"{t} {i}", lab) for i, (t, lab) in enumerate(SENTENCES * 2)] + [("   ", "1"), ("fine", "7")]
    cfg = make_cfg(write_tsv(tmp_path / "in.tsv", rows))
    local = label_from_config(cfg, tmp_path / "local")  # in-process DirectRunner: the reference

    uri = f"s3://{BUCKET}/portable/label"
    flags = ["--runner=PortableRunner", f"--job_endpoint={job}", "--environment_type=EXTERNAL",
             f"--environment_config={pool}",
             f"--s3_endpoint_url={s3_endpoint}", f"--s3_access_key_id={KEY_ID}",
             f"--s3_secret_access_key={SECRET}", "--s3_region_name=us-east-1"]
    m = label_from_config(cfg, uri, beam_args=flags)
    # the job service asked the pool for 2 SDK worker processes
    assert pool_log.read_text(errors="replace").count("Starting worker with command") == 2

    assert "--runner=PortableRunner" in m["beam_options"] and "--s3_secret_access_key=***" in m["beam_options"]
    c = m["counts"]
    assert (c["read"], c["labeled"], c["rejected"]) == (26, 24, 2) and c == local["counts"]
    assert [(s["file"], s["rows"], s["sha256"]) for s in m["shards"]] == \
        [(s["file"], s["rows"], s["sha256"]) for s in local["shards"]]
    assert [(s["file"], s["sha256"]) for s in m["rejected_files"]] == \
        [(s["file"], s["sha256"]) for s in local["rejected_files"]]
    assert m["data_hash"] == local["data_hash"] and len(m["shards"]) == 5
    keys = sorted(o["Key"] for o in _s3(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix="portable/")["Contents"])
    assert keys == sorted(["portable/label/manifest.json", "portable/label/config.resolved.yaml"]
                          + [f"portable/label/{s['file']}" for s in m["shards"] + m["rejected_files"]])
