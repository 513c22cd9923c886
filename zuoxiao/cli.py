"""The `zuoxiao` command: parses arguments, loads the config, calls the stage library. No logic here:
`build_parser` defines each command's arguments and `COMMANDS` maps it to its function (args -> exit code).

    zuoxiao validate configs/demo.yaml [--data [--json]]
    zuoxiao label configs/demo.yaml --set label.batch_size=64 -- --runner=DirectRunner
    zuoxiao finetune-teacher | label | train | compress | ship | run CONFIG
    zuoxiao export CONFIG [--run RUN_ID|latest|PATH] [--no-gate]   (= ship; --no-gate is recorded in the card)
    zuoxiao predict BUNDLE|RUN_DIR|OUTPUT_DIR "some text" ... [--top-k 5] [--format json|text]
    zuoxiao serve-page BUNDLE_DIR [--port 8000]
    zuoxiao --quiet | --log-json COMMAND ...   (before the command; progress bars only on a terminal)
    zuoxiao demo

Exit codes: see zuoxiao/core/errors.py (0 ok, 1 internal, 2 bad config/input/environment, 3 gate
failed, 4 locked, 5 integrity, 130 interrupted). Errors a Beam runner wrapped (a KeyboardInterrupt
re-raised as RuntimeError, a worker's InputError sent back as text) are unwrapped first
(`zuoxiao.core.errors.user_error`), so Ctrl-C during labelling is 130, not an internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from zuoxiao.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ZuoxiaoError,
    user_error,
)

TOP_K = 5  # `predict` default: a 77-class task's full distribution per text buries the answer


def _at_least_one(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number; give e.g. --top-k 3") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is less than 1; give the number of labels to show, e.g. --top-k 3")
    return n


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set label.batch_size=64 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zuoxiao", description="Distillation as a data pipeline.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--quiet", dest="log_quiet", action="store_true",
                        help="warnings and errors only (no progress lines); for schedulers")
    parser.add_argument("--log-json", action="store_true", help="one JSON object per log line on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a config file and print the resolved config")
    _config_args(p)
    p.add_argument("--quiet", action="store_true", help="print only problems")
    p.add_argument("--data", action="store_true", help="also read every data source and report its problems "
                   "(exit 2 on errors); loads no model")
    p.add_argument("--json", action="store_true", help="with --data: print the data report as JSON")

    p = sub.add_parser("label", help="label task data with the teacher (Beam pipeline)")
    _config_args(p)
    p.add_argument("--output", help="output dir (default <output_dir>/label)")
    p.add_argument("beam_args", nargs="*", help="Beam pipeline flags after --, e.g. -- --runner=DirectRunner")

    p = sub.add_parser("finetune-teacher", help="fine-tune the teacher backbone on gold labels")
    _config_args(p)
    p.add_argument("--output", help="output dir (default <output_dir>/teacher)")

    p = sub.add_parser("train", help="distil a student from the soft-label shards")
    _config_args(p)
    p.add_argument("--shards", help="label output dir (default <output_dir>/label)")
    p.add_argument("--output", help="output dir (default <output_dir>/student)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")

    p = sub.add_parser("compress", help="compress the student step by step, measuring each step")
    _config_args(p)

    for name in ("ship", "export"):
        p = sub.add_parser(name, help="build the app-team bundle from the compressed model, behind the gate"
                           + (" (same as ship)" if name == "export" else ""))
        _config_args(p)
        p.add_argument("--run", metavar="RUN_ID|latest|PATH",
                       help="package the compress output of this run of `zuoxiao run` (default: <output_dir>/compress "
                            "if `zuoxiao compress` wrote one, else the newest run that has one)")
        p.add_argument("--no-gate", action="store_true",
                       help="publish even when the quality gate fails (never with NaN/inf outputs); the model card "
                            "and shipped.json record the gate as configured and this override")

    p = sub.add_parser("run", help="the whole job: finetune -> label -> train -> compress -> ship")
    _config_args(p)
    p.add_argument("--force", action="append", default=[], metavar="STAGE", help="redo STAGE even if done")

    p = sub.add_parser("predict", help="classify texts with an exported bundle (onnxruntime only)")
    p.add_argument("bundle", help="a bundle folder, a run folder (outputs/<task>/runs/<id>), outputs/<task>/latest "
                                  "or the output dir outputs/<task> (its latest bundle)")
    p.add_argument("texts", nargs="+", help="texts to classify")
    p.add_argument("--top-k", type=_at_least_one, default=TOP_K, metavar="N",
                   help=f"show the N most probable labels per text (default {TOP_K}; all of them when the task "
                        "has N classes or fewer)")
    p.add_argument("--format", choices=("json", "text"), default="json",
                   help="json (default; machine-readable) or text (one block per text, for people)")
    p.add_argument("--explain", action="store_true",
                   help="also say which words made each label: each word masked in turn (at most 64 words per "
                        "text, one batched model call per text); json: an \"explanation\" per text")

    p = sub.add_parser("serve-page", help="serve a bundle's offline web demo page on 127.0.0.1")
    p.add_argument("bundle", help="bundle directory (with web/index.html)")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0 = any free one)")

    p = sub.add_parser("report", help="(re)build RUN_DIR/report.html: tables, plots, disagreements")
    p.add_argument("run_dir", help="a run folder, e.g. outputs/demo/latest")

    p = sub.add_parser("demo", help="generate the demo task and run the whole job on it")
    p.add_argument("--output", default="outputs/demo", help="where the demo data and run go")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


#: The stage a stand-alone stage command runs (whose task.kind support zuoxiao.core.kinds checks).
STAGE_OF_COMMAND = {"label": "label", "finetune-teacher": "finetune", "train": "train", "compress": "compress",
                    "ship": "ship", "export": "ship"}


def _load(args, prepare: bool = True):
    """The config, with task.split / sample sources replaced by their written parts (zuoxiao.core.split), so a
    stand-alone stage reads the same rows as `zuoxiao run` (which prepares them itself: prepare=False)."""
    from zuoxiao.core.config import load_config
    from zuoxiao.core.split import prepare_data

    cfg = load_config(args.config, args.overrides)
    stage = STAGE_OF_COMMAND.get(getattr(args, "command", None))  # (tests call _load with a bare Namespace)
    if stage is not None:  # a stand-alone stage; `zuoxiao run` checks its whole chain in run_job
        from zuoxiao.core.kinds import require_supported

        require_supported(cfg.task.kind, [stage])
    return prepare_data(cfg)[0] if prepare else cfg


def _print_json(obj) -> None:
    # Under `accelerate launch` every process runs the command: only rank 0 prints the result.
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(obj, indent=2, default=str))


def _print_headline(stage: str, result) -> None:
    """The stage's headline numbers, as `zuoxiao run` prints them; on stderr, so stdout stays JSON."""
    if os.environ.get("RANK", "0") == "0":
        for line in result.headline_lines(stage):
            print(line, file=sys.stderr)


