"""Each student kind builds and trains 4 steps with the expected trainable-parameter count.

Tiny BERT (conftest): vocab V=29, hidden H=32, FFN I=64, 64 positions, 2 token types, 2 classes.
  embeddings      V*H + 64*H + 2*H + LayerNorm 2H       = 928 + 2048 + 64 + 64 = 3104
  one layer       q,k,v,o 4*(H*H+H) = 4224, 2 LayerNorms 2*2H = 128, FFN H*I+I + I*H+H = 4192  -> 8544
  pooler H*H+H = 1056, classifier H*2+2 = 66
"""

import json

import pytest
from safetensors import safe_open

from tests.student.conftest import make_cfg
from zuoxiao.core.config.views import TrainView
from zuoxiao.core.modelio import count_params
from zuoxiao.student.train import train

EMB, LAYER, POOLER, HEAD = 3104, 8544, 1056, 66


def _trained(tmp_path, tiny_teacher, toy_data, toy_shards, **over):
    cfg = make_cfg(tiny_teacher, toy_data, **over)
    m = train(TrainView.of(cfg), toy_shards, tmp_path / "student")
    assert m["train"]["steps"] == 4
    saved = json.loads((tmp_path / "student" / "config.json").read_text())
    assert saved["id2label"] == {"0": "neg", "1": "pos"}
    assert (tmp_path / "student" / "vocab.txt").is_file()
    return m, saved


def test_from_teacher_full(tmp_path, tiny_teacher, toy_data, toy_shards):
    m, saved = _trained(tmp_path, tiny_teacher, toy_data, toy_shards)
    assert m["trainable_params"] == EMB + 2 * LAYER + POOLER + HEAD == 21314
    assert m["student"]["non_embedding_params"] == 2 * LAYER + POOLER + HEAD
    assert saved["num_hidden_layers"] == 2
    assert m["teacher"]["params"] == EMB + 4 * LAYER + POOLER + HEAD


def test_from_teacher_frozen_embeddings_narrow_ffn(tmp_path, tiny_teacher, toy_data, toy_shards):
    m, saved = _trained(tmp_path, tiny_teacher, toy_data, toy_shards, freeze_embeddings=True,
                        student={"layers": [1, 3], "ffn_size": 16})
    layer16 = LAYER - 4192 + (32 * 16 + 16 + 16 * 32 + 32)  # FFN 64 -> 16 neurons
    assert m["student"]["params"] == EMB + 2 * layer16 + POOLER + HEAD
    assert m["trainable_params"] == m["student"]["params"] - 29 * 32  # word embeddings frozen
    assert saved["intermediate_size"] == 16


def test_lora_trains_adapters_and_head_then_merges(tmp_path, tiny_teacher, toy_data, toy_shards):
    m, _ = _trained(tmp_path, tiny_teacher, toy_data, toy_shards,
                    adapter={"kind": "lora", "r": 4, "alpha": 8, "target_modules": ["query", "key", "value", "dense"]})
    # r*(in+out) per adapted Linear: q,k,v,attn-out 4*4*(32+32); FFN in/out 2*4*(32+64); pooler 4*(32+32)
    per_layer = 4 * 4 * 64 + 2 * 4 * 96
    assert m["trainable_params"] == 2 * per_layer + 4 * 64 + HEAD == 3906
    # merged: a plain BERT checkpoint, no LoRA or PEFT wrapper tensors left
    with safe_open(str(tmp_path / "student" / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert not [k for k in keys if "lora" in k or "modules_to_save" in k or "base_model" in k]
    assert m["student"]["params"] == EMB + 2 * LAYER + POOLER + HEAD


def test_pretrained_kind(tmp_path, tiny_teacher, toy_data, toy_shards):
    m, saved = _trained(tmp_path, tiny_teacher, toy_data, toy_shards,
                        student={"kind": "pretrained", "path": str(tiny_teacher)})
    assert m["trainable_params"] == EMB + 4 * LAYER + POOLER + HEAD
    assert saved["num_hidden_layers"] == 4


def test_config_kind(tmp_path, tiny_teacher, toy_data, toy_shards):
    m, saved = _trained(tmp_path, tiny_teacher, toy_data, toy_shards,
                        student={"kind": "config", "num_layers": 1, "hidden_size": 16, "num_heads": 2,
                                 "intermediate_size": 32})
    emb = 29 * 16 + 512 * 16 + 2 * 16 + 2 * 16  # 512 positions (max(512, max_length))
    layer = 4 * (16 * 16 + 16) + 2 * 32 + (16 * 32 + 32 + 32 * 16 + 16)
    assert m["trainable_params"] == emb + layer + (16 * 16 + 16) + (16 * 2 + 2) == 11250
    assert saved["hidden_size"] == 16


def test_bad_layer_index_is_a_config_error(tmp_path, tiny_teacher, toy_data, toy_shards):
    from zuoxiao.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"teacher has 4 layers.*\[7\]"):
        train(TrainView.of(make_cfg(tiny_teacher, toy_data, student={"layers": [0, 7]})), toy_shards, tmp_path / "s")


def test_count_params_splits_embeddings(tiny_teacher):
    from zuoxiao.teacher.classifier import load_classifier

    c = count_params(load_classifier(str(tiny_teacher)))
    assert c == {"params": EMB + 4 * LAYER + POOLER + HEAD, "trainable": EMB + 4 * LAYER + POOLER + HEAD,
                 "non_embedding_params": 4 * LAYER + POOLER + HEAD}
