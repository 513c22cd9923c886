"""The `zuoxiao` command: parses arguments, loads the config, calls the stage library. No logic here.

    zuoxiao validate configs/demo.yaml
    zuoxiao label configs/demo.yaml --set label.batch_size=64 -- --runner=DirectRunner
    zuoxiao finetune-teacher | train | compress | run CONFIG
    zuoxiao predict BUNDLE_DIR "some text" ...
    zuoxiao demo

Exit codes: see zuoxiao/errors.py (0 ok, 1 internal, 2 bad config/input, 3 gate failed, 4 locked,
5 integrity).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from zuoxiao.core.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, ZuoxiaoError


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set label.batch_size=64 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zuoxiao", description="Distillation as a data pipeline.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a config file and print the resolved config")
    _config_args(p)
    p.add_argument("--quiet", action="store_true", help="print only problems")

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

    p = sub.add_parser("compress", help="compress the student, export the bundle, apply the gate")
    _config_args(p)

    p = sub.add_parser("export", help="(re)build the app-team bundle from the compressed model")
    _config_args(p)

    p = sub.add_parser("run", help="the whole job: finetune -> label -> train -> compress -> gate")
    _config_args(p)
    p.add_argument("--force", action="append", default=[], metavar="STAGE", help="redo STAGE even if done")

    p = sub.add_parser("predict", help="classify texts with an exported bundle (onnxruntime only)")
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("texts", nargs="+", help="texts to classify")

    p = sub.add_parser("demo", help="generate the demo task and run the whole job on it")
    p.add_argument("--output", default="outputs/demo", help="where the demo data and run go")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


def _load(args):
    from zuoxiao.core.config import load_config

    return load_config(args.config, args.overrides)


def _print_json(obj) -> None:
    # Under `accelerate launch` every process runs the command: only rank 0 prints the result.
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(obj, indent=2, default=str))


def _dispatch(args) -> int:
    from zuoxiao.core.paths import StagePaths

    if args.command == "validate":
        import yaml

        cfg = _load(args)
        if not args.quiet:
            print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")
        print(f"{args.config}: OK", file=sys.stderr)
        return EXIT_OK
    if args.command == "label":
        from zuoxiao.pipelines.label import label_from_config

        cfg = _load(args)
        out = args.output or StagePaths(Path(cfg.output_dir)).label  # a local path or a Beam URI (s3://...)
        manifest = label_from_config(cfg, out, beam_args=args.beam_args)
        _print_json({"output": str(out), "counts": manifest["counts"]})
        return EXIT_OK
    if args.command == "finetune-teacher":
        from zuoxiao.teacher.finetune import finetune_teacher

        cfg = _load(args)
        out = Path(args.output) if args.output else StagePaths(Path(cfg.output_dir)).teacher
        _print_json(finetune_teacher(cfg, out))
        return EXIT_OK
    if args.command == "train":
        from zuoxiao.student.train import train

        cfg = _load(args)
        paths = StagePaths(Path(cfg.output_dir))
        shards = Path(args.shards) if args.shards else paths.label
        out = Path(args.output) if args.output else paths.student
        _print_json(train(cfg, shards, out, resume=args.resume))
        return EXIT_OK
    if args.command == "compress":
        from zuoxiao.student.compress.stage import compress

        cfg = _load(args)
        _print_json(compress(cfg, StagePaths(Path(cfg.output_dir))))
        return EXIT_OK
    if args.command == "export":
        from zuoxiao.student.compress.stage import export_bundle

        cfg = _load(args)
        _print_json(export_bundle(cfg, StagePaths(Path(cfg.output_dir))))
        return EXIT_OK
    if args.command == "run":
        from zuoxiao.run.runner import run_job

        cfg = _load(args)
        summary = run_job(cfg, force=args.force)
        return summary.get("exit_code", EXIT_OK)
    if args.command == "predict":
        from zuoxiao.ship.runtime import Bundle

        bundle = Bundle.load(args.bundle)
        _print_json(bundle.predict(args.texts))
        return EXIT_OK
    if args.command == "demo":
        from zuoxiao.run.demo import run_demo

        return run_demo(Path(args.output), overrides=args.overrides)
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Beam flags follow "--": keep them away from argparse's own option parsing.
    beam_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, beam_args = argv[:i], argv[i + 1 :]
    args = build_parser().parse_args(argv)
    if hasattr(args, "beam_args"):
        args.beam_args = list(args.beam_args) + beam_args
    # Our own progress at INFO; libraries (Beam, ONNX Runtime's quantiser...) only at WARNING, so
    # their per-tensor chatter does not bury the job's log. -v shows everything.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("zuoxiao", "pipelines", "teacher", "student"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return _dispatch(args)
    except ZuoxiaoError as err:
        print(f"zuoxiao: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("zuoxiao: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: show the traceback, exit 1
        import traceback

        traceback.print_exc()
        print("zuoxiao: internal error (exit 1); please report the traceback above", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main", "build_parser", "EXIT_BAD_INPUT"]