def _stage_lock(cfg, args):
    """Stand-alone stage commands take the same lock as `zuoxiao run`: two writers never share an output dir.

    Under a multi-process launcher (accelerate launch) only rank 0 takes it; the run's own train launcher
    runs inside `zuoxiao run`, which already holds it.
    """
    from contextlib import nullcontext

    from zuoxiao.core.lock import RunLock

    if os.environ.get("RANK", "0") != "0" or os.environ.get("ZUOXIAO_LOCK_HELD") == "1":
        return nullcontext()
    return RunLock(Path(cfg.output_dir), purpose=f"zuoxiao {args.command}")


def _validate(args) -> int:
    import yaml

    cfg = _load(args, prepare=args.data)  # the config alone; --data: the split / sampled parts too
    if args.data:
        from zuoxiao.core.datacheck import check_data

        report = check_data(cfg)
        print(report.to_json() if args.json else report.to_text())
        return EXIT_OK if report.ok else EXIT_BAD_INPUT
    if not args.quiet:
        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
    print(f"{args.config}: OK", file=sys.stderr)
    return EXIT_OK


def _label(args) -> int:
    from zuoxiao.core.paths import StagePaths
    from zuoxiao.core.results import LabelResult
    from zuoxiao.pipelines.label import label_from_config

    cfg = _load(args)
    out = args.output or StagePaths(Path(cfg.output_dir)).label  # a local path or a Beam URI (s3://...)
    with _stage_lock(cfg, args):
        manifest = label_from_config(cfg, out, beam_args=args.beam_args)
    _print_json({"output": str(out), "counts": manifest["counts"]})
    _print_headline("label", LabelResult.from_manifest(out, manifest))
    return EXIT_OK


