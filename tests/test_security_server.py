"""The embedded server's boundary (issue 12, finding 5) and its liveness (issue 13,
finding 12): only its owner reaches it, it changes no folder it did not make, it runs in
no privileged group, and a stale postmaster.pid never passes for a live server."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from assetdb.db import embedded
from assetdb.errors import DatabaseError

ROOT = os.geteuid() == 0


@pytest.fixture
def scratch() -> Iterator[Path]:
    base = embedded.scratch_home("assetdb-sec-")
    yield base
    for home in [p.parent for p in base.rglob("pgdata")]:
        try:
            embedded.stop(home)
        except DatabaseError:
            pass
    subprocess.run(["rm", "-rf", str(base)], check=False)


def _socket_dir(url: str) -> Path:
    return Path(parse_qs(urlsplit(url).query)["host"][0])


def _postmaster_pid(home: Path) -> int:
    return int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_long_home_gets_a_private_socket_folder_and_passwords(scratch):
    home = scratch / ("h" * 60) / ("o" * 60)  # the socket path would pass 107 bytes
    home.parent.mkdir()
    home.parent.chmod(0o711)
    url = embedded.start(home)
    sock = _socket_dir(url)
    assert sock != home / "run" and len(str(sock / embedded.SOCKET_NAME)) <= 107
    st = sock.stat()
    assert stat.S_IMODE(st.st_mode) == 0o700  # never a shared 0777 folder
    assert stat.S_IMODE((sock / embedded.SOCKET_NAME).stat().st_mode) & 0o077 == 0
    hba = (home / "pgdata" / "pg_hba.conf").read_text()
    assert "trust" not in hba and "scram-sha-256" in hba
    with psycopg.connect(url) as conn:  # the owner, with the passfile
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=str(sock), user="postgres", dbname="postgres", passfile="/dev/null")
    assert stat.S_IMODE(embedded.superuser_passfile(home).stat().st_mode) == 0o600
    assert embedded.stop(home) is True
    assert not sock.exists()  # the private socket folder goes with the server


def test_a_new_home_is_private(scratch):
    home = scratch / "new" / "home"
    embedded.start(home)
    assert stat.S_IMODE(home.stat().st_mode) == (0o711 if ROOT else 0o700)


def test_parents_keep_their_permissions(scratch):
    parent = scratch / "a" / "b"
    parent.mkdir(parents=True)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (scratch, scratch / "a", parent)}
    (scratch / "a").chmod(0o751)
    parent.chmod(0o701)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (scratch, scratch / "a", parent)}
    embedded.start(parent / "home")
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in modes} == modes


@pytest.mark.skipif(not ROOT, reason="the server runs as another user only under root")
def test_closed_parent_is_a_clear_error_and_stays_closed(scratch):
    parent = scratch / "private"
    parent.mkdir(mode=0o700)
    with pytest.raises(DatabaseError, match="does not change your folders' permissions"):
        embedded.start(parent / "home")
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETDB_")}
    env["ASSETDB_HOME"] = str(parent / "home")
    cli = subprocess.run([sys.executable, "-m", "assetdb", "db", "start"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr + cli.stdout
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700


def test_server_runs_in_no_privileged_group(scratch):
    home = scratch / "home"
    embedded.start(home)
    status = Path(f"/proc/{_postmaster_pid(home)}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    gids = {int(g) for g in fields["Gid"].split()}
    groups = {int(g) for g in fields["Groups"].split()}
    if ROOT:
        assert 0 not in gids and 0 not in groups
        assert {int(u) for u in fields["Uid"].split()} != {0}
    else:
        assert gids == {os.getegid()}


def test_legacy_trust_cluster_gets_a_password_on_start(scratch):
    home = scratch / "home"
    url = embedded.start(home)
    embedded.stop(home)
    # What an older assetdb left: trust for every local login, and no passfile.
    (home / "pgdata" / "pg_hba.conf").write_text("local all all trust\n")
    embedded.superuser_passfile(home).unlink()
    url = embedded.start(home)
    assert "trust" not in (home / "pgdata" / "pg_hba.conf").read_text()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=str(_socket_dir(url)), user="postgres", dbname="postgres",
                        passfile="/dev/null")


def test_killed_postmaster_is_restarted_by_the_next_command(scratch):
    home = scratch / "home"
    url = embedded.start(home)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (v int)")
        conn.execute("INSERT INTO keep VALUES (7)")
    pid = _postmaster_pid(home)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _state(pid) not in ("Z", None):
        time.sleep(0.02)
    # Dead, its PID still a zombie of this process: nothing passes for a running server.
    assert _state(pid) == "Z"
    assert embedded.running_url(home) is None
    url = embedded.start(home)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM keep").fetchone() == (7,)


def test_pid_reused_by_another_process_is_not_a_server(scratch):
    home = scratch / "home"
    embedded.start(home)
    pidfile = home / "pgdata" / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    embedded.stop(home)
    other = subprocess.Popen(["sleep", "60"])
    try:
        # A crash left the file; its PID now belongs to an unrelated live process.
        pidfile.write_text("\n".join([str(other.pid)] + lines[1:]) + "\n")
        assert embedded.running_url(home) is None
        assert embedded.stop(home) is False  # "not running", no traceback, no signal sent
        assert other.poll() is None
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETDB_")}
        env["ASSETDB_HOME"] = str(home)
        started = time.monotonic()
        cli = subprocess.run([sys.executable, "-m", "assetdb", "db", "start"], env=env,
                             capture_output=True, text=True, timeout=90)
        assert cli.returncode == 0, cli.stderr
        assert time.monotonic() - started < 60
        with psycopg.connect(cli.stdout.strip()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        stopped = subprocess.run([sys.executable, "-m", "assetdb", "db", "stop"], env=env,
                                 capture_output=True, text=True, timeout=90)
        assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped", stopped.stderr
    finally:
        other.kill()
        other.wait()
