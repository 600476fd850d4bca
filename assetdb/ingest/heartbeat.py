"""Heartbeats: a long-running process (a worker, an embedding ingest, a re-embed) says it is
alive every few seconds from a background thread, so that its leases stay its own however
slow one batch is, and `assetdb status` can tell a killed process from a live one.

The thread runs beside model inference: torch and Pillow release the GIL while they
work, and a heartbeat is one short UPDATE.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from assetdb.config import Settings
from assetdb.db.engine import connect
from assetdb.errors import DatabaseError

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0  # at most this long between two beats
# A process whose last beat is older than this is dead (five missed beats: a killed
# process, a lost machine, or a database it cannot reach).
DEAD_AFTER_S = 5 * HEARTBEAT_S

Beat = Callable[[Connection], None]


def interval_for(lease_seconds: float) -> float:
    """Beat often enough that a lease is renewed about three times before it can expire."""
    return min(HEARTBEAT_S, lease_seconds / 3)


def renew_leases(conn: Connection, owner: str, lease_seconds: float) -> None:
    """Push out the expiry of every row `owner` still holds."""
    conn.execute(
        text("UPDATE assets SET lease_expires_at = now() + make_interval(secs => :lease) "
             "WHERE lease_owner = :owner"),
        {"owner": owner, "lease": float(lease_seconds)},
    )


def pid_alive(hostname: str, pid: int | None) -> bool | None:
    """On this host: whether the process exists (None when it is another host's)."""
    if pid is None or hostname != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


class Heartbeat:
    """Calls `beat(conn)` every `interval` seconds in a daemon thread until closed. A beat
    that fails (the database restarting, say) is logged and tried again next time."""

    def __init__(self, settings: Settings, beat: Beat, interval: float) -> None:
        self.settings = settings
        self.beat = beat
        self.interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="assetdb-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                with connect(self.settings) as conn:
                    self.beat(conn)
            # The main loop meets the same error and reports it. A server that is down
            # raises DatabaseUnavailable from connect(), not a SQLAlchemy error.
            except (SQLAlchemyError, DatabaseError) as exc:
                log.warning("heartbeat failed: %s", exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()