def _finetune(args) -> int:
    from zuoxiao.core.paths import StagePaths
    from zuoxiao.core.results import FinetuneResult
    from zuoxiao.teacher.finetune.stage import finetune_teacher

    cfg = _load(args)
    out = Path(args.output) if args.output else StagePaths(Path(cfg.output_dir)).teacher
    with _stage_lock(cfg, args):
        metrics = finetune_teacher(cfg, out)
    _print_json(metrics)
    _print_headline("finetune", FinetuneResult.from_metrics(out, metrics))
    return EXIT_OK


def _train(args) -> int:
    from zuoxiao.core.config.views import TrainView
    from zuoxiao.core.paths import StagePaths
    from zuoxiao.core.results import TrainResult
    from zuoxiao.student.train import train

    cfg = _load(args)
    paths = StagePaths(Path(cfg.output_dir))
    shards = Path(args.shards) if args.shards else paths.label
    out = Path(args.output) if args.output else paths.student
    with _stage_lock(cfg, args):
        metrics = train(TrainView.of(cfg), shards, out, resume=args.resume)
    _print_json(metrics)
    _print_headline("train", TrainResult.from_metrics(out, metrics))
    return EXIT_OK


def _compress(args) -> int:
    from zuoxiao.core.config.views import CompressView
    from zuoxiao.core.paths import StagePaths
    from zuoxiao.student.compress.stage import compress

    cfg = _load(args)
    with _stage_lock(cfg, args):
        result = compress(CompressView.of(cfg), StagePaths(Path(cfg.output_dir)))
    _print_json(result.to_json())
    _print_headline("compress", result)
    return EXIT_OK


def _run(args) -> int:
    from zuoxiao.run.runner import run_job

    cfg = _load(args, prepare=False)
    summary = run_job(cfg, force=args.force)
    return summary.get("exit_code", EXIT_OK)


def _serve_page(args) -> int:
    from zuoxiao.ship.serve import serve_page

    return serve_page(args.bundle, args.port)


def _report(args) -> int:
    from zuoxiao.core.errors import InputError
    from zuoxiao.run.report_html import write_report_html

    if not (Path(args.run_dir) / "summary.json").is_file():
        raise InputError(f"{args.run_dir} has no summary.json: give a run folder (outputs/<task>/runs/<id> "
                         "or outputs/<task>/latest) of a run that finished")
    print(write_report_html(args.run_dir))
    return EXIT_OK


def _demo(args) -> int:
    from zuoxiao.run.demo import run_demo

    return run_demo(Path(args.output), overrides=args.overrides)


def _export(args) -> int:
    """`ship` / `export`: package <output_dir>/compress, or a run's (--run, or the newest run's when the
    stand-alone layout has none); the bundle goes to <output_dir>/bundle, never into a run folder."""
    from zuoxiao.core.config.views import ShipView
    from zuoxiao.core.paths import ExportPaths
    from zuoxiao.run.locate import compress_source
    from zuoxiao.ship.stage import ship

    cfg = _load(args)
    out = Path(cfg.output_dir)
    with _stage_lock(cfg, args):  # first: a run writing this output dir must finish before we pick its output
        source, note = compress_source(out, args.run)
        if note:
            print(f"zuoxiao: {note}; the bundle goes to {out / 'bundle'}", file=sys.stderr)
        result = ship(ShipView.of(cfg), ExportPaths(out, source=source), _gate_override(args))
    _print_json(result.to_json())
    _print_headline(args.command, result)
    return EXIT_OK


