"""The package's own import graph, read from source (nothing is imported or executed).

Two uses, one truth:
- a stage's code fingerprint hashes exactly the modules the stage's entry module reaches through
  ``zuoxiao.*`` imports (at module level or inside functions), so editing any of them invalidates the
  stage and editing anything else does not; a hand-written package map cannot go stale this way;
- ``tests/core/test_layers.py`` checks that every import points down the layers of ``LAYERS`` and that
  the graph has no cycle.

Modules are found through ``importlib.util.find_spec`` so the editable install's package-dir mapping
(``zuoxiao.teacher`` -> ``teacher/`` ...) and a regular install resolve alike.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path

ROOT = "zuoxiao"

#: Bottom to top. A module may import its own package and any package of a lower layer, never one of
#: the same layer or above. The longest matching prefix decides a module's layer.
LAYERS: dict[str, int] = {
    "zuoxiao.core": 0,
    "zuoxiao.teacher": 1,
    "zuoxiao.pipelines": 2,
    "zuoxiao.student": 2,
    "zuoxiao.student.compress": 3,
    "zuoxiao.ship": 4,
    "zuoxiao.run": 5,
    "zuoxiao.cli": 6,
    "zuoxiao": 7,  # the package's __init__ only
}

#: The module whose transitive imports make up each stage's code.
STAGE_ENTRY: dict[str, str] = {
    "finetune": "zuoxiao.teacher.finetune.stage",
    "label": "zuoxiao.pipelines.label",
    "train": "zuoxiao.student.train",
    "compress": "zuoxiao.student.compress.stage",
    "ship": "zuoxiao.ship.stage",
}


def layer_of(module: str) -> tuple[str, int]:
    """(package prefix, layer) of a module: the longest prefix of LAYERS it falls under."""
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


@cache
def source_file(module: str) -> Path | None:
    """The .py file of a zuoxiao module (a package gives its __init__.py); None if there is none."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module name an ImportFrom refers to (relative imports included)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def direct_imports(module: str) -> frozenset[str]:
    """zuoxiao modules that ``module`` imports anywhere in its source (functions included).

    ``from zuoxiao.x import y`` counts as importing ``zuoxiao.x.y`` when that is a module, else ``zuoxiao.x``.
    """
    path = source_file(module)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node, is_package)
            names = [f"{base}.{a.name}" if source_file(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        found.update(n for n in names if n == ROOT or n.startswith(ROOT + "."))
    found.discard(module)
    return frozenset(n for n in found if source_file(n) is not None)


def closure(module: str) -> list[str]:
    """``module`` and every zuoxiao module it reaches, sorted; parent packages' __init__ included."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(direct_imports(m))
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a.b.c runs a and a.b
    return sorted(s for s in seen if source_file(s) is not None)


def all_modules() -> list[str]:
    """Every module of the installed zuoxiao package, found by walking its package directories."""
    out: list[str] = []
    todo = [ROOT]
    while todo:
        pkg = todo.pop()
        init = source_file(pkg)
        if init is None:
            continue
        out.append(pkg)
        for child in sorted(init.parent.iterdir()):
            if child.name.startswith(("_", ".")) and child.name != "__init__.py":
                continue
            if child.suffix == ".py" and child.name != "__init__.py":
                out.append(f"{pkg}.{child.stem}")
            elif child.is_dir() and (child / "__init__.py").is_file():
                todo.append(f"{pkg}.{child.name}")
        for name in _mapped_subpackages(pkg):
            todo.append(name)
    return sorted(set(out))


def _mapped_subpackages(pkg: str) -> list[str]:
    """Subpackages installed from another folder (package-dir), e.g. zuoxiao.teacher from teacher/."""
    if pkg != ROOT:
        return []
    return [p for p in LAYERS if p.count(".") == 1 and source_file(p) is not None
            and source_file(p).name == "__init__.py"]


def upward_imports() -> list[str]:
    """Every import that breaks the layering, as 'a (layer) -> b (layer)' lines."""
    bad = []
    for m in all_modules():
        pkg_m, lm = layer_of(m)
        for d in sorted(direct_imports(m)):
            pkg_d, ld = layer_of(d)
            if pkg_d != pkg_m and not (m == pkg_d or m.startswith(pkg_d + ".")) and ld >= lm:
                bad.append(f"{m} ({pkg_m}, layer {lm}) -> {d} ({pkg_d}, layer {ld})")
    return bad


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in direct_imports(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in all_modules():
        if m not in index:
            visit(m)
    return out
