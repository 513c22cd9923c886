"""The prompted causal LM teacher: scoring (scorer.py), the teacher and its recipe (teacher.py), weights (weights.py)."""