def _gate_override(args):
    """A GateOverride when the export skips the gate (--no-gate) or changes its bounds with --set ship.gate...;
    None otherwise. The gate as configured is the config file's, without those --set values."""
    import getpass
    import socket
    import time

    from zuoxiao.ship.stage import GateOverride

    gate_sets = [o for o in args.overrides if o.split("=", 1)[0].strip().startswith(("ship.gate", "ship="))]
    if not gate_sets and not args.no_gate:
        return None
    from zuoxiao.core.config import load_config

    configured = load_config(args.config, [o for o in args.overrides if o not in gate_sets]).ship.gate
    flags = [f"--set {o}" for o in gate_sets] + (["--no-gate"] if args.no_gate else [])
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - no user name in some containers: the record still says when and how
        who = f"uid {os.getuid()}@{socket.gethostname()}"
    return GateOverride(configured=configured, flags=flags, publish_anyway=args.no_gate, by=who,
                        at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _predict(args) -> int:
    from zuoxiao.run.locate import resolve_bundle
    from zuoxiao.ship.runtime import Bundle

    path, note = resolve_bundle(args.bundle)
    if note:
        print(f"zuoxiao: {note}", file=sys.stderr)
    bundle = Bundle.load(path)
    results = top_k(bundle.predict(args.texts), args.top_k)
    if args.explain:
        for r, explanation in zip(results, bundle.explain(args.texts), strict=True):
            r["explanation"] = explanation
    for i, r in enumerate(results):  # the JSON says so too; stderr keeps stdout parseable
        if r.get("warning") == "empty_input":
            print(f"zuoxiao: warning: text {i} is empty or blank: its label means nothing", file=sys.stderr)
        if r.get("truncated"):
            print(f"zuoxiao: warning: text {i} has {r['num_tokens']} tokens; only the first "
                  f"{r['max_length']} were classified", file=sys.stderr)
    if args.format == "text":
        for text, r in zip(args.texts, results, strict=True):
            print(f"{text!r}\n" + "\n".join(f"  {name}\t{p:.4f}" for name, p in r["probabilities"].items()))
            if args.explain:
                from zuoxiao.ship.explain import print_explanation

                print_explanation(text, r["explanation"])
        return EXIT_OK
    # allow_nan=False: the output is always valid JSON (Bundle.predict refuses non-finite outputs).
    print(json.dumps(results, indent=2, allow_nan=False))
    return EXIT_OK


def top_k(results: list[dict], k: int) -> list[dict]:
    """Keep the k most probable labels of each result, most probable first; "num_classes" says how many
    there are in all (so a reader knows the rest were left out, not zero)."""
    out = []
    for r in results:
        probs = sorted(r["probabilities"].items(), key=lambda kv: -kv[1])
        out.append({**r, "probabilities": dict(probs[:k]), "num_classes": len(probs)})
    return out


#: Each command's function (args -> exit code); build_parser defines their arguments.
COMMANDS = {"validate": _validate, "label": _label, "finetune-teacher": _finetune, "train": _train,
            "compress": _compress, "ship": _export, "export": _export, "run": _run, "predict": _predict,
            "serve-page": _serve_page, "report": _report, "demo": _demo}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Beam flags follow "--": keep them away from argparse's own option parsing.
    beam_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, beam_args = argv[:i], argv[i + 1 :]
    args = build_parser().parse_args(argv)
    if args.command == "label":
        args.beam_args = list(args.beam_args) + beam_args
    # Our own progress at INFO; libraries (Beam, ONNX Runtime's quantiser...) only at WARNING, so
    # their per-tensor chatter does not bury the job's log. -v shows everything.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("zuoxiao", "pipelines", "teacher", "student"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from zuoxiao.run.noise import install_noise_filters

    install_noise_filters()  # before any stage imports Beam or loads a model
    from zuoxiao.run.logs import cli_logging  # bars on a terminal only; progress lines for cron logs

    try:
        with cli_logging(quiet=args.log_quiet, log_json=args.log_json):
            return COMMANDS[args.command](args)
    except (Exception, KeyboardInterrupt) as raw:
        err = user_error(raw)
        if isinstance(err, ZuoxiaoError):
            print(f"zuoxiao: error: {err}", file=sys.stderr)
            return err.exit_code
        if isinstance(err, KeyboardInterrupt):
            print("zuoxiao: interrupted (exit 130); nothing partial was committed, rerun to continue",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        import traceback  # a bug: show the traceback, exit 1

        traceback.print_exception(raw)
        print("zuoxiao: internal error (exit 1); please report the traceback above", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    """The console script: main(), then exit with its code.

    After main() returns, Python still joins the threads Beam, gRPC or torch left running and runs their
    atexit hooks, which can take seconds. A Ctrl-C then printed "Exception ignored in: <module 'threading'>"
    and a KeyboardInterrupt traceback (or, later in finalisation, died by SIGINT), although the command had
    finished and committed its output. So a late Ctrl-C says what happened and exits with the command's own
    code. A process started with SIGINT ignored (nohup, a background job) keeps ignoring it.
    """
    import signal

    code = main()

    def late_interrupt(signum, frame):
        print(f"zuoxiao: interrupted while exiting; the command had already finished (exit {code}) and its "
              "output is complete", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(code)

    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, late_interrupt)
    sys.exit(code)


if __name__ == "__main__":
    entry()

__all__ = ["main", "entry", "build_parser", "EXIT_BAD_INPUT"]
