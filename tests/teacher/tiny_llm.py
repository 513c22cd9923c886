"""A tiny random 2-layer Llama chat model with a word-level tokenizer, built offline in well under a second."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = ("system user assistant review : is this good bad very not sure movie film the a plot was "
         "great awful fun boring N/A [MASK] answer text with one word . i love hate it and story").split()
CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_llm(seed: int = 0, init: float = 0.5):
    """(LlamaForCausalLM in eval mode, tokenizer with a chat template); large init: peaked, row-dependent outputs."""
    torch.manual_seed(seed)
    vocab = {w: i for i, w in enumerate(["<unk>", "<|im_start|>", "<|im_end|>"] + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<|im_end|>",
                                  eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tok.chat_template = CHAT
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      initializer_range=init, tie_word_embeddings=True, eos_token_id=2, bos_token_id=1)
    return LlamaForCausalLM(cfg).eval(), tok


def save_tiny_llm(directory: Path, seed: int = 0, init: float = 0.5) -> Path:
    model, tok = tiny_llm(seed, init)
    model.save_pretrained(directory, safe_serialization=True)
    tok.save_pretrained(directory)
    return Path(directory)
