"""`zuoxiao finetune-teacher`: the fine-tune (stage.py), its gold splits (goldsplit.py), the blend choice (blend_choice.py)."""
