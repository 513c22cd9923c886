"""Build the student (a literal dict of builders, no registry), attach adapters, count parameters.

    from_teacher  copy the teacher's embeddings, the chosen encoder layers, pooler and head
                  (DistilBERT-style initialisation: a shallower model that starts close to the teacher)
    pretrained    any local save_pretrained checkpoint (a new seeded head when its labels differ)
    config        a fresh BERT of the size given in train.student (random init, seeded)
    static        token vectors distilled from an encoder (model2vec), averaged, and a small head
                  (student/static.py); the encoder is train.student.path, else the teacher
"""

from __future__ import annotations

import copy
import logging

import torch

from zuoxiao.core.config.train import AdapterConfig, StudentConfig
from zuoxiao.core.errors import ConfigError
from zuoxiao.teacher.classifier import load_classifier, load_tokenizer

log = logging.getLogger(__name__)


def _encoder_layers(model):
    """The nn.ModuleList of transformer blocks of a BERT-like classifier."""
    base = getattr(model, model.base_model_prefix)
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise ConfigError(
        f"train.student.kind=from_teacher cannot find the encoder layers of a {type(model).__name__}; "
        "use student.kind=pretrained or config"
    )


def from_teacher(spec: StudentConfig, teacher, label_names: list[str]):
    """A copy of the teacher keeping only layers ``spec.layers`` (in that order)."""
    layers = _encoder_layers(teacher)
    bad = [i for i in spec.layers if i >= len(layers)]
    if bad:
        raise ConfigError(
            f"train.student.layers={spec.layers}: the teacher has {len(layers)} layers (0..{len(layers) - 1}); "
            f"layers {bad} do not exist"
        )
    student = copy.deepcopy(teacher)
    kept = _encoder_layers(student)
    new = torch.nn.ModuleList([kept[i] for i in spec.layers])
    for new_i, block in enumerate(new):  # attention layers carry their index (KV caches): renumber
        for m in block.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = new_i
    base = getattr(student, student.base_model_prefix)
    base.encoder.layer = new
    student.config.num_hidden_layers = len(spec.layers)
    if spec.ffn_size is not None:
        narrow_ffn(student, spec.ffn_size)
    return student


def narrow_ffn(model, keep: int) -> None:
    """Keep the ``keep`` FFN neurons per layer with the largest ||w_in[j]|| * ||w_out[:, j]||.

    BERT FFN: intermediate.dense [I, H] (in) then output.dense [H, I] (out); slicing neuron j removes
    row j of the first and column j of the second. Widths stay uniform so save_pretrained reloads it.
    """
    for block in _encoder_layers(model):
        fc_in, fc_out = block.intermediate.dense, block.output.dense
        width = fc_in.out_features
        if keep > width:
            raise ConfigError(f"train.student.ffn_size={keep} is wider than the teacher's FFN ({width}); lower it")
        score = fc_in.weight.norm(dim=1) * fc_out.weight.norm(dim=0)  # [I]
        idx = torch.sort(torch.topk(score, keep).indices).values
        new_in = torch.nn.Linear(fc_in.in_features, keep, bias=fc_in.bias is not None)
        new_out = torch.nn.Linear(keep, fc_out.out_features, bias=fc_out.bias is not None)
        with torch.no_grad():
            new_in.weight.copy_(fc_in.weight[idx])
            if fc_in.bias is not None:
                new_in.bias.copy_(fc_in.bias[idx])
            new_out.weight.copy_(fc_out.weight[:, idx])
            if fc_out.bias is not None:
                new_out.bias.copy_(fc_out.bias)
        block.intermediate.dense, block.output.dense = new_in, new_out
    model.config.intermediate_size = keep


def fresh_from_config(spec: StudentConfig, tokenizer, label_names: list[str], max_length: int):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, intermediate_size=spec.intermediate_size,
        max_position_embeddings=max(512, max_length), pad_token_id=tokenizer.pad_token_id or 0,
        num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
    )
    return BertForSequenceClassification(config)  # initialised from torch's seeded RNG


