"""Label-stage throughput by Beam runner and worker count (not a test): rows/s on real SST-2 text with the
embedded MiniLM teacher, each worker on 1 torch thread, so the numbers compare workers, not threads.

    flock /tmp/zx-cpu.lock python bench/scaling.py [--data-dir ../shared/data] [--rows 300] > scaling.json

Variants, each `pipelines.label.label_from_config` end to end into a local directory (reading, every
worker's own teacher load, shards, commit: what a user waits for):
  direct_1     DirectRunner in_memory, 1 worker
  direct_2     DirectRunner multi_processing, 2 worker processes
  portable_1   PortableRunner against Beam's stock Python job service (local_job_service_main) with an
               EXTERNAL environment served by Beam's worker pool (worker_pool_main): it runs a job on
               ONE SDK worker whatever the flags (see tests/pipelines/job_service.py)
  portable_2   the same with Beam's LocalJobServicer running 2 SDK workers per job
               (tests/pipelines/job_service.py --workers 2), as a Flink/Spark job server at parallelism 2
The job services and the worker pool are started once, before any timing, on free 127.0.0.1 ports, and
stopped at the end. Prints one JSON object: per variant the wall seconds of every repeat, the best
rows/s, the pipeline's own pipeline_s, and whether its shards are byte-identical to direct_1's; plus
the machine's load average before and after (the box is shared: read the numbers with it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LABELS = ["0", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_services(logs: Path) -> tuple[list[subprocess.Popen], dict[str, str]]:
    """Two job services and a worker pool; the pool's workers run `python`, so the venv's comes first on PATH."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    ports = {"job_1": free_port(), "job_2": free_port(), "pool": free_port()}
    repo = Path(__file__).resolve().parents[1]
    commands = {
        "job_1": ["-m", "apache_beam.runners.portability.local_job_service_main", "--port", str(ports["job_1"])],
        "job_2": [str(repo / "tests" / "pipelines" / "job_service.py"), "--port", str(ports["job_2"]), "--workers", "2"],
        "pool": ["-m", "apache_beam.runners.worker.worker_pool_main", "--service_port", str(ports["pool"])],
    }
    procs = []
    for name, cmd in commands.items():
        with open(logs / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen([sys.executable, *cmd], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    deadline = time.monotonic() + 120
    for port in ports.values():
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    stop_services(procs)
                    raise SystemExit(f"the Beam services did not start; see {logs}") from None
                time.sleep(0.2)
    return procs, {k: f"localhost:{p}" for k, p in ports.items()}


def stop_services(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def make_cfg(data_dir: Path, rows: int, workdir: Path, max_length: int, batch_size: int):
    from zuoxiao.core.config import parse_config

    return parse_config({
        "output_dir": str(workdir),
        "task": {"name": "sst2", "label_names": LABELS},
        "label": {"input": {"path": str(data_dir / "sst2" / "train.tsv"), "format": "tsv",
                            "text_column": "sentence", "label_column": "label", "limit": rows},
                  "teacher": {"max_length": max_length, "num_threads": 1},
                  "batch_size": batch_size},
    })


def run_variant(cfg, out: Path, flags: list[str]) -> tuple[float, dict]:
    from zuoxiao.pipelines.label import label_from_config

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    m = label_from_config(cfg, out, beam_args=flags)
    return time.perf_counter() - start, m


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="zx-scaling-"))
    load_before = os.getloadavg()
    procs, ep = start_services(workdir)
    portable = ["--runner=PortableRunner", "--environment_type=EXTERNAL", f"--environment_config={ep['pool']}"]
    variants = {
        "direct_1": ["--runner=DirectRunner", "--direct_num_workers=1", "--direct_running_mode=in_memory"],
        "direct_2": ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
        "portable_1": [*portable, f"--job_endpoint={ep['job_1']}"],
        "portable_2": [*portable, f"--job_endpoint={ep['job_2']}"],
    }
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    manifests: dict[str, dict] = {}
    try:
        cfg = make_cfg(args.data_dir.resolve(), args.rows, workdir, args.max_length, args.batch_size)
        for _ in range(args.repeats):  # interleaved: load drift hits every variant alike
            for name, flags in variants.items():
                s, manifests[name] = run_variant(cfg, workdir / name, flags)
                seconds[name].append(round(s, 2))
    finally:
        stop_services(procs)
        shutil.rmtree(workdir, ignore_errors=True)
    ref = [s["sha256"] for s in manifests["direct_1"]["shards"]]
    out = {"rows_read": manifests["direct_1"]["counts"]["read"],
           "rows_labeled": manifests["direct_1"]["counts"]["labeled"],
           "teacher": "embedded:all-MiniLM-L6-v2", "max_length": args.max_length, "batch_size": args.batch_size,
           "torch_threads_per_worker": 1, "cpu_count": os.cpu_count(),
           "loadavg_before": [round(x, 2) for x in load_before]}
    for name in variants:
        m = manifests[name]
        out[name] = {"seconds": seconds[name],
                     "rows_per_s": round(m["counts"]["labeled"] / min(seconds[name]), 2),
                     "pipeline_s": m["timings"]["pipeline_s"],
                     "shards_identical_to_direct_1": [s["sha256"] for s in m["shards"]] == ref}
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
