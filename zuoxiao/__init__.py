"""zuoxiao (做小, "make it small"): distillation as a data pipeline.

Stages: label (Beam + teacher) -> train (Accelerate + PEFT) -> compress -> ship (ONNX bundle + gate).
"""

__version__ = "0.1.0"
