"""What one input row means, for every reader alike: its text hash (cache key, default id) and its gold
label normalised to a string, so `1`, `1.0`, `" 1 "`, `"1.0"` and `True`/`"True"` parse the same in the
label stage (pipelines/validate.py, pipelines/label_names.py) and in `task.eval`, `task.dev` and
`finetune.data` (zuoxiao/core/goldsets.py). A JSONL `1.0`, a Parquet int64 `1` and a CSV cell `" 1 "`
are the same class: the format a file happens to be in must not change what its labels mean.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata

from zuoxiao.core.errors import ConfigError

# "1.0", "-3.", "+2.000": integral numbers written as floats (a CSV exported from a float column).
# Only a zero fraction is dropped: "01" and "1.5" stay as written (they may be codes, not numbers).
_INTEGRAL_FLOAT = re.compile(r"^([+-]?\d+)\.0*$")


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text: the cache key and (first 32 hex chars) the default id."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_label(value) -> str | None:
    """A gold value (any reader, any type) -> its canonical string, or None for "unlabelled".

    - None, "", "  " and float NaN (a pandas-written empty cell) -> None
    - numbers: 1, 1.0, "1.0", " 1 " -> "1"; 1.5 -> "1.5"; leading zeros are kept ("01")
    - booleans: True, "True", "TRUE", "true" -> "true" (False likewise -> "false"): a bool column
      exported to CSV by pandas reads "True", the same column in Parquet/JSONL reads True
    - text: stripped and Unicode-NFC-normalised, so "é" typed as e + combining accent matches "é"
    - bytes: decoded as UTF-8 (undecodable bytes replaced)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = unicodedata.normalize("NFC", str(value).strip())
    if not text:
        return None
    if text.lower() in ("true", "false"):
        return text.lower()
    m = _INTEGRAL_FLOAT.match(text)
    if m:
        text = m.group(1).lstrip("+")
        text = "0" if text.strip("-0") == "" else text  # "-0.0" -> "0"
    return text


def label_index(names: list[str]) -> dict[str, int]:
    """Class names in index order -> {normalised name: index}, the map every reader matches gold values
    against. Two names that normalise alike ("1" and "1.0", "True" and "true") are one class twice:
    a config error, named here rather than a silent merge."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        key = normalize_label(name)
        if key is None:
            raise ConfigError(f"label name {name!r} (index {i}) is empty; give every class a name")
        if key in index:
            raise ConfigError(
                f"label names {names[index[key]]!r} and {name!r} both read as {key!r} (labels are compared "
                "as normalised strings: 1 = 1.0 = ' 1 ', True = true); rename one of them in task.label_names"
            )
        index[key] = i
    return index
