"""Save and reload compressed students whose shapes ``from_pretrained`` cannot rebuild.

A pruned or factorised model is a save_pretrained directory (config.json, model.safetensors, tokenizer
files, vocab.txt) plus ``structure.json``: per-layer head counts, FFN widths and low-rank ranks. Loading
builds the model from config, reshapes it to the structure, then loads the safetensors state dict
strictly, so a wrong file fails loudly instead of loading half the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from zuoxiao.core.errors import InputError
from zuoxiao.core.modelio import write_vocab_txt

STRUCTURE = "structure.json"
WEIGHTS = "model.safetensors"

def structure(model) -> dict:
    from zuoxiao.student.compress.lowrank import low_rank_structure
    from zuoxiao.student.compress.prune import structure_of

    return {**structure_of(model), "low_rank": low_rank_structure(model)}

def save_model(model, tokenizer, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    write_vocab_txt(tokenizer, directory)
    from zuoxiao.student.static import is_static

    if not is_static(model):  # a static student's shapes are all in its config.json
        (directory / STRUCTURE).write_text(json.dumps(structure(model), indent=1))
    return directory

def weights_bytes(directory: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(directory).glob("*.safetensors"))

def load_model(directory: str | Path):
    """(model, tokenizer) from ``save_model`` output, or from a plain save_pretrained dir (no structure.json)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    import zuoxiao.student.static  # noqa: F401  (registers the static student's config.json model_type)
    from zuoxiao.student.compress.lowrank import apply_low_rank_structure
    from zuoxiao.student.compress.prune import apply_structure

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise InputError(f"{directory} has no config.json: not a model directory; run the previous stage first")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    spath = directory / STRUCTURE
    if not spath.is_file():
        model = AutoModelForSequenceClassification.from_pretrained(directory, use_safetensors=True)
        return model.eval(), tokenizer
    struct = json.loads(spath.read_text())
    config = AutoConfig.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_config(config)
    apply_structure(model, struct)
    apply_low_rank_structure(model, struct.get("low_rank", {}))
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise InputError(f"{directory} has no .safetensors weights; zuoxiao loads safetensors only")
    state = {}
    for f in files:
        state.update(load_file(f))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise InputError(f"{directory}: weights do not match structure.json (missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}); the directory is corrupt or mixed")
    return model.eval(), tokenizer
