"""Beam's Python job service with N SDK workers per job, for the portable-path test and bench/scaling.py.

    python tests/pipelines/job_service.py --port P [--workers 2]

Beam's own `python -m apache_beam.runners.portability.local_job_service_main` runs every job on ONE SDK
worker: its BeamJob calls FnApiRunner.run_via_runner_api, which never reads --direct_num_workers (only
FnApiRunner.run_pipeline does), so an EXTERNAL worker pool is asked for exactly one worker. This is the
same servicer (LocalJobServicer, serving the same Job API on the same port) whose runner partitions each
stage's input over ``--workers`` SDK workers, as a Flink or Spark job server does with parallelism N.
FnApiRunner takes the count only as the private ``_num_workers`` (set the same way run_pipeline sets it).
"""

from __future__ import annotations

import argparse
import logging
import time

from apache_beam.portability.api import beam_job_api_pb2
from apache_beam.runners.portability import local_job_service
from apache_beam.runners.portability.fn_api_runner import fn_runner


def job_type(workers: int):
    class ParallelJob(local_job_service.BeamJob):
        def _invoke_runner(self):
            self.set_state(beam_job_api_pb2.JobState.RUNNING)
            runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
            runner._num_workers = workers
            return runner.run_via_runner_api(self._pipeline_proto, self.pipeline_options())

    return ParallelJob


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    servicer = local_job_service.LocalJobServicer(beam_job_type=job_type(args.workers))
    port = servicer.start_grpc_server(args.port)
    logging.info("Listening for beam jobs on port %d with %d SDK workers per job", port, args.workers)
    try:
        while True:
            time.sleep(3600)
    finally:
        servicer.stop()


if __name__ == "__main__":
    main()
