"""A tiny BERT teacher (2 layers, 32 wide) + WordPiece tokenizer, built offline for the label tests."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a an and or but not very good bad great awful movie film plot actor acting story fun boring "
    "love hate it is was this that of to in on with for funny sad long short best worst ever i you "
    "we they world sports business tech game team market stock price news word no gold label here"
).split()


def build_tiny_teacher(directory: Path, num_labels: int | None = None, label_names: list[str] | None = None,
                       seed: int = 0) -> Path:
    """Save a tiny BERT into ``directory``.

    With ``label_names``: a task-trained-looking classifier whose config carries those names.
    With neither: a bare encoder (like the embedded MiniLM): the label stage adds a seeded head.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    from tests.tiny import wordpiece_tokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,!?'")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + letters + ["##" + x for x in letters]
    vocab = list(dict.fromkeys(vocab))
    tok = wordpiece_tokenizer(directory, vocab)
    tok.save_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(seed)
    if label_names is not None or num_labels is not None:
        names = label_names or [f"LABEL_{i}" for i in range(num_labels)]
        config.num_labels = len(names)
        config.id2label = dict(enumerate(names))
        config.label2id = {n: i for i, n in enumerate(names)}
        model = BertForSequenceClassification(config)
    else:
        model = BertModel(config)
    model.save_pretrained(directory, safe_serialization=True)
    return directory
