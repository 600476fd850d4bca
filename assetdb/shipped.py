"""Where the data the package ships lies: a neutral home, so that the model backends can
point at the demo model without importing the demo (which imports them)."""

from pathlib import Path

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo" / "model"
