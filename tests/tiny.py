"""Shared by the tiny-model fixtures of every test package: a WordPiece tokenizer that really loads.

transformers 5 silently ignores ``BertTokenizerFast(vocab_file=...)`` and tokenises everything to [UNK];
this helper handles that pitfall once (``vocab=`` takes the file) and checks the vocabulary loaded.
"""

from __future__ import annotations

from pathlib import Path


def wordpiece_tokenizer(directory: Path, tokens: list[str]):
    """Write ``directory/vocab.txt`` (one token per line, id order) and return a BertTokenizerFast on it."""
    from transformers import BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(tokens) + "\n")
    tok = BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True)
    assert len(tok) == len(tokens), f"tiny vocabulary did not load ({len(tok)} of {len(tokens)} tokens)"
    return tok
