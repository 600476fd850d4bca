"""Image files for tests, made with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
    "white": (250, 250, 250),
    "black": (10, 10, 10),
}


def solid(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 48),
          fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def noise(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> Path:
    """A distinct image per seed (distinct vectors even from a random model)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path)
    return path


def large(path: Path, seed: int, size: int = 1536) -> Path:
    """A distinct image per seed that is slow to decode but small on disk (16x16 blocks of
    noise, scaled up): real work for tests that need batches to take a while."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").resize((size, size), Image.Resampling.NEAREST).save(path)
    return path
