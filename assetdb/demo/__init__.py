"""The offline demo: a generated shapes domain and a small CLIP trained on it."""

from assetdb.shipped import DEMO_MODEL_DIR as MODEL_DIR

__all__ = ["MODEL_DIR"]
