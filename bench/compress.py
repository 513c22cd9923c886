"""Compression benchmark (not a test): teacher + distilled student -> compressed ONNX int8 bundle.

    flock /tmp/zx-cpu.lock python bench/compress.py --dataset sst2 --workdir /tmp/zx-bench-sst2 > sst2.json

--workdir holds (or receives) the train engineer's bench layout: teacher/ (fine-tuned MiniLM), label/
(soft-label shards), student/ (distilled, with metrics.json). When student/metrics.json is missing there,
bench/distill_quality.py is run first to make them (fine-tune, label, distil; --skip-hard).

Then the compress stage runs with the steps below on test.tsv as the gold set and prints JSON:
per step accuracy, bytes, latency p50 at batch 1 with 16 and 64 tokens, model only and with tokenisation;
the final size_ratio (bundle runtime bytes / teacher fp32 safetensors bytes), latency_ratio (bundle ONNX
p50 / teacher PyTorch fp32 p50, batch 1, 1 thread, the larger of the 16- and 64-token ratios, each model
timed warm in alternating blocks; latency_ratio_with_tokenizer likewise with tokenisation in both timings;
latency_ratio_per_call with the two alternating call by call, the bundle then timed cold; each the median of
--latency-repeat measurements, latency_ratio_range their spread: bench/latency.py),
retention (bundle / teacher accuracy) and compression_cost_points (uncompressed student accuracy - bundle
accuracy, in points), against the targets size_ratio <= 0.025, latency_ratio <= 0.05, retention >= 0.98,
cost <= 1 point (issue 10).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

TARGETS = {"size_ratio": 0.025, "latency_ratio": 0.05, "retention": 0.98, "compression_cost_points": 1.0}
# datasets bench/distill_quality.py may not know yet (it trains them; --from reuses its workdir)
EXTRA_DATASETS = {"tweeteval_emoji": {"text": "text", "max_length": 64, "labels": None}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=["sst2", "agnews", "tweeteval_emoji"], required=True)
    p.add_argument("--workdir", required=True, help="teacher/ label/ student/ (made by distill_quality if absent)")
    p.add_argument("--from", dest="source", default=None,
                   help="an existing distill_quality workdir: its teacher/ label/ student/ are linked, not copied")
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--test-rows", type=int, default=None, help="limit test.tsv (default: all rows)")
    p.add_argument("--min-count", type=int, default=2, help="vocab_trim.min_count")
    p.add_argument("--heads-keep", type=float, default=0.5, help="prune_heads.keep (1 = skip the step)")
    p.add_argument("--ffn-keep", type=float, default=0.5, help="prune_neurons.keep (1 = skip the step)")
    p.add_argument("--emb-rank", type=int, default=0, help="low_rank of word_embeddings to this rank (0 = skip)")
    p.add_argument("--factorize-rank", type=int, default=0,
                   help="factorize_embeddings to this inner width (0 = skip the step)")
    p.add_argument("--quant-mode", choices=["dynamic", "static"], default="dynamic")
    p.add_argument("--calibration-rows", type=int, default=256)
    p.add_argument("--calibration-method", choices=["minmax", "entropy", "percentile"], default="minmax")
    p.add_argument("--activation-type", choices=["uint8", "int8"], default="uint8")
    p.add_argument("--optimize", choices=["none", "basic", "extended"], default="none")
    p.add_argument("--recover-steps", type=int, default=400)
    p.add_argument("--recover-lr", type=float, default=1e-4)
    p.add_argument("--latency-runs", type=int, default=40)
    p.add_argument("--latency-repeat", type=int, default=3,
                   help="paired teacher/bundle measurements; latency_ratio is their median (bench/latency.py --repeat)")
    p.add_argument("--distill-args", default="--skip-hard --transfer-rows 20000",
                   help="extra flags for bench/distill_quality.py when the workdir is empty")
    return p.parse_args(argv)


def steps(args, max_length: int) -> list[dict]:
    s = [{"kind": "vocab_trim", "min_count": args.min_count, "max_positions": max_length}]
    if args.heads_keep < 1:
        s.append({"kind": "prune_heads", "keep": args.heads_keep, "rows": 1024})
    if args.ffn_keep < 1:
        s.append({"kind": "prune_neurons", "keep": args.ffn_keep, "rows": 1024})
    if args.emb_rank:
        s.append({"kind": "low_rank", "rank": args.emb_rank, "modules": [r"word_embeddings$"]})
    if args.factorize_rank:
        s.append({"kind": "factorize_embeddings", "rank": args.factorize_rank})
    if args.heads_keep < 1 or args.ffn_keep < 1 or args.emb_rank or args.factorize_rank:
        s.append({"kind": "recover", "steps": args.recover_steps, "lr": args.recover_lr, "batch_size": 32})
    q = {"kind": "quantize", "backend": "onnx", "per_channel": True, "mode": args.quant_mode,
         "optimize": args.optimize}
    if args.quant_mode == "static":
        q.update(calibration_rows=args.calibration_rows, calibration_method=args.calibration_method,
                 activation_type=args.activation_type)
    return s + [q]


def ensure_trained(args, work: Path) -> None:
    if args.source:
        for sub in ("teacher", "label", "student"):
            link = work / sub
            if not link.exists():
                link.symlink_to(Path(args.source).resolve() / sub)
    if (work / "student" / "metrics.json").is_file() and (work / "label" / "manifest.json").is_file():
        print(f"reusing trained teacher/student in {work}", file=sys.stderr)
        return
    import distill_quality

    if args.dataset not in distill_quality.DATASETS:
        raise SystemExit(f"bench/distill_quality.py cannot train {args.dataset} yet: pass --from a workdir that "
                         "holds teacher/ label/ student/ for it")
    distill_quality.main(["--dataset", args.dataset, "--workdir", str(work), *args.distill_args.split()])


def step_latency_16_64(report: dict, runs: int, texts: list[str]) -> dict:
    """Batch-1 p50 at 16 and 64 tokens for every step's artefact, model only and with the tokenizer."""
    from transformers import AutoTokenizer

    from zuoxiao.student.compress.export import input_names
    from zuoxiao.student.compress.latency import measure
    from zuoxiao.student.compress.modelio import load_model

    out = {}
    for r in report["steps"]:
        d = Path(report["student_dir"]) if r["name"] == "student" else Path(report["final"]["dir"]).parent / r["name"]
        res = {}
        for L in (16, 64):
            if (d / "model.onnx").is_file():
                cfg = json.loads((d / "config.json").read_text())
                names = ["input_ids", "attention_mask", "token_type_ids"]
                lat = measure("onnx", d / "model.onnx", cfg["vocab_size"], names, seq_len=L, batches=(1,),
                              runs=runs, tokenizer=AutoTokenizer.from_pretrained(d), texts=texts)
            else:
                model, tok = load_model(d)
                lat = measure("torch", model, model.config.vocab_size, input_names(tok, model), seq_len=L,
                              batches=(1,), runs=runs, tokenizer=tok, texts=texts)
            res[L] = lat["b1"]["p50"]
            res[f"{L}_with_tokenizer"] = lat["b1_with_tokenizer"]["p50"]
        out[r["name"]] = res
    return out


