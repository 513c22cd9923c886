"""Materialise `task.split` and `sample: N` into plain JSONL files, once, before any stage reads data.

    cfg, info = prepare_data(cfg)   # cfg's data sources now point at <output_dir>/data/<fp16>/*.jsonl

Every stage then reads ordinary files, so the stage fingerprints (zuoxiao/run/stages.py) follow the
split through the file hashes with no special case, and the label stage, fine-tuning and evaluation all
see the very same rows.

Determinism: each row's place comes from sha256(seed, label, text), never from Python's hash or the row
order, so the same rows give byte-identical parts whatever order the file lists them in. Rows with the
same text and label are one unit (they go to the same part: no duplicate leaks from train into test).
Within a class the units are ordered by that hash; the first ones go to test, the next to dev, the rest
to train, so changing only the dev share leaves the test part as it was. A class needs 1 unit for train
plus one per held-out part; a class with fewer stays in train only and split.json lists it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from zuoxiao.core.config import Config, DataSource, parse_config
from zuoxiao.core.errors import InputError
from zuoxiao.core.fingerprint import data_fingerprint, digest
from zuoxiao.core.goldsets import policy_rows
from zuoxiao.core.rowpolicy import Skips
from zuoxiao.core.shards import sha256_file

VERSION = 1  # bump when the way rows are assigned changes: old parts then stop being reused
REPORT = "split.json"
#: where a part goes when the config leaves that source unset: part -> config keys
TARGETS = {"train": ("finetune.data", "label.input"), "dev": ("task.dev",), "test": ("task.eval",)}
SAMPLED_KEYS = ("task.eval", "task.dev", "finetune.data", "label.input")


def prepare_data(cfg: Config) -> tuple[Config, dict]:
    """-> (the config with split / sampled sources replaced by their parts, {"jobs": [report, ...]}).

    A config with neither task.split nor any `sample` comes back unchanged (with no jobs).
    """
    raw = cfg.model_dump(mode="json")
    root = Path(cfg.output_dir) / "data"
    jobs = []
    for key in SAMPLED_KEYS:
        src = _get(cfg, key)
        if src is not None and src.sample is not None:
            report = materialise(root, key, src)
            _set(raw, key, _part_source(src, Path(report["dir"]) / report["parts"]["sample"]["file"]))
            jobs.append(report)
    for i, src in enumerate(cfg.label.extra_inputs or []):  # a list: not reachable by a dotted key
        if src.sample is not None:
            report = materialise(root, f"label.extra_inputs[{i}]", src)
            raw["label"]["extra_inputs"][i] = _part_source(src, Path(report["dir"]) / report["parts"]["sample"]["file"])
            jobs.append(report)
    split = cfg.task.split
    if split is not None:
        report = materialise(root, "task.split", split.source, dev=split.dev, test=split.test, seed=split.seed)
        for part, keys in TARGETS.items():
            if part not in report["parts"]:
                continue
            for key in keys:
                if key == "finetune.data" and cfg.finetune is None:
                    continue
                if _get(cfg, key) is None:  # the config validator ruled out explicit sources a part would fill
                    _set(raw, key, _part_source(split.source, Path(report["dir"]) / report["parts"][part]["file"]))
        raw["task"]["split"] = None  # the parts are the sources now: the resolved config reloads as is
        jobs.append(report)
    if not jobs:
        return cfg, {"jobs": []}
    return parse_config(raw, "resolved config (task.split / sample)"), {"jobs": jobs}


def materialise(root: Path, key: str, source: DataSource, dev: float | None = None, test: float | None = None,
                seed: int = 0) -> dict:
    """Write one source's parts (sample, or train/dev/test) under root/<fp16>/, or reuse verified ones."""
    kind = "split" if dev is not None else "sample"
    settings = {"dev": dev, "test": test, "seed": seed} if kind == "split" else {}
    if source.sample is not None:
        settings.update(sample=source.sample, sample_seed=source.sample_seed)
    fp_source = data_fingerprint(source)
    fp = digest({"version": VERSION, "kind": kind, "settings": settings, "source": fp_source})[:16]
    target = root / fp
    report = _verified(target)
    if report is None:
        report = _build(root, target, key, kind, source, settings, fp_source)
    return {**report, "key": key, "dir": str(target)}


