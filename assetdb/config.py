"""Settings from the environment. Read once per process; no heavy imports here."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
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


def env_flag(name: str) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _text(name: str) -> str | None:
    return os.environ.get(name) or None


# --- every setting, declared once ------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default, help and how it is read.

    `read(name, default)` returns the value (the default when unset); `default` may be a
    function (a default that depends on the machine). `doc_default` is how the README's
    configuration table states the default, when it is not simply the value in backticks
    (a test holds the two together)."""

    name: str
    default: Any
    help: str
    read: Callable[[str, Any], Any]
    doc_default: str = ""

    def value(self) -> Any:  # noqa: ANN401
        default = self.default() if callable(self.default) else self.default
        return self.read(self.name, default)

    def documented_default(self) -> str:
        if self.doc_default:
            return self.doc_default
        default = self.default
        if isinstance(default, bool):
            return f"`{int(default)}`"
        if isinstance(default, float):
            return f"`{default:g}`"
        return f"`{default}`"


def _text_or(name: str, default: Any) -> Any:  # noqa: ANN401
    return os.environ.get(name) or default


def _int(minimum: int) -> Callable[[str, Any], int]:
    return lambda name, default: env_int(name, default, minimum)


def _float(minimum: float) -> Callable[[str, Any], float]:
    return lambda name, default: env_float(name, default, minimum)


def _flag(name: str, default: Any) -> bool:  # noqa: ANN401
    return env_flag(name) if os.environ.get(name) else bool(default)


def _default_decode_workers() -> int:
    return max(2, os.cpu_count() or 2)