def build_student(spec: StudentConfig, teacher_path: str, label_names: list[str], max_length: int,
                  trust_remote_code: bool = False):
    """(model, tokenizer) in train mode. The caller seeds torch first (fresh heads / weights)."""

    def _from_teacher():
        teacher = load_classifier(teacher_path, label_names, trust_remote_code)
        return from_teacher(spec, teacher, label_names), load_tokenizer(teacher_path, trust_remote_code)

    def _pretrained():
        model = load_classifier(spec.path, label_names, trust_remote_code)
        return model, load_tokenizer(spec.tokenizer or spec.path, trust_remote_code)

    def _config():
        tok = load_tokenizer(spec.tokenizer or teacher_path, trust_remote_code)
        return fresh_from_config(spec, tok, label_names, max_length), tok

    def _static():
        from zuoxiao.student.static import build_static

        return build_static(spec, spec.path or teacher_path, label_names, trust_remote_code)

    builders = {"from_teacher": _from_teacher, "pretrained": _pretrained, "config": _config, "static": _static}
    model, tokenizer = builders[spec.kind]()
    if spec.tokenizer and spec.kind == "from_teacher":
        tokenizer = load_tokenizer(spec.tokenizer, trust_remote_code)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ConfigError(
            f"the student tokenizer has {len(tokenizer)} tokens but the student embeds only "
            f"{model.get_input_embeddings().num_embeddings}; use the student's own tokenizer (train.student.tokenizer)"
        )
    model.config.id2label = dict(enumerate(label_names))
    model.config.label2id = {n: i for i, n in enumerate(label_names)}
    model.train()
    return model, tokenizer


def head_module_names(model) -> list[str]:
    """Names of the classification head modules (trained in full under LoRA)."""
    return [n for n in ("classifier", "score", "pre_classifier") if hasattr(model, n)]


def apply_adapter(model, spec: AdapterConfig):
    """LoRA via PEFT (head in modules_to_save), or the model as is for full fine-tuning."""
    if spec.kind == "full":
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in spec.target_modules if t not in names]
    if missing:
        raise ConfigError(
            f"train.adapter.target_modules {missing} match no module of {type(model).__name__}; "
            f"choose among e.g. {sorted(n for n in names if n and not n.isdigit())[:12]}"
        )
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules), modules_to_save=head_module_names(model),
    )
    return get_peft_model(model, config)


def merged(model):
    """A plain transformers model: LoRA folded into the base weights (merge_and_unload)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model




class ReprDistiller(torch.nn.Module):
    """Training-time wrapper: the student plus a learned projection of its [CLS] state to the teacher's width.

    forward(**batch) -> (logits [B, C], projected [B, D_teacher]); the projection (Linear H_student -> D)
    lives only here, so it is trained with the student but never saved or exported: the train stage
    saves ``.student`` (merged), whose state dict is the same as without representation distillation.
    Doing both in one forward keeps DDP's gradient hooks on every trained parameter.
    """

    def __init__(self, student, teacher_dim: int):
        super().__init__()
        self.student = student
        hidden = getattr(student.config, "hidden_size", None) or getattr(student.config, "dim", None)
        if not hidden:
            raise ConfigError(f"train.loss.repr_weight: cannot tell the hidden size of a {type(student).__name__}; "
                              "set train.loss.repr_weight: 0")
        self.proj = torch.nn.Linear(int(hidden), int(teacher_dim))

    def forward(self, **batch):
        out = self.student(**batch, output_hidden_states=True)
        cls = out.hidden_states[-1][:, 0]  # [B, H_student]: the first token's final hidden state
        return out.logits, self.proj(cls)


def unwrap_student(model):
    """The student inside a ReprDistiller (or the model itself)."""
    return model.student if isinstance(model, ReprDistiller) else model
