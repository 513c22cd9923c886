"""Label-stage throughput on real SST-2 text with the real MiniLM teacher (not a test).

    flock /tmp/zx-cpu.lock python bench/label_throughput.py [--data-dir ../shared/data] [--rows 4000]

In one process, interleaved over --repeats rounds (so load drift hits every variant alike):
  (a) naive: a bare PyTorch loop in file order, batch 32, padded to the batch's longest row;
  (b) sorted: the same loop over length-sorted batches of 32;
  (c) pipeline: `pipelines.label.label_from_config` end to end (read, validate, tokenize, teacher,
      shards, manifest: everything, including its own teacher load and fingerprint).
Bare loops time tokenisation + forward passes with the model already loaded. Each variant reports its
best round. Prints one JSON object with naive_ex_per_s, sorted_ex_per_s, pipeline_ex_per_s,
pipeline_vs_sorted, pipeline_vs_naive, gemm_gflops (a 1024^3 float32 matmul timed on the spot) and
pipeline_gflops (model FLOPs on the tokens the teacher really ran, per pipeline second).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LABELS = ["0", "1"]


def gemm_gflops(n: int = 1024, reps: int = 10) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def model_flops(config, lengths) -> float:
    """Forward FLOPs of a BERT-style encoder over sequences of the given token lengths (no padding)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for t in lengths:
        per_layer = 2 * t * (4 * h * h + 2 * h * i) + 2 * 2 * t * t * h  # projections+FFN, QK^T and AV
        total += layers * per_layer
    return total


def read_rows(data_dir: Path, rows: int) -> list[str]:
    path = data_dir / "sst2" / "train.tsv"
    texts = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        col = header.index("sentence")
        for line in f:
            texts.append(line.rstrip("\n").split("\t")[col])
            if len(texts) >= rows:
                break
    return texts


def bare_loop(model, tokenizer, texts: list[str], max_length: int, sort: bool, batch: int = 32) -> dict:
    import torch

    order = list(range(len(texts)))
    start = time.perf_counter()
    if sort:
        lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        order.sort(key=lambda i: lengths[i])
    padded = 0
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            chunk = [texts[i] for i in order[s:s + batch]]
            enc = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            padded += enc["input_ids"].numel()
            model(**enc)
    return {"seconds": time.perf_counter() - start, "padded_tokens": padded}


def pipeline_run(data_dir: Path, rows: int, max_length: int, batch_size: int, max_batch_tokens: int | None,
                 workdir: Path, extra: list[str]) -> dict:
    from zuoxiao.core.config import load_config, parse_config
    from zuoxiao.pipelines.label import label_from_config

    raw = {
        "output_dir": str(workdir),
        "task": {"name": "sst2", "label_names": LABELS},
        "label": {
            "input": {"path": str(data_dir / "sst2" / "train.tsv"), "format": "tsv", "text_column": "sentence",
                      "label_column": "label", "limit": rows},
            "teacher": {"max_length": max_length},
            "batch_size": batch_size,
            "max_batch_tokens": max_batch_tokens,
        },
    }
    cfg = parse_config(raw)
    if extra:  # --set overrides, validated like the CLI's
        tmp = workdir / "bench.yaml"
        import yaml

        tmp.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
        cfg = load_config(tmp, extra)
    out = workdir / "label"
    start = time.perf_counter()
    m = label_from_config(cfg, out, beam_args=["--runner=DirectRunner"])
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "manifest": m}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--max-length", type=int, default=64, help="teacher tokens (configs/sst2.yaml uses 64)")
    ap.add_argument("--batch-size", type=int, default=128, help="pipeline label.batch_size (configs/sst2.yaml)")
    ap.add_argument("--max-batch-tokens", type=int, default=8192, help="pipeline label.max_batch_tokens")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra label config overrides")
    args = ap.parse_args(argv)

    import torch

    from zuoxiao.teacher.classifier import load_classifier, load_tokenizer

    data_dir = args.data_dir.resolve()
    texts = read_rows(data_dir, args.rows)
    model = load_classifier("embedded:all-MiniLM-L6-v2", LABELS)
    tokenizer = load_tokenizer("embedded:all-MiniLM-L6-v2")
    gflops_peak = gemm_gflops()
    workdir = Path(tempfile.mkdtemp(prefix="zx-label-bench-"))
    results: dict[str, list] = {"naive": [], "sorted": [], "pipeline": []}
    try:
        bare_loop(model, tokenizer, texts[:64], args.max_length, sort=False)  # warm-up
        for _ in range(args.repeats):
            results["naive"].append(bare_loop(model, tokenizer, texts, args.max_length, sort=False))
            results["sorted"].append(bare_loop(model, tokenizer, texts, args.max_length, sort=True))
            results["pipeline"].append(pipeline_run(data_dir, args.rows, args.max_length, args.batch_size,
                                                    args.max_batch_tokens, workdir, args.overrides))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in results.items()}
    m = best["pipeline"]["manifest"]
    n_pipe = m["counts"]["labeled"]
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    out = {
        "rows": len(texts),
        "max_length": args.max_length,
        "torch_threads": torch.get_num_threads(),
        "pipeline_batch_size": args.batch_size,
        "pipeline_max_batch_tokens": args.max_batch_tokens,
        "naive_ex_per_s": round(len(texts) / best["naive"]["seconds"], 1),
        "sorted_ex_per_s": round(len(texts) / best["sorted"]["seconds"], 1),
        "pipeline_ex_per_s": round(n_pipe / best["pipeline"]["seconds"], 1),
        "pipeline_rows_labeled": n_pipe,
        "pipeline_rows_rejected": m["counts"]["rejected"],
    }
    out["pipeline_vs_sorted"] = round(out["pipeline_ex_per_s"] / out["sorted_ex_per_s"], 3)
    out["pipeline_vs_naive"] = round(out["pipeline_ex_per_s"] / out["naive_ex_per_s"], 3)
    out["gemm_gflops"] = round(gflops_peak, 1)
    # FLOPs of the rows the pipeline labeled (duplicates it rejected are not charged to it)
    labeled_share = n_pipe / len(texts)
    out["pipeline_gflops"] = round(model_flops(model.config, lengths) * labeled_share
                                   / best["pipeline"]["seconds"] / 1e9, 2)
    out["padded_tokens"] = {"naive": best["naive"]["padded_tokens"], "sorted": best["sorted"]["padded_tokens"],
                            "pipeline": m["counts"]["teacher_tokens"], "real": sum(lengths)}
    out["seconds"] = {k: [round(r["seconds"], 2) for r in v] for k, v in results.items()}
    out["pipeline_timings"] = m["timings"]
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
