"""The package's import graph points down the layers and has no cycle; stage fingerprints follow it."""

from __future__ import annotations

import pytest

from zuoxiao.core import fingerprint as F
from zuoxiao.core import imports as I


def test_every_module_belongs_to_a_layer_and_the_mapped_folders_are_found():
    mods = I.all_modules()
    for pkg in ("zuoxiao.teacher", "zuoxiao.pipelines", "zuoxiao.student", "zuoxiao.student.compress",
                "zuoxiao.ship", "zuoxiao.core", "zuoxiao.run"):
        assert pkg in mods
    assert "zuoxiao.pipelines.label" in mods and "zuoxiao.core.loop" in mods
    assert len(mods) > 50


def test_imports_point_only_downward():
    assert I.upward_imports() == []


def test_no_import_cycles():
    assert I.cycles() == []


def test_layer_check_catches_an_upward_import(monkeypatch):
    real = I.direct_imports

    def with_bad_edge(m):
        extra = {"zuoxiao.student.train"} if m == "zuoxiao.teacher.classifier" else set()
        return real(m) | extra

    monkeypatch.setattr(I, "direct_imports", with_bad_edge)
    assert any(line.startswith("zuoxiao.teacher.classifier") for line in I.upward_imports())


def test_relative_and_function_level_imports_are_seen():
    # zuoxiao.student.compress.steps imports its siblings inside functions
    deps = I.direct_imports("zuoxiao.student.compress.steps")
    assert "zuoxiao.student.compress.prune" in deps and "zuoxiao.core.evaluate" in deps


@pytest.mark.parametrize("stage", sorted(I.STAGE_ENTRY))
def test_editing_any_module_a_stage_imports_changes_its_fingerprint(stage, monkeypatch):
    """Case 4 of issue 8: the fingerprint of a stage covers every module it reaches, and only those."""
    reached = I.closure(I.STAGE_ENTRY[stage])
    assert I.STAGE_ENTRY[stage] in reached and "zuoxiao.core.config" in reached
    F._code_cache.clear()
    base = F.code_version(stage)
    real_read = type(I.source_file("zuoxiao.core.errors")).read_bytes
    for edited in reached:
        target = I.source_file(edited)
        monkeypatch.setattr(type(target), "read_bytes",
                            lambda self, t=target: real_read(self) + (b"#edit" if self == t else b""))
        F._code_cache.clear()
        assert F.code_version(stage) != base, f"editing {edited} left the {stage} fingerprint unchanged"
    monkeypatch.undo()
    F._code_cache.clear()
    assert F.code_version(stage) == base


def test_stages_do_not_reach_unrelated_code():
    assert "zuoxiao.student.train" not in I.closure(I.STAGE_ENTRY["label"])
    assert "zuoxiao.pipelines.label" not in I.closure(I.STAGE_ENTRY["train"])
    assert "zuoxiao.run.runner" not in I.closure(I.STAGE_ENTRY["compress"])


NEVER = {  # package -> packages it never imports, at any depth of its own modules (issue 26)
    "zuoxiao.teacher": ("zuoxiao.pipelines", "zuoxiao.student"),
    "zuoxiao.student": ("zuoxiao.pipelines", "zuoxiao.ship"),
}


def _forbidden_edges() -> list[str]:
    out = []
    for pkg, banned in NEVER.items():
        for m in I.all_modules():
            if m == pkg or m.startswith(pkg + "."):
                out += [f"{m} -> {d}" for d in sorted(I.direct_imports(m))
                        if any(d == b or d.startswith(b + ".") for b in banned)]
    return out


def test_teacher_never_imports_pipelines_or_student_and_student_never_pipelines_or_ship():
    assert _forbidden_edges() == []


def test_the_nevers_catch_a_forbidden_import(monkeypatch):
    real = I.direct_imports
    bad = {"zuoxiao.student.compress.stage": {"zuoxiao.ship.package"},
           "zuoxiao.teacher.classifier": {"zuoxiao.pipelines.label"}}
    monkeypatch.setattr(I, "direct_imports", lambda m: real(m) | bad.get(m, set()))
    assert _forbidden_edges() == ["zuoxiao.teacher.classifier -> zuoxiao.pipelines.label",
                                  "zuoxiao.student.compress.stage -> zuoxiao.ship.package"]
