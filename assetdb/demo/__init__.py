"""The offline demo: a generated shapes domain and a small CLIP trained on it."""

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent / "model"
