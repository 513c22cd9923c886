"""Tiny offline models and data for the compress tests: a 2-layer 32-wide BERT, a WordPiece tokenizer
built from a small vocab file, a label-shard set and a fake train-stage output (student + metrics.json)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import string
import tempfile
from pathlib import Path

import torch

from zuoxiao.core.config.views import CompressView, ShipView
from zuoxiao.core.labelout import write_label_output

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["good", "bad", "great", "awful", "movie", "film", "plot", "the", "a", "was", "is", "very",
         "not", "fun", "dull", "love", "hate", "story", "actors", "boring", "superb", "team", "won",
         "match", "stock", "market", "fell", "rose", "new", "phone", "chip", "election", "vote",
         "##s", "##ly", "##ing", "##ed", "unused", "words", "never", "seen", "here", "zebra", "quantum"]
LABELS = ["neg", "pos"]

POS = ["good movie", "great film", "superb story", "love the plot", "very fun film", "the actors was great",
       "a good story", "love the movie", "great plot", "fun film", "superb actors", "very good"]
NEG = ["bad movie", "awful film", "boring story", "hate the plot", "very dull film", "the actors was bad",
       "a dull story", "hate the movie", "awful plot", "not fun", "boring actors", "very bad"]


def vocab_tokens() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + ".,!?'")
    return SPECIALS + WORDS + chars + ["##" + c for c in string.ascii_lowercase]


def make_tokenizer(directory: Path):
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    # transformers 5 ignores vocab_file=; pass the vocab itself (and keep the file for consumers).
    (directory / "vocab.txt").write_text("\n".join(vocab_tokens()) + "\n")
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab_tokens())}, do_lower_case=True)


def make_model(num_labels: int = 2, layers: int = 2, hidden: int = 32, heads: int = 4, ffn: int = 64, seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=len(vocab_tokens()), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=64,
                     num_labels=num_labels, id2label=dict(enumerate(LABELS[:num_labels])),
                     label2id={n: i for i, n in enumerate(LABELS[:num_labels])}, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(cfg)
    model.eval()
    return model


def save_model(model, tokenizer, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def dataset(n_repeat: int = 4):
    texts, labels = [], []
    for _ in range(n_repeat):
        texts += POS + NEG
        labels += [1] * len(POS) + [0] * len(NEG)
    return texts, labels


def write_eval(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for t, y in zip(POS + NEG, [1] * len(POS) + [0] * len(NEG), strict=True):
            f.write(json.dumps({"text": t, "label": LABELS[y]}) + "\n")
    return path


def write_shards(label_dir: Path, teacher, tokenizer, n_repeat: int = 4) -> Path:
    """Label `dataset()` with `teacher` into one shard + manifest, through the format (zuoxiao.core.labelout)."""
    texts, gold = dataset(n_repeat)
    with torch.no_grad():
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        logits = teacher(**enc).logits.float().numpy()
    rows = [{"id": str(i), "text": t, "gold": g, "num_tokens": int(n)}
            for i, (t, g, n) in enumerate(zip(texts, gold, enc["attention_mask"].sum(-1).tolist(), strict=True))]
    write_label_output(label_dir, rows, logits, LABELS[: logits.shape[1]])
    return label_dir


def train_briefly(model, tokenizer, steps: int = 60, lr: float = 3e-3, seed: int = 0):
    """A few full-batch steps so the tiny model separates POS/NEG (real accuracies, not chance)."""
    from zuoxiao.student.compress.latency import torch_threads

    with torch_threads(1):  # 2 shared cores: more threads only contend (6x slower measured)
        return _train(model, tokenizer, steps, lr, seed)


def _train(model, tokenizer, steps, lr, seed):
    texts, labels = dataset(1)
    torch.manual_seed(seed)
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    y = torch.tensor(labels)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def make_stage_root(root: Path, gate: dict | None = None, steps: list | None = None):
    """A fake output_dir after `train`: teacher dir, label shards, student dir + metrics.json, config."""
    from zuoxiao.core.config import parse_config
    from zuoxiao.core.paths import StagePaths

    paths = StagePaths(root)
    tok = make_tokenizer(root / "vocab")
    teacher = train_briefly(make_model(layers=3, seed=1), tok, seed=1)
    save_model(teacher, tok, paths.teacher)
    write_shards(paths.label, teacher, tok)
    student = train_briefly(make_model(layers=2, seed=2), tok, seed=2)
    save_model(student, tok, paths.student)
    eval_path = write_eval(root / "data" / "eval.jsonl")
    metrics = {"teacher": {"accuracy": 1.0, "macro_f1": 1.0, "path": str(paths.teacher),
                           "params": sum(p.numel() for p in teacher.parameters())},
               "student": {"accuracy": 1.0, "macro_f1": 1.0}}
    (paths.student / "metrics.json").write_text(json.dumps(metrics))
    raw = {"output_dir": str(root),
           "task": {"name": "tiny-sentiment", "label_names": LABELS,
                    "eval": {"path": str(eval_path), "text_column": "text", "label_column": "label"},
                    # the tiny task has one gold file: it doubles as dev (calibration) in these tests
                    "dev": {"path": str(eval_path), "text_column": "text", "label_column": "label"}},
           "label": {"input": {"path": str(eval_path)}},
           "train": {"max_length": 16},
           "compress": {"steps": steps if steps is not None else [{"kind": "vocab_trim"}, {"kind": "quantize"}],
                        "latency_runs": 3},
           "ship": {"gate": gate or {"min_retention": 0.5}}}
    return parse_config(raw), paths


FULL_STEPS = [{"kind": "vocab_trim"}, {"kind": "prune_heads", "keep": 0.5, "rows": 16},
              {"kind": "prune_neurons", "keep": 0.5, "rows": 16}, {"kind": "low_rank", "rank": 4},
              {"kind": "magnitude", "sparsity": 0.3}, {"kind": "recover", "steps": 3, "batch_size": 8},
              {"kind": "quantize", "embedding_bits": 4}]


@functools.cache
def wide_exported():
    """(model, tokenizer, ONNX path, dir) of a wider tiny model (hidden 64: dynamic and static int8 need
    enough weights for meaningful scales), trained once and exported once for every quantisation test.
    Tests must not modify the model in place (deepcopy it) and write their own files under dir."""
    from zuoxiao.student.compress.export import export_onnx

    d = Path(tempfile.mkdtemp(prefix="zx-wide-onnx-"))
    atexit.register(shutil.rmtree, d, True)
    tok = make_tokenizer(d / "tok")
    model = train_briefly(make_model(hidden=64, heads=4, ffn=128), tok)
    return model, tok, export_onnx(model, tok, d / "model.onnx"), d


@functools.cache
def compressed_stage():
    """One tiny job compressed with every step kind, then shipped (shared by the compress and ship tests).

    Returns (cfg, paths, result): result is compress/report.json plus the typed "compress" and "ship" results.
    """
    from zuoxiao.ship.stage import ship
    from zuoxiao.student.compress.latency import torch_threads
    from zuoxiao.student.compress.stage import compress

    root = Path(tempfile.mkdtemp(prefix="zx-compress-test-"))
    atexit.register(shutil.rmtree, root, True)
    with torch_threads(1):
        cfg, paths = make_stage_root(root, steps=FULL_STEPS)
        compressed = compress(CompressView.of(cfg), paths)
        shipped = ship(ShipView.of(cfg), paths)
    report = json.loads(Path(compressed.report).read_text())
    return cfg, paths, {**report, "compress": compressed, "ship": shipped}
