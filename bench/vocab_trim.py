"""What vocab_trim.min_count costs on a small, long-tailed task (not a test): tweeteval_emoji.

    flock /tmp/zx-cpu.lock python bench/vocab_trim.py --transfer-rows 3200 > vocab.json

A 2-layer MiniLM cut (the embedded teacher's first two layers) is fine-tuned on --transfer-rows seeded
train rows (gold labels: the trim's mechanism, rare words re-split into pieces the model never saw, is
the same as for a distilled student, and this takes a minute on 2 CPU cores). Then, for min_count 1, 2,
6 and auto (with task.dev = a seeded --dev-rows sample of dev.tsv): kept vocabulary, share of transfer
tokens kept, share of dev tokens that become [UNK], share of dev texts that tokenise differently, and
dev accuracy of the trimmed model vs the untrimmed one. Prints JSON.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "tweeteval_emoji"


def read_tsv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def sample(texts, labels, n, seed):
    idx = np.sort(np.random.default_rng(seed).choice(len(texts), min(n, len(texts)), replace=False))
    return [texts[i] for i in idx], [labels[i] for i in idx]


def finetune(model, tok, texts, y, epochs: int, max_length: int, seed: int):
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = order.permutation(len(texts))
        for s in range(0, len(perm), 32):
            b = perm[s : s + 32]
            enc = tok([texts[i] for i in b], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            loss = torch.nn.functional.cross_entropy(model(**enc).logits, torch.tensor(y[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def main(argv: list[str]) -> int:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from zuoxiao.student.compress import vocab_auto as A
    from zuoxiao.student.compress.vocab import token_counts, trim_vocab, unk_rate
    from zuoxiao.teacher.classifier import resolve_model_path

    p = argparse.ArgumentParser()
    p.add_argument("--transfer-rows", type=int, default=3200)
    p.add_argument("--dev-rows", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.time()
    tr_x, tr_l = sample(*read_tsv(DATA / "train.tsv"), args.transfer_rows, args.seed)
    dv_x, dv_l = sample(*read_tsv(DATA / "dev.tsv"), args.dev_rows, args.seed)
    names = sorted(set(tr_l) | set(dv_l))
    tr_y, dv_y = np.array([names.index(v) for v in tr_l]), np.array([names.index(v) for v in dv_l])
    path = resolve_model_path("embedded:all-MiniLM-L6-v2")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(names), num_hidden_layers=2)
    model = finetune(model, tok, tr_x, tr_y, args.epochs, args.max_length, args.seed)
    dev = (dv_x, dv_y)
    base = A.accuracy(model, tok, dev, args.max_length, 64)
    counts = token_counts(tok, tr_x)
    out = {"dataset": "tweeteval_emoji", "classes": len(names), "transfer_rows": len(tr_x), "dev_rows": len(dv_x),
           "vocab_before": len(tok.get_vocab()), "dev_accuracy_untrimmed": round(base, 4),
           "dev_unk_rate_untrimmed": round(unk_rate(tok, dv_x), 5), "rows": []}
    cap = A.size_cap(len(tr_x), 2000)
    auto, trials = (1, []) if cap == 1 else A.choose_min_count(
        model, tok, tr_x, dev, cap=cap, tolerance=0.5, keep_chars=True, max_length=args.max_length,
        batch_size=64, base_accuracy=base)
    out["auto"] = {"cap": cap, "chosen": auto, "trials": trials}
    with tempfile.TemporaryDirectory() as tmp:
        for c in (1, 2, 6):
            m, t, info = trim_vocab(copy.deepcopy(model), tok, tr_x, f"{tmp}/{c}", min_count=c)
            acc = A.accuracy(m, t, dev, args.max_length, 64)
            out["rows"].append({"min_count": c, "auto": c == auto, "vocab_after": info["vocab_after"],
                                "transfer_token_coverage": round(A.token_coverage(counts, c), 4),
                                "dev_unk_rate": round(unk_rate(t, dv_x), 5),
                                "dev_texts_resplit": round(A.changed_share(tok, t, dv_x), 4),
                                "dev_accuracy": round(acc, 4), "cost_points": round(100 * (base - acc), 2)})
    out["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
