"""The API's own settings (limits, token, allowed Host names), read from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from assetdb.config import read_setting, setting
from assetdb.errors import ConfigError

# The defaults are declared with the other settings (assetdb.config.SETTINGS).
DEFAULT_MAX_UPLOAD_MB = setting("ASSETDB_API_MAX_UPLOAD_MB").default
DEFAULT_MAX_RESULTS = setting("ASSETDB_API_MAX_RESULTS").default
# Pillow's own bomb limit is ~89 MP (an error only at twice that); a 10 KB PNG just under
# it costs ~10 s CPU and >1 GB. 40 MP is still more than any camera's full-size JPEG.
DEFAULT_MAX_UPLOAD_PIXELS = setting("ASSETDB_API_MAX_UPLOAD_PIXELS").default
DEFAULT_BUSY_TIMEOUT_S = setting("ASSETDB_API_BUSY_TIMEOUT").default
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
    ask: bool = False  # ASSETDB_ASK: POST /api/ask sends catalogue content to an LLM

    def __post_init__(self) -> None:
        if self.protect_reads and not self.token:
            raise ConfigError("ASSETDB_API_PROTECT_READS needs ASSETDB_API_TOKEN to be set")


def split_hosts(raw: str | None) -> tuple[str, ...]:
    return tuple(h.strip() for h in (raw or "").split(",") if h.strip())


def api_config_from_env(extra_hosts: tuple[str, ...] = ()) -> ApiConfig:
    from assetdb.search.searches import MAX_K

    return ApiConfig(
        token=read_setting("ASSETDB_API_TOKEN"),
        max_upload_bytes=read_setting("ASSETDB_API_MAX_UPLOAD_MB") * 2**20,
        max_results=min(read_setting("ASSETDB_API_MAX_RESULTS"), MAX_K),
        allowed_hosts=(LOOPBACK_HOSTS + split_hosts(read_setting("ASSETDB_API_ALLOWED_HOSTS"))
                       + extra_hosts),
        protect_reads=read_setting("ASSETDB_API_PROTECT_READS"),
        max_upload_pixels=read_setting("ASSETDB_API_MAX_UPLOAD_PIXELS"),
        busy_timeout_s=read_setting("ASSETDB_API_BUSY_TIMEOUT"),
        ask=read_setting("ASSETDB_ASK"),
    )
