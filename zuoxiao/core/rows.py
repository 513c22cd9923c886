"""What one input row means, for every reader alike: its text hash (cache key, default id) and its gold
label normalised to a string, so `1`, `1.0`, `" 1 "`, `"1.0"` and `True`/`"True"` parse the same in the
label stage (pipelines/validate.py, pipelines/label_names.py) and in `task.eval`, `task.dev` and
`finetune.data` (zuoxiao/core/goldsets.py). A JSONL `1.0`, a Parquet int64 `1` and a CSV cell `" 1 "`
are the same class: the format a file happens to be in must not change what its labels mean.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass

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


# ---------------------------------------------------------------- the gold of every task kind
# (docs/task_kinds.md; zuoxiao.core.rowpolicy.task_row applies them to a parsed row)
@dataclass(frozen=True)
class TaskRow:
    """One usable row of any task.kind, normalised. Fields a kind does not use stay None.

    single_label: text, label · pair: text, text_pair, label · multi_label: text, labels ·
    token: text (= the words joined by one space), tokens, tags, label (the optional sentence label) ·
    regression: text, text_pair (optional), score
    """

    text: str
    text_pair: str | None = None
    label: str | None = None
    labels: tuple[str, ...] | None = None
    tokens: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    score: float | None = None

    @property
    def key_text(self) -> str:
        """What the default row id hashes (and leakage compares): the text, or both texts of a pair."""
        return self.text if self.text_pair is None else f"{self.text}{PAIR_JOIN}{self.text_pair}"

    @property
    def gold(self):
        """The row's gold value, comparable and hashable (duplicates with another gold are conflicts);
        None = unlabelled."""
        if self.tags is not None:
            return (self.tags, self.label)
        if self.labels is not None:
            return tuple(sorted(self.labels))
        return self.score if self.score is not None else self.label


#: Between the two texts of a pair in `TaskRow.key_text` (a newline and a unit separator: never in a TSV cell).
PAIR_JOIN = "\n\x1f"


def normalize_label_list(value, separator: str = ",") -> tuple[str, ...] | None:
    """A multi-label gold cell -> its label names (normalised, first occurrence kept), or None = unlabelled.

    A list (JSONL, Parquet) is taken item by item; a string is a JSON list when it starts with "[",
    otherwise names joined by ``separator`` ("joy,love"; blanks around names are stripped). An explicit
    empty list is an empty set (kept: "none of the labels"); None / "" / NaN are unlabelled. A string that
    starts with "[" but is no JSON list raises ValueError (the caller turns it into a rejected row).
    """
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as err:
                raise ValueError(f"label cell {stripped[:60]!r} starts with '[' but is not a JSON list ({err})") from None
            if not isinstance(value, list):
                raise ValueError(f"label cell {stripped[:60]!r} is not a JSON list")
        else:
            value = stripped.split(separator) if stripped else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, (list, tuple)):
        value = [value]
    names = [normalize_label(v) for v in value]
    return tuple(dict.fromkeys(n for n in names if n is not None))


def parse_score(value) -> tuple[float | None, str]:
    """A regression gold cell -> (score, "") ; (None, "") when empty; (None, why) when not a finite number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, ""
    if isinstance(value, bool):
        return None, f"score {value!r} is a boolean, not a number"
    if isinstance(value, float) and math.isnan(value):
        return None, ""
    try:
        score = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None, f"score {str(value)[:40]!r} is not a number (write it as 3.8; a decimal comma is not read)"
    if not math.isfinite(score):
        return None, f"score {value!r} is not finite"
    return score, ""


def parse_words(value, what: str) -> tuple[tuple[str, ...] | None, str]:
    """A tokens / tags cell -> (words, "") or (None, why); a string is split on whitespace, None is absent."""
    if value is None:
        return None, ""
    if isinstance(value, str):
        return tuple(value.split()), ""
    if not isinstance(value, (list, tuple)) or any(not isinstance(w, str) for w in value):
        return None, f"{what} must be a list of strings, got {str(value)[:60]!r}"
    if any(not w.strip() or w != w.strip() for w in value):
        return None, f"{what} {list(value)[:8]!r} holds a blank word or one with spaces around it"
    return tuple(unicodedata.normalize("NFC", w) for w in value), ""


def bio_problem(tags: tuple[str, ...]) -> str:
    """'' when ``tags`` are strict BIO (IOB2), else what is wrong at the first bad tag.

    Every tag is O, B-<type> or I-<type>; an I-<type> continues a B-<type> or I-<type> of the same type
    (an I- after O, at the start, or after another type is IOB1 or a typo: seqeval's strict mode would
    drop that entity).
    """
    prev = "O"
    for i, tag in enumerate(tags):
        if tag != "O" and (len(tag) < 3 or tag[:2] not in ("B-", "I-")):
            return f"tag {i} {tag!r} is not O, B-<type> or I-<type>"
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            after = "at the start" if i == 0 else f"after {prev!r}"
            return (f"tag {i} {tag!r} comes {after}; an I- tag continues a B-/I- tag of its type (strict BIO: convert "
                    "IOB1 files so each entity starts with B-)")
        prev = tag
    return ""


def sorted_tag_names(tags) -> list[str]:
    """The tag set of gold data in index order (task.label_names null, task.kind token): O first, then by entity
    type with B- before I- ('O', 'B-artist', 'I-artist', 'B-city', ...)."""
    rest = sorted({t for t in tags if t != "O"}, key=lambda t: (t[2:], t[:2] != "B-", t))
    return ["O", *rest]


def entity_type(tag: str) -> str | None:
    """'B-artist' / 'I-artist' -> 'artist'; 'O' -> None."""
    return tag[2:] if tag[:2] in ("B-", "I-") else None
