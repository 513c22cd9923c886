"""The static-embedding student (the model2vec approach): one vector per token, averaged, then a small head.

    logits = head(sum_t m_t * E[input_ids_t] / max(sum_t m_t, 1))   m = attention_mask [B, T], E [V, d]

E is distilled from an encoder with ``model2vec.distill.distill_from_model``: every token of the encoder's
vocabulary is run through the encoder alone, mean-pooled, reduced by PCA to ``pca_dims`` and weighted by
SIF (frequent tokens count less). The encoder is the teacher when it is a fine-tuned classifier dir (its
base model), or train.student.path (e.g. the embedded all-MiniLM-L6-v2). model2vec drops the special
tokens it never pools ([CLS], [SEP], [MASK]) and renumbers the rest; ``align_table`` puts the rows back in
the encoder tokenizer's id order (those tokens get zero rows), so the bundle ships the encoder's tokenizer.

The head is a Linear, or one hidden ReLU layer (``head_hidden`` > 0), trained by zuoxiao's own KD loop
(student/train.py). The model has the transformer students' call contract (input_ids, attention_mask
[, token_type_ids] -> ``.logits``), is a transformers PreTrainedModel so save_pretrained writes safetensors
and config.json (model_type ``zuoxiao-static``, registered with the Auto classes at import so
student.compress.modelio.load_model reads it back), and exports as Gather + masked mean + MLP
(student/compress/export.py) with the same graph inputs and output as the transformer bundles.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from zuoxiao.core.errors import ConfigError

log = logging.getLogger(__name__)



class StaticConfig(PretrainedConfig):
    """vocab_size x hidden_size token table, head_hidden hidden units (0 = a linear head), num_labels outputs.

    type_vocab_size is kept (2, as BERT's) only so the export takes token_type_ids like the transformer
    bundles do (student/compress/export.py input_names); the model ignores it.
    """

    model_type = "zuoxiao-static"

    def __init__(self, vocab_size: int = 30522, hidden_size: int = 256, head_hidden: int = 0,
                 pad_token_id: int = 0, type_vocab_size: int = 2, encoder: str | None = None, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size, self.hidden_size, self.head_hidden = vocab_size, hidden_size, head_hidden
        self.type_vocab_size, self.encoder = type_vocab_size, encoder


class StaticClassifier(PreTrainedModel):
    """Token table + masked mean + head; forward(input_ids, attention_mask, ...) -> SequenceClassifierOutput."""

    config_class = StaticConfig
    base_model_prefix = "static"
    main_input_name = "input_ids"

    def __init__(self, config: StaticConfig):
        super().__init__(config)
        d, h, c = config.hidden_size, config.head_hidden, config.num_labels
        self.embeddings = nn.Embedding(config.vocab_size, d, padding_idx=config.pad_token_id)
        self.classifier = nn.Linear(d, c) if h == 0 else nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, c))
        self.post_init()

    def _init_weights(self, module):  # torch's own (seeded) init of nn.Linear / nn.Embedding stands
        pass

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The masked mean of the token vectors, [B, d]; a row without tokens gives zeros."""
        vectors = self.embeddings(input_ids)  # [B, T, d]
        if attention_mask is None:
            return vectors.mean(1)
        m = attention_mask.unsqueeze(-1).to(vectors.dtype)  # [B, T, 1]
        return (vectors * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> SequenceClassifierOutput:
        pooled = self.pooled(input_ids, attention_mask)
        # hidden_states[-1][:, 0] is what representation distillation reads (student/models.py ReprDistiller)
        hidden = (pooled.unsqueeze(1),) if output_hidden_states else None
        return SequenceClassifierOutput(logits=self.classifier(pooled), hidden_states=hidden)


AutoConfig.register(StaticConfig.model_type, StaticConfig, exist_ok=True)
AutoModelForSequenceClassification.register(StaticConfig, StaticClassifier, exist_ok=True)


def is_static(model) -> bool:
    return isinstance(model, StaticClassifier)


def align_table(vectors: np.ndarray, table_vocab: dict[str, int], encoder_vocab: dict[str, int]) -> np.ndarray:
    """Rows of ``vectors`` (ids of ``table_vocab``) re-indexed by ``encoder_vocab``: [len(encoder_vocab), d].
    Tokens the table lacks (the special tokens model2vec drops) get zero rows."""
    out = np.zeros((max(encoder_vocab.values()) + 1, vectors.shape[1]), np.float32)
    for token, i in encoder_vocab.items():
        j = table_vocab.get(token)
        if j is not None:
            out[i] = vectors[j]
    return out


@functools.lru_cache(maxsize=2)
def distil_table(encoder_path: str, pca_dims: int | None, trust_remote_code: bool = False) -> np.ndarray:
    """The encoder's token table [V, d] in its tokenizer's id order (cached: a train.search builds the
    student once per candidate, the table once)."""
    from model2vec.distill import distill_from_model

    from zuoxiao.teacher.classifier import load_classifier, load_tokenizer, resolve_model_path

    resolved = resolve_model_path(encoder_path)
    tokenizer = load_tokenizer(encoder_path, trust_remote_code)
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"train.student.kind=static distils token vectors with model2vec, which needs a fast "
                          f"(tokenizers) tokenizer; {encoder_path} has none: point train.student.path at an encoder "
                          "with a tokenizer.json")
    encoder = load_classifier(encoder_path, None, trust_remote_code).base_model  # a classifier dir: its encoder
    encoder.name_or_path = resolved  # a local path: model2vec then asks no hub for a model card
    width = encoder.config.hidden_size
    if pca_dims is not None and pca_dims > width:
        raise ConfigError(f"train.student.pca_dims={pca_dims} is wider than the encoder ({width} dims) of "
                          f"{encoder_path}; set it to at most {width}, or null for no reduction")
    log.info("distilling the token vectors of %s with model2vec (pca_dims %s)", encoder_path, pca_dims)
    static = distill_from_model(encoder, tokenizer, pca_dims=pca_dims, token_remove_pattern=None,
                                quantize_to="float32")  # device: model2vec picks CUDA when there is one
    table = align_table(np.asarray(static.embedding, np.float32), static.tokenizer.get_vocab(), tokenizer.get_vocab())
    table.flags.writeable = False
    return table


def build_static(spec, encoder_path: str, label_names: list[str], trust_remote_code: bool = False):
    """(StaticClassifier, the encoder's tokenizer): the distilled table, a fresh seeded head (caller seeds)."""
    from zuoxiao.teacher.classifier import load_tokenizer

    table = distil_table(encoder_path, spec.pca_dims, trust_remote_code)
    tokenizer = load_tokenizer(encoder_path, trust_remote_code)
    model = from_table(table, spec.head_hidden, label_names, tokenizer.pad_token_id or 0, encoder=encoder_path)
    return model, tokenizer


def from_table(table: np.ndarray, head_hidden: int, label_names: list[str], pad_token_id: int = 0,
               encoder: str | None = None) -> StaticClassifier:
    """A StaticClassifier over ``table`` [V, d] (the pad row zeroed) with a new head."""
    config = StaticConfig(vocab_size=table.shape[0], hidden_size=table.shape[1], head_hidden=head_hidden,
                          pad_token_id=pad_token_id, encoder=encoder, num_labels=len(label_names),
                          id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)})
    model = StaticClassifier(config)
    with torch.no_grad():
        model.embeddings.weight.copy_(torch.from_numpy(np.array(table, np.float32)))
        model.embeddings.weight[pad_token_id].zero_()
    return model
