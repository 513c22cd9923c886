"""bench/teacher_quality.py end to end on tiny models: the demo task, a tiny BERT backbone for the MiniLM
teacher and a tiny Llama for the LoRA-tuned LLM teacher (numbers are noise; the keys and their wiring are
what is checked)."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import teacher_quality as TQ  # noqa: E402 - bench/ is not a package

from tests.run.conftest import build_tiny_backbone  # noqa: E402
from tests.teacher.tiny_llm import save_tiny_llm  # noqa: E402


def test_lora_llm_teacher_keys_and_its_ensemble_with_the_default_teacher(tmp_path, capsys):
    backbone = build_tiny_backbone(tmp_path / "bert")
    llm = save_tiny_llm(tmp_path / "llm")
    rc = TQ.main(["--dataset", "demo", "--gold-rows", "160", "--dev-rows", "80", "--eval-rows", "80",
                  "--search-lr", "1e-4", "--llm-rows", "0", "--llm-lora-rows", "120", "--llm-path", str(llm),
                  "--workdir", str(tmp_path / "work"), "--set", f"finetune.teacher.path={backbone}",
                  "--set", "finetune.min_steps=4", "--set", "finetune.optim.epochs=1"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert 0 <= out["llm_lora_acc"] <= 1 and 0 <= out["llm_lora_dev_acc"] <= 1
    assert out["llm_lora_train_rows"] <= 120 and out["llm_lora_model"] == str(llm)
    assert 0 <= out["llm_lora_with_teacher_acc"] <= 1
    assert {"llm_lora", "llm_lora_with_teacher", "teacher"} <= set(out["dev_acc"])
    assert out["rows_per_s"]["llm_lora"] > 0
    assert out["best_teacher"] in out["dev_acc"]
    bvt = out["best_vs_teacher"]  # every candidate of this run has row-by-row test predictions
    assert out["best_teacher"] == "teacher" or (bvt["rows_gained"] + bvt["rows_lost"] <= 80 and 0 < bvt["p_value"] <= 1)
    saved = json.loads((tmp_path / "work" / "llm_lora" / "teacher" / "config.json").read_text())
    assert saved["architectures"] == ["LlamaForSequenceClassification"]  # merged: a plain classifier


def test_without_lora_rows_the_key_is_null_with_the_reason():
    args = TQ.parse_args(["--dataset", "sst2"])
    out, cands, rows_per_s = TQ.llm_lora_bench(args, Path("unused"), None, None)
    assert out == {"llm_lora_acc": None, "llm_lora_reason": TQ.LORA_REASON} and cands == {} and rows_per_s is None
    assert "--llm-lora-rows" in TQ.LORA_REASON


def test_best_vs_teacher_counts_the_rows_each_alone_gets_right_and_sign_tests_them():
    import numpy as np

    r = lambda *xs: np.array(xs, dtype=bool)  # noqa: E731
    cands = {"teacher": (0.5, 0.25, r(1, 0, 0, 0, 1)), "ensemble": (0.6, 0.75, r(1, 1, 1, 0, 0)),
             "blend": (0.7, 0.8, None)}
    # ensemble alone right on rows 1 and 2, the teacher alone on row 4: P(X >= 2), X ~ Bin(3, 1/2) = 4/8
    assert TQ.best_vs_teacher("ensemble", cands) == {"rows_gained": 2, "rows_lost": 1, "p_value": 0.5}
    assert TQ.best_vs_teacher("teacher", cands)["p_value"] is None
    assert "blend" in TQ.best_vs_teacher("blend", cands)["reason"]