def _verified(target: Path) -> dict | None:
    """The report of a complete earlier materialisation whose files still match it, else None."""
    try:
        report = json.loads((target / REPORT).read_text())
        ok = all(sha256_file(target / p["file"]) == p["sha256"] for p in report["parts"].values())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report if ok else None


def _build(root: Path, target: Path, key: str, kind: str, source: DataSource, settings: dict, fp_source) -> dict:
    rows, skipped = _read(source, key)
    if source.sample is not None:
        rows = _sample(rows, source.sample, source.sample_seed, source.label_column is not None)
    if kind == "split":
        parts, small = _split(rows, settings["dev"], settings["test"], settings["seed"])
        for part, share in (("dev", settings["dev"]), ("test", settings["test"])):
            if share > 0 and not parts[part]:
                raise InputError(f"task.split.{part}={share} gives an empty {part} part: every class of "
                                 f"{source.paths} has too few rows ({len(rows)} usable); add rows or set "
                                 f"task.split.{part}: 0")
        parts = {p: r for p, r in parts.items() if r or p == "train"}
    else:
        parts, small = {"sample": rows}, {}
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # (mkdir honours the umask)
    tmp.mkdir()
    try:
        report = {"version": VERSION, "kind": kind, "settings": settings, "source": fp_source,
                  "rows_used": sum(len(r) for r in parts.values()), "skipped": skipped,
                  "not_stratified": small, "parts": {}}
        for part, part_rows in parts.items():
            path = tmp / f"{part}.jsonl"
            with open(path, "w", encoding="utf-8") as f:
                for r in part_rows:
                    f.write(json.dumps(_out_row(source, r), ensure_ascii=False) + "\n")
            classes = Counter(r[0] for r in part_rows if r[0] is not None)
            report["parts"][part] = {"file": path.name, "rows": len(part_rows), "sha256": sha256_file(path),
                                     "classes": dict(sorted(classes.items()))}
        report["fingerprint"] = digest({p: v["sha256"] for p, v in report["parts"].items()})
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n")
        if target.exists():  # damaged or half-deleted: replace it whole
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished the same parts first: keep theirs if they verify
            if _verified(target) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _read(source: DataSource, key: str) -> tuple[list[tuple], dict]:
    """Usable rows as (normalised label or None, text, id or None), and the rows left out: the row policy
    every stage shares (zuoxiao.core.goldsets.policy_rows)."""
    skips = Skips()
    rows = []
    for row, text, label in policy_rows(source, skips, where=f"{key}: "):
        rid = row.get(source.id_column) if source.id_column else None
        rows.append((label, text, rid if isinstance(rid, (str, int, float)) or rid is None else str(rid)))
    if not rows:
        raise InputError(f"{key}: no usable rows in {source.paths} (left out: {skips.summary() or 'none'})")
    return rows, {"counts": dict(sorted(skips.counts.items())), "where": skips.where}


def _key(seed: int, label: str | None, text: str) -> str:
    return hashlib.sha256(f"{seed}\0{label}\0{text}".encode()).hexdigest()


def _ordered(rows: list[tuple], seed: int) -> list[tuple]:
    """Rows in a seeded order that depends on their content only (ties = identical rows but the id)."""
    return sorted(rows, key=lambda r: (_key(seed, r[0], r[1]), r[1], json.dumps(r[2])))


def _by_class(rows: list[tuple]) -> dict:
    groups = defaultdict(list)
    for r in rows:
        groups[r[0]].append(r)
    return {c: groups[c] for c in sorted(groups, key=str)}


def _sample(rows: list[tuple], n: int, seed: int, stratified: bool) -> list[tuple]:
    """n rows: per class in proportion to its size (every class keeps one when n allows), else uniform."""
    if n >= len(rows):
        return _ordered(rows, seed)
    if not stratified:
        return _ordered(rows, seed)[:n]
    groups = _by_class(rows)
    sizes = {c: len(g) for c, g in groups.items()}
    floor = 1 if n >= len(sizes) else 0  # fewer draws than classes: plain proportions (some classes drop)
    quota = _largest_remainder({c: s - floor for c, s in sizes.items()}, n - floor * len(sizes))
    picked = []
    for c, g in groups.items():
        picked.extend(_ordered(g, seed)[: floor + quota[c]])
    return _ordered(picked, seed)