SETTINGS: tuple[Setting, ...] = (
    Setting("ASSETDB_DATABASE_URL", None, "any PostgreSQL 14+ with pgvector 0.8+; unset: "
            "the embedded server", _text_or, "unset: embedded server"),
    Setting("ASSETDB_READONLY_DATABASE_URL", None, "the login `assetdb sql` uses; unset: the "
            "read-only role `init` creates", _text_or, "unset: the role `init` creates"),
    # A replica of ASSETDB_DATABASE_URL for the searches; not the same as the read-only
    # login above, which is a role (who), where this is a server (which copy).
    Setting("ASSETDB_READ_DATABASE_URL", None, "a read replica of ASSETDB_DATABASE_URL "
            "that searches, browsing and `assetdb sql` read from; writes always go to the "
            "primary", _text_or, "unset: the primary"),
    Setting("ASSETDB_HOME", None, "where the embedded server keeps its data and password "
            "files", _text_or, "`~/.local/share/assetdb` (root: `/var/lib/assetdb`)"),
    Setting("ASSETDB_MODEL", DEFAULT_MODEL, "a sentence-transformers CLIP model name, or a "
            "local model directory", _text_or),
    # A separate text encoder for the model's image space (assetdb/embedding/text_model.py).
    Setting("ASSETDB_TEXT_MODEL", None, "a text model directory (`assetdb finetune "
            "--distill-text`) that queries, labels and concepts go through; `builtin`: the "
            "model's own text tower", _text_or,
            "unset: the one the model directory names, else its own"),
    Setting("ASSETDB_DEVICE", None, "torch device for the model", _text_or,
            "`cuda` if available, else `cpu`"),
    Setting("ASSETDB_ONNX_PROVIDER", "auto", "ONNX models (`assetdb model export`): "
            "`auto` (CUDA when installed, else CPU), `cpu`, `cuda` or `openvino` (OpenVINO "
            "runs the image tower, for ingest and re-embedding: `assetdb[openvino]`)",
            _text_or),
    Setting("ASSETDB_ONNX_THREADS", 0, "ONNX Runtime (or OpenVINO) threads per model call; "
            "0: one per core", _int(0)),
    Setting("ASSETDB_BATCH_SIZE", 32, "images per model batch", _int(1)),
    Setting("ASSETDB_DECODE_WORKERS", _default_decode_workers, "threads that decode images "
            "while the model runs", _int(1), "number of CPUs (at least 2)"),
    Setting("ASSETDB_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS, "largest image (width x "
            "height) decoded", _int(1)),
    # Below this many matching rows a filtered search scans them exactly instead of
    # walking the HNSW graph: exact, and cheaper at that size (assetdb.search.plan).
    Setting("ASSETDB_EXACT_SEARCH_MAX_ROWS", 10_000, "filtered searches matching at most "
            "this many rows scan them exactly (init records it for the SQL functions)",
            _int(0)),
    Setting("ASSETDB_HNSW_EF_SEARCH", 100, "HNSW search breadth (hnsw.ef_search)", _int(1)),
    # A bulk load drops the vector index and builds it once at the end (assetdb.db.indexes).
    Setting("ASSETDB_BULK_INDEX_MIN_ROWS", 5_000, "an ingest embedding at least this many "
            "new files, and at least as many as the catalogue holds, builds the vector "
            "index once after loading", _int(1)),
    # Time-based kinds (assetdb/kinds/video.py, pdf.py): which frames or pages become moments.
    Setting("ASSETDB_VIDEO_MIN_FPM", 6.0, "video frames sampled per minute at least (one "
            "every 10 s by default, even without a scene change)", _float(0.1)),
    Setting("ASSETDB_VIDEO_MAX_FPM", 60.0, "video frames sampled per minute at most (scene "
            "changes closer than this share one frame)", _float(0.1)),
    Setting("ASSETDB_VIDEO_MAX_FRAMES", 240, "frames embedded per video at most; a longer "
            "video is sampled evenly and its row notes the cap", _int(1)),
    Setting("ASSETDB_VIDEO_DECODE_SECONDS", 120.0, "seconds one video may spend decoding; "
            "past it the frames so far are kept and the row says so", _float(0.1)),
    Setting("ASSETDB_PDF_PAGES", 1, "PDF pages embedded as moments (the first N)", _int(1)),
    # The API's own (assetdb serve); defaults live with their reasons in api/config.py.
    Setting("ASSETDB_API_TOKEN", None, "the token for writes (and every request with "
            "ASSETDB_API_PROTECT_READS)", _text_or, "unset"),
    Setting("ASSETDB_API_PROTECT_READS", False, "1: every request needs the token", _flag),
    Setting("ASSETDB_API_ALLOWED_HOSTS", None, "extra Host names the server answers for, "
            "comma-separated", _text_or, "unset"),
    Setting("ASSETDB_API_MAX_UPLOAD_MB", 20, "largest upload, in MB", _int(1)),
    Setting("ASSETDB_API_MAX_UPLOAD_PIXELS", 40_000_000, "largest uploaded image, in pixels",
            _int(1)),
    Setting("ASSETDB_API_MAX_RESULTS", 500, "the most results one search returns over all "
            "its pages", _int(1)),
    Setting("ASSETDB_API_BUSY_TIMEOUT", 5.0, "seconds a request waits for the model before "
            "a 503", _float(0.0)),
    # `assetdb ask` and POST /api/ask (assetdb/ask): the API's route sends catalogue
    # content to a third party, so it stays off until the admin turns it on.
    Setting("ASSETDB_ASK", False, "1: `assetdb serve` answers POST /api/ask", _flag),
    Setting("ASSETDB_ASK_MODEL", None, "the llm model `assetdb ask` and the API ask; unset: "
            "llm's default (`llm models default`)", _text_or, "unset"),
    Setting("ASSETDB_ASK_TIMEOUT", 120.0, "seconds to wait for the LLM's next chunk before "
            "giving up", _float(0.1)),
    # Workers (assetdb worker); read by ingest/worker.py and db/engine.py.
    Setting("ASSETDB_LEASE_SECONDS", 600.0, "how long a claimed batch is reserved for its "
            "worker", _float(0.1)),
    Setting("ASSETDB_MAX_ATTEMPTS", 3, "claims per row before it stays failed", _int(1)),
    Setting("ASSETDB_RETRY_DELAY", 30.0, "seconds before a row that failed to embed is "
            "tried again", _float(0.0)),
    Setting("ASSETDB_POLL_SECONDS", 2.0, "how often an idle worker looks for new rows",
            _float(0.01)),
    Setting("ASSETDB_DB_RETRY_SECONDS", 30.0, "how long a worker waits for a database that "
            "went away", _float(0.0)),
    # Keyword search and OCR (assetdb.search.keyword, assetdb.ocr).
    Setting("ASSETDB_OCR", False, "1: ingest and workers read the text in images (OCR; "
            "needs the `ocr` extra)", _flag),
    Setting("ASSETDB_TEXT_SEARCH_CONFIG", "english", "PostgreSQL text search configuration "
            "of keyword search's stemmed side; `assetdb init` applies it", _text_or),
)


def setting(name: str) -> Setting:
    for s in SETTINGS:
        if s.name == name:
            return s
    raise KeyError(f"no setting {name}")


def read_setting(name: str) -> Any:  # noqa: ANN401
    """The value of setting `name` from the environment (its default when unset)."""
    return setting(name).value()


def max_image_pixels() -> int:
    """ASSETDB_MAX_IMAGE_PIXELS: the largest image (width x height) that is decoded."""
    return read_setting("ASSETDB_MAX_IMAGE_PIXELS")


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
    bulk_index_min_rows: int
    max_image_pixels: int
    # Searches' server (a read replica); None: the primary. Last, with a default, so that
    # code building Settings by hand keeps working.
    read_database_url: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(read_setting("ASSETDB_HOME") or _default_home()).expanduser()
        return cls(
            database_url=read_setting("ASSETDB_DATABASE_URL"),
            readonly_database_url=read_setting("ASSETDB_READONLY_DATABASE_URL"),
            home=home,
            model=read_setting("ASSETDB_MODEL"),
            model_is_explicit=bool(os.environ.get("ASSETDB_MODEL")),
            device=read_setting("ASSETDB_DEVICE"),
            batch_size=read_setting("ASSETDB_BATCH_SIZE"),
            decode_workers=read_setting("ASSETDB_DECODE_WORKERS"),
            exact_search_max_rows=read_setting("ASSETDB_EXACT_SEARCH_MAX_ROWS"),
            hnsw_ef_search=read_setting("ASSETDB_HNSW_EF_SEARCH"),
            bulk_index_min_rows=read_setting("ASSETDB_BULK_INDEX_MIN_ROWS"),
            max_image_pixels=max_image_pixels(),
            read_database_url=read_setting("ASSETDB_READ_DATABASE_URL"),
        )


def settings() -> Settings:
    return Settings.from_env()
