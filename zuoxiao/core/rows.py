"""What one input row means, for every reader alike: its text hash (cache key, default id) and its gold
label normalised to a string, so `1`, `1.0`, `" 1 "` and `True` parse the same in the label stage,
`task.eval`, `task.dev` and `finetune.data`.
"""

from __future__ import annotations

import hashlib


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text: the cache key and (first 32 hex chars) the default id."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_label(value) -> str | None:
    """Gold values are matched as strings: 1, 1.0, "1" and " 1 " all mean "1". None/"" = unlabelled."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None