def _largest_remainder(weights: dict, total: int) -> dict:
    """Integers proportional to weights summing to total (exact integer arithmetic, ties by class name)."""
    whole = sum(weights.values())
    if whole == 0:
        return dict.fromkeys(weights, 0)
    quota = {c: total * w // whole for c, w in weights.items()}
    rest = sorted(weights, key=lambda c: (-(total * weights[c] % whole), str(c)))
    for c in rest[: total - sum(quota.values())]:
        quota[c] += 1
    return quota


def split_counts(n: int, dev: float, test: float) -> tuple[int, int]:
    """Units of one class held out as (dev, test); (0, 0) when the class is too small to reach every part."""
    if n < 1 + (dev > 0) + (test > 0):
        return 0, 0
    n_dev = max(1, int(n * dev + 0.5)) if dev > 0 else 0
    n_test = max(1, int(n * test + 0.5)) if test > 0 else 0
    while n - n_dev - n_test < 1:  # train keeps at least one
        if n_dev >= n_test and n_dev > 1:
            n_dev -= 1
        else:
            n_test -= 1
    return n_dev, n_test


def _split(rows: list[tuple], dev: float, test: float, seed: int) -> tuple[dict, dict]:
    parts = {"train": [], "dev": [], "test": []}
    small = {}
    for c, group in _by_class(rows).items():
        units = defaultdict(list)
        for r in group:
            units[_key(seed, c, r[1])].append(r)
        order = sorted(units)
        n_dev, n_test = split_counts(len(order), dev, test)
        if (dev > 0 or test > 0) and n_dev + n_test == 0:
            small[c] = f"{len(group)} row(s), {len(order)} distinct text(s): too few for train + dev + test, kept in train"
        for i, u in enumerate(order):
            part = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
            parts[part].extend(units[u])
    return {p: _ordered(r, seed) for p, r in parts.items()}, small


def _out_row(source: DataSource, r: tuple) -> dict:
    out = {source.text_column: r[1]}
    if source.label_column:
        out[source.label_column] = r[0]
    if source.id_column:
        out[source.id_column] = r[2]
    return out


def _part_source(source: DataSource, path: Path) -> dict:
    return {"path": str(path), "format": "jsonl", "text_column": source.text_column,
            "label_column": source.label_column, "id_column": source.id_column}


def _get(cfg: Config, key: str) -> DataSource | None:
    section, name = key.split(".")
    node = getattr(cfg, section)
    return None if node is None else getattr(node, name)


def _set(raw: dict, key: str, value: dict) -> None:
    section, name = key.split(".")
    raw[section][name] = value


def record_prepared(info: dict, run_data: Path, say, emit) -> None:
    """Copy each report into the run folder (data/split.json, data/sample.<key>.json), print one line per
    part and emit one `data_prepared` event. ``say``/``emit`` are the runner's console.print and events.emit."""
    if not info["jobs"]:
        return
    run_data.mkdir(parents=True, exist_ok=True)
    for job in info["jobs"]:
        name = REPORT if job["kind"] == "split" else f"sample.{job['key']}.json"
        shutil.copyfile(Path(job["dir"]) / REPORT, run_data / name)
        for part, p in job["parts"].items():
            say(f"data: {job['key']} {part}: {p['rows']} rows, {len(p['classes'])} classes -> "
                f"{Path(job['dir']) / p['file']}")
        if job["skipped"]["counts"]:
            when = (f" before the sample of {job['settings']['sample']} was drawn"
                    if (job.get("settings") or {}).get("sample") else "")
            say(f"data: {job['key']}: rows of the source left out{when} (the shared row policy, docs/data.md): "
                f"{job['skipped']['counts']}")
        for c, why in job["not_stratified"].items():
            say(f"data: {job['key']}: class {c!r}: {why}")
    emit("data_prepared", jobs=[{k: job[k] for k in ("key", "kind", "dir", "fingerprint", "settings", "skipped",
                                                      "not_stratified")}
                                | {"parts": {p: {"rows": v["rows"], "classes": len(v["classes"])}
                                             for p, v in job["parts"].items()}} for job in info["jobs"]])
