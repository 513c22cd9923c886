"""Beam options and runner choice for the label stage."""

from __future__ import annotations

import os

from zuoxiao.core.config import Config


def beam_flags(cfg: Config, beam_args: list[str] | None) -> list[str]:
    """Config beam section first, then raw options, then command-line flags (later flags win)."""
    b = cfg.label.beam
    s = b.object_store  # read by zuoxiao.core.fsio.StoreOptions, in the launcher and in every worker
    flags = [f"--runner={b.runner}", f"--direct_num_workers={b.direct_num_workers}",
             f"--direct_running_mode={b.direct_running_mode}",
             f"--store_connect_timeout_s={s.connect_timeout_s:g}", f"--store_read_timeout_s={s.read_timeout_s:g}",
             f"--store_max_attempts={s.max_attempts}"]
    return flags + list(b.options) + list(beam_args or [])


def make_runner(options):
    """An explicit runner object for DirectRunner: Beam's DirectRunner first tries to fetch the Prism
    binary, which can hang offline or behind a firewall. Other runners are resolved by Beam by name."""
    from apache_beam.options.pipeline_options import StandardOptions

    name = options.view_as(StandardOptions).runner or "DirectRunner"
    if name.split(".")[-1] not in ("DirectRunner", "direct"):
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=info)


def worker_threads(cfg: Config, options) -> int:
    from apache_beam.options.pipeline_options import DirectOptions

    if cfg.label.teacher.num_threads:
        return cfg.label.teacher.num_threads
    d = options.view_as(DirectOptions)
    cores = os.cpu_count() or 1
    if d.direct_running_mode == "multi_processing":
        workers = d.direct_num_workers or cores
        return max(1, cores // max(1, workers))
    return cores


#: Flags whose values are secrets (S3 keys, tokens, passwords): never written to a manifest or a log.
_SECRET_WORDS = ("secret", "password", "token", "access_key", "credential")


def redact_flags(flags: list[str]) -> list[str]:
    """``--s3_secret_access_key=abc`` (or ``... abc`` as two items) -> ``...=***``; other flags unchanged."""
    out: list[str] = []
    hide_next = False
    for flag in flags:
        if hide_next and not flag.startswith("--"):
            out.append("***")
            hide_next = False
            continue
        name, eq, _ = flag.partition("=")
        secret = any(w in name.lower() for w in _SECRET_WORDS) and name.startswith("--")
        out.append(f"{name}=***" if secret and eq else flag)
        hide_next = secret and not eq
    return out
