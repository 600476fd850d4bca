"""The read replica (ASSETDB_READ_DATABASE_URL): how far it lags the primary.

Searches read from the replica; everything that writes goes to the primary. A streaming
replica applies the primary's WAL a moment later, so a search right after an ingest may
not find the new rows yet. This measures that gap in bytes of WAL: 0 means every
transaction committed on the primary when it was asked is visible on the replica.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import text

from assetdb.config import Settings
from assetdb.errors import DatabaseError


@dataclass(frozen=True)
class ReplicaState:
    standby: bool  # the read URL is a server in recovery (a physical replica)
    lag_bytes: int | None  # WAL the primary has written and the replica not yet applied


def replica_state(settings: Settings) -> ReplicaState | None:
    """None when no read replica is configured (searches read from the primary)."""
    if not settings.read_database_url:
        return None
    from assetdb.db.engine import connect, connect_read

    with connect(settings) as conn:
        primary_lsn = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
    with connect_read(settings) as conn:
        standby, lag = conn.execute(text(
            "SELECT pg_is_in_recovery(), "
            "greatest(pg_wal_lsn_diff(CAST(:p AS pg_lsn), pg_last_wal_replay_lsn()), 0)"
        ), {"p": primary_lsn}).one()
    # On a server not in recovery (the read URL names the primary, or a logical copy)
    # replay positions are NULL: there is no lag to speak of in WAL terms.
    return ReplicaState(bool(standby), int(lag) if standby and lag is not None else None)


def wait_for_replica(settings: Settings, timeout_s: float = 30.0) -> None:
    """Block until the replica has applied everything the primary had committed when this
    was called (read-your-writes for a script that ingests, then searches)."""
    from assetdb.db.engine import connect, connect_read

    if not settings.read_database_url:
        return
    with connect(settings) as conn:
        target = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
    deadline = time.monotonic() + timeout_s
    while True:
        with connect_read(settings) as conn:
            done = conn.execute(text(
                "SELECT NOT pg_is_in_recovery() OR "
                "pg_last_wal_replay_lsn() >= CAST(:t AS pg_lsn)"), {"t": target}).scalar_one()
        if done:
            return
        if time.monotonic() > deadline:
            raise DatabaseError(
                f"the read replica (ASSETDB_READ_DATABASE_URL) did not catch up with the "
                f"primary within {timeout_s:g} s: is replication running, or replay paused?")
        time.sleep(0.05)
