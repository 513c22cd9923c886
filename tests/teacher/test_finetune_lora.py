"""finetune.adapter: lora on a tiny causal LM: trained as a sequence classifier, merged, saved as plain safetensors."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.teacher.tiny_llm import save_tiny_llm
from zuoxiao.core.config import parse_config
from zuoxiao.core.errors import ConfigError
from zuoxiao.teacher.classifier import label_names_of, load_classifier, load_tokenizer
from zuoxiao.teacher.finetune.stage import finetune_teacher

POS, NEG = ["great", "fun", "love", "good"], ["awful", "boring", "hate", "bad"]
FILL = "the a movie film plot story was is this it and i very".split()


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = rng.random() < 0.5
        words = rng.sample(FILL, rng.randint(2, 5)) + [rng.choice(POS if y else NEG)]
        rng.shuffle(words)
        out.append({"text": " ".join(words), "label": "pos" if y else "neg"})
    return out


def _cfg(tmp_path, base, **ft):
    for name, n, seed in (("gold", 128, 1), ("dev", 48, 2)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(n, seed)))
    return parse_config({
        "task": {"dev": {"path": str(tmp_path / "dev.jsonl")}},
        "finetune": {"data": {"path": str(tmp_path / "gold.jsonl")}, "adapter": "lora",
                     "teacher": {"path": str(base), "max_length": 16, "num_threads": 1},
                     "optim": {"lr": 1e-2, "head_lr": 1e-2, "epochs": 6, "batch_size": 16},
                     "allow_below_baseline": True, **ft}})


def test_lora_finetune_of_a_causal_lm_merges_and_saves_a_classifier(tmp_path):
    base = save_tiny_llm(tmp_path / "base", seed=1, init=0.05)
    out = tmp_path / "teacher"
    m = finetune_teacher(_cfg(tmp_path, base), out)
    assert m["teacher"]["dev"]["accuracy"] >= 0.85, m["teacher"]  # keyword task; an untrained head is ~0.5
    assert m["train"]["head_params"] and all("lora_" not in n for n in m["train"]["head_params"])
    saved = load_file(str(out / "model.safetensors"))
    assert not [k for k in saved if "lora" in k or "modules_to_save" in k]  # merged: plain weights only
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForSequenceClassification"] and cfg["pad_token_id"] == 2
    before = load_file(str(base / "model.safetensors"))
    # LoRA touched only the attention projections (merged in) and trained the new head
    assert not torch.equal(saved["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(saved["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"])
    # the label stage loads it as an ordinary classifier, padded batches included
    model, tok = load_classifier(str(out)), load_tokenizer(str(out))
    assert label_names_of(model) == ["neg", "pos"]
    texts = [r["text"] for r in _rows(8, 3)]
    with torch.no_grad():
        batch = model(**tok(texts, padding=True, return_tensors="pt")).logits
        single = torch.cat([model(**tok([t], return_tensors="pt")).logits for t in texts])
    np.testing.assert_allclose(batch.numpy(), single.numpy(), atol=1e-4)


def test_lora_target_modules_must_exist(tmp_path):
    base = save_tiny_llm(tmp_path / "base", seed=1, init=0.05)
    with pytest.raises(ConfigError, match="target_modules"):
        finetune_teacher(_cfg(tmp_path, base, lora={"target_modules": ["query"]}, optim={"max_steps": 1}),
                         tmp_path / "t")
