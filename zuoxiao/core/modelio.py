"""Hugging Face classifier directories: save (safetensors + tokenizer + vocab.txt), count, freeze.

Shared by teacher fine-tuning and student training, so neither imports the other.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def count_params(model) -> dict:
    """params, trainable and non-embedding (everything outside `*.embeddings.*`) parameter counts."""
    total = trainable = embedding = 0
    for name, p in model.named_parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
        embedding += p.numel() if ".embeddings." in f".{name}" else 0
    return {"params": total, "trainable": trainable, "non_embedding_params": total - embedding}


def freeze_word_embeddings(model) -> None:
    model.get_input_embeddings().weight.requires_grad_(False)


def save_model_dir(model, tokenizer, out_dir: Path, label_names: list[str]) -> None:
    """save_pretrained (safetensors) + tokenizer, with vocab.txt even where transformers 5 skips it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.id2label = dict(enumerate(label_names))
    model.config.label2id = {n: i for i, n in enumerate(label_names)}
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    write_vocab_txt(tokenizer, out_dir)


def write_vocab_txt(tokenizer, out_dir: Path) -> None:
    """WordPiece tokenizers: write vocab.txt (one token per line, id order) if it is missing."""
    target = Path(out_dir) / "vocab.txt"
    if target.is_file():
        return
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordPiece":
        return
    vocab = backend.get_vocab(with_added_tokens=True)
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        log.warning("vocabulary ids are not contiguous; vocab.txt not written")
        return
    target.write_text("".join(tok + "\n" for tok, _ in by_id), encoding="utf-8")
