"""Evaluate a sequence classifier on gold data: logits, accuracy, macro-F1.

Used by training (periodic evaluation, teacher evaluation) and by the compress stage.
"""

from __future__ import annotations

import numpy as np
import torch

from zuoxiao.core.config.base import DataSource
from zuoxiao.core.goldsets import read_labelled
from zuoxiao.core.metrics import classification_metrics


def model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64,
                   progress: bool = False) -> np.ndarray:
    """Logits [N, C] float32 in the order of ``texts``.

    Texts are run longest-first in length-sorted batches (little padding); the model is put in eval mode
    for the call and its previous mode restored afterwards.
    """
    if not texts:
        n = getattr(getattr(model, "config", None), "num_labels", 0)
        return np.zeros((0, n), dtype=np.float32)
    was_training = model.training
    model.eval()
    device = model_device(model)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="eval", unit="batch")
    try:
        for s in starts:
            idx = order[s: s + batch_size]
            enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt")
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy()
            if out is None:
                out = np.empty((len(texts), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
    finally:
        model.train(was_training)
    return out


def evaluate_texts(model, tokenizer, texts: list[str], labels: list[int], num_classes: int, max_length: int,
                   batch_size: int = 64) -> dict:
    logits = predict_logits(model, tokenizer, texts, max_length, batch_size)
    pred = logits.argmax(-1)
    return {**classification_metrics(pred, np.asarray(labels), num_classes), "predictions": pred}


def evaluate_model(model, tokenizer, source: DataSource, label_names: list[str], max_length: int,
                   batch_size: int = 64) -> dict:
    """accuracy, macro_f1, n and predictions (np.ndarray [N] of class indices) on a gold DataSource.

    Gold labels are mapped through ``label_names`` (index order of the model's head); a label outside
    them is an InputError naming the label and the fix.
    """
    data = read_labelled(source, label_names)
    return evaluate_texts(model, tokenizer, data.texts, data.labels, len(label_names), max_length, batch_size)
