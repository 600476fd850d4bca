"""Settings from the environment. Read once per process; no heavy imports here."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assetdb.errors import ConfigError

DEFAULT_MODEL = "clip-ViT-B-32"
# Larger images are refused from their header. A PNG is decoded whole before it is
# reduced, so this bounds memory: up to 4 bytes a pixel (RGBA) while one decodes.
DEFAULT_MAX_IMAGE_PIXELS = 700_000_000


def _default_home() -> Path:
    # XDG-style per-user data directory; ASSETDB_HOME overrides it. Root's is a system
    # folder: the embedded server then runs as another user, who must reach it, and
    # root's own home is closed to others (we never widen its permissions).
    if os.name == "posix" and os.geteuid() == 0 and not os.environ.get("XDG_DATA_HOME"):
        return Path("/var/lib/assetdb")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "assetdb"


def env_number(name: str, default: float, minimum: float = 0, cast: type = int) -> Any:
    """A number from the environment (int or float by `cast`), with a clear error."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        what = "an integer" if cast is int else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not math.isfinite(value):  # float("nan") passes every comparison below
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_int(name: str, default: int, minimum: int = 0) -> int:
    return env_number(name, default, minimum, int)


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    return env_number(name, default, minimum, float)


def max_image_pixels() -> int:
    """ASSETDB_MAX_IMAGE_PIXELS: the largest image (width x height) that is decoded."""
    return env_int("ASSETDB_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS, minimum=1)


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    readonly_database_url: str | None  # `assetdb sql`'s login; else init's read-only role
    home: Path
    model: str
    model_is_explicit: bool  # ASSETDB_MODEL set; else the database's own model is used
    device: str | None
    batch_size: int
    decode_workers: int
    exact_search_max_rows: int
    hnsw_ef_search: int
    max_image_pixels: int

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("ASSETDB_HOME") or _default_home()).expanduser()
        return cls(
            database_url=os.environ.get("ASSETDB_DATABASE_URL") or None,
            readonly_database_url=os.environ.get("ASSETDB_READONLY_DATABASE_URL") or None,
            home=home,
            model=os.environ.get("ASSETDB_MODEL") or DEFAULT_MODEL,
            model_is_explicit=bool(os.environ.get("ASSETDB_MODEL")),
            device=os.environ.get("ASSETDB_DEVICE") or None,
            batch_size=env_int("ASSETDB_BATCH_SIZE", 32, minimum=1),
            decode_workers=env_int("ASSETDB_DECODE_WORKERS", max(2, os.cpu_count() or 2), 1),
            # Below this many matching rows a filtered search scans them exactly
            # instead of walking the HNSW graph: exact, and cheaper at that size.
            exact_search_max_rows=env_int("ASSETDB_EXACT_SEARCH_MAX_ROWS", 20_000),
            hnsw_ef_search=env_int("ASSETDB_HNSW_EF_SEARCH", 100, minimum=1),
            max_image_pixels=max_image_pixels(),
        )


def settings() -> Settings:
    return Settings.from_env()