def dataset_spec(name: str) -> dict:
    import distill_quality

    if name in distill_quality.DATASETS:
        return distill_quality.DATASETS[name]
    return EXTRA_DATASETS[name]


def student_labels(student_dir: Path) -> list[str]:
    """Label names in the student's output order (its config id2label), for datasets without a fixed list."""
    id2label = json.loads((student_dir / "config.json").read_text())["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]


def main(argv=None) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ensure_trained(args, work)
    train_s = round(time.time() - t0, 1)
    from zuoxiao.core.config.views import CompressView, ShipView
    from zuoxiao.core.paths import StagePaths
    from zuoxiao.ship.stage import ship
    from zuoxiao.student.compress.modelio import weights_bytes
    from zuoxiao.student.compress.stage import compress

    ds = dict(dataset_spec(args.dataset))
    metrics = json.loads((work / "student" / "metrics.json").read_text())
    teacher_dir = metrics["teacher"]["path"]
    root = Path(args.data_dir) / args.dataset
    ds["labels"] = ds["labels"] or student_labels(work / "student")
    from zuoxiao.core.config import parse_config

    cfg = parse_config({
        "output_dir": str(work), "seed": 0,
        "task": {"name": args.dataset, "label_names": ds["labels"],
                 "eval": {"path": str(root / "test.tsv"), "format": "tsv", "text_column": ds["text"],
                          "label_column": "label", "limit": args.test_rows}},
        "label": {"input": {"path": str(root / "train.tsv")}, "teacher": {"path": teacher_dir,
                                                                         "max_length": ds["max_length"]}},
        "train": {"max_length": ds["max_length"], "optim": {"batch_size": 32}},
        "compress": {"steps": steps(args, ds["max_length"]), "latency_runs": args.latency_runs},
        "ship": {"gate": {"min_retention": None}},
    })
    paths = StagePaths(work)
    t = time.time()
    compress(CompressView.of(cfg), paths)
    ship(ShipView.of(cfg), paths)  # no gate bounds are set here: it always publishes
    compress_s = round(time.time() - t, 1)
    report = json.loads((paths.compress / "report.json").read_text())
    from zuoxiao.core.goldsets import read_labelled

    texts = read_labelled(cfg.task.eval, ds["labels"]).texts[:64]
    lat = step_latency_16_64(report, args.latency_runs, texts)
    from latency import load_pair, repeated

    ratio = repeated(load_pair(teacher_dir, paths.bundle), texts, runs=args.latency_runs, block=10,
                     repeat=args.latency_repeat)
    teacher = report["teacher"]
    shipped = json.loads((paths.ship / "shipped.json").read_text())["bundle"]
    student = report["steps"][0]
    out = {
        "dataset": args.dataset, "test_rows": shipped["n"],
        "teacher": {"accuracy": teacher["accuracy"], "bytes": teacher["bytes"], "params": teacher["params"],
                    "b1_p50_ms": teacher["latency_ms"]["b1"]["p50"]},
        "steps": [{"name": r["name"], "runtime": r["runtime"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"],
                   "agreement": r.get("agreement"), "params": r["params"], "bytes": r["bytes"],
                   "latency_b1_p50_ms": {"16tok": lat[r["name"]][16], "64tok": lat[r["name"]][64],
                                         "16tok_with_tokenizer": lat[r["name"]]["16_with_tokenizer"],
                                         "64tok_with_tokenizer": lat[r["name"]]["64_with_tokenizer"]},
                   "info": {k: v for k, v in (r.get("info") or {}).items() if k != "per_layer"}}
                  for r in report["steps"]],
        "bundle": {"accuracy": shipped["accuracy"], "bytes": shipped["bytes"], "model_bytes": shipped["model_bytes"],
                   "ece": shipped["ece"], "agreement": shipped["agreement"]},
        "teacher_fp32_safetensors_bytes": weights_bytes(teacher_dir),
        "size_ratio": round(shipped["bytes"] / weights_bytes(teacher_dir), 4),
        **{k: ratio[k] for k in ("latency_ratio", "latency_ratio_with_tokenizer", "latency_ratio_per_call",
                                 "latency_ratio_per_call_with_tokenizer")},
        "latency_ratio_range": ratio["latency_ratio_range"],
        "paired_latency": {"warm": ratio["warm"], "per_call": ratio["per_call"], "repeats": ratio["repeats"]},
        "machine": report.get("measured_on"),
        "retention": round(shipped["accuracy"] / teacher["accuracy"], 4),
        "compression_cost_points": round(100 * (student["accuracy"] - shipped["accuracy"]), 2),
        "targets": TARGETS,
        "times_s": {"train_or_reuse": train_s, "compress": compress_s},
        "settings": vars(args), "steps_config": steps(args, ds["max_length"]), "bundle_dir": str(paths.bundle),
    }
    out["meets"] = {"size_ratio": out["size_ratio"] <= TARGETS["size_ratio"],
                    "latency_ratio": out["latency_ratio"] <= TARGETS["latency_ratio"],
                    "retention": out["retention"] >= TARGETS["retention"],
                    "compression_cost_points": out["compression_cost_points"] <= TARGETS["compression_cost_points"]}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
