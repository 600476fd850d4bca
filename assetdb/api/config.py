"""The API's own settings (limits, token, allowed Host names), read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from assetdb.config import env_float, env_int
from assetdb.errors import ConfigError

DEFAULT_MAX_UPLOAD_MB = 20
DEFAULT_MAX_RESULTS = 500
# Pillow's own bomb limit is ~89 MP (an error only at twice that); a 10 KB PNG just under
# it costs ~10 s CPU and >1 GB. 40 MP is still more than any camera's full-size JPEG.
DEFAULT_MAX_UPLOAD_PIXELS = 40_000_000
DEFAULT_BUSY_TIMEOUT_S = 5.0
# The names a browser uses for this machine itself. Any other Host is refused, so a page
# on rebind.example whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class ApiConfig:
    token: str | None  # ASSETDB_API_TOKEN: required by write endpoints when set
    max_upload_bytes: int
    max_results: int  # the cap on a search's results, over all "load more" pages
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # Host names answered (any port)
    protect_reads: bool = False  # every request needs the token, not only writes
    max_upload_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S  # wait this long for the model, then 503

    def __post_init__(self) -> None:
        if self.protect_reads and not self.token:
            raise ConfigError("ASSETDB_API_PROTECT_READS needs ASSETDB_API_TOKEN to be set")


def env_flag(name: str) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def split_hosts(raw: str | None) -> tuple[str, ...]:
    return tuple(h.strip() for h in (raw or "").split(",") if h.strip())


def api_config_from_env(extra_hosts: tuple[str, ...] = ()) -> ApiConfig:
    from assetdb.search.service import MAX_K

    return ApiConfig(
        token=os.environ.get("ASSETDB_API_TOKEN") or None,
        max_upload_bytes=env_int("ASSETDB_API_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB, 1) * 2**20,
        max_results=min(env_int("ASSETDB_API_MAX_RESULTS", DEFAULT_MAX_RESULTS, 1), MAX_K),
        allowed_hosts=(LOOPBACK_HOSTS + split_hosts(os.environ.get("ASSETDB_API_ALLOWED_HOSTS"))
                       + extra_hosts),
        protect_reads=env_flag("ASSETDB_API_PROTECT_READS"),
        max_upload_pixels=env_int("ASSETDB_API_MAX_UPLOAD_PIXELS",
                                  DEFAULT_MAX_UPLOAD_PIXELS, 1),
        busy_timeout_s=env_float("ASSETDB_API_BUSY_TIMEOUT", DEFAULT_BUSY_TIMEOUT_S, 0.0),
    )
