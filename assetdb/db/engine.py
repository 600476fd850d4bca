"""Engines and connections. One engine per URL per process."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from assetdb.config import Settings, env_float
from assetdb.db.vectors import register_numpy_vectors
from assetdb.errors import DatabaseError, DatabaseUnavailable

T = TypeVar("T")


def libpq_url(settings: Settings) -> str:
    """The plain libpq URL (for psql and analysts); starts the embedded server if needed."""
    if settings.database_url:
        return settings.database_url
    from assetdb.db import embedded

    return embedded.start(settings.home)


def sqlalchemy_url(url: str) -> str:
    return re.sub(r"^(postgres|postgresql)(\+\w+)?://", "postgresql+psycopg://", url)


def redact(url: str) -> str:
    from assetdb.db.dsn import redact_dsn

    return redact_dsn(url)


_ENGINES: dict[str, Engine] = {}


def _engine(url: str, setting: str = "ASSETDB_DATABASE_URL") -> Engine:
    if url in _ENGINES:
        return _ENGINES[url]
    if not re.match(r"^(postgres|postgresql)(\+\w+)?://", url):
        raise DatabaseError(
            f"{setting} must be a postgresql:// URL, got {redact(url)!r}"
        )
    engine = create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        # prepare_threshold=None: no server-side prepared statements. A model switch
        # (`assetdb reembed`) changes the vector column's type, and a statement prepared
        # before it would fail after it ("cached plan must not change result type").
        connect_args={"connect_timeout": 10, "application_name": "assetdb",
                      "prepare_threshold": None},
    )

    @event.listens_for(engine, "connect")
    def _register_vector(dbapi_conn, _record):  # noqa: ANN001 - DBAPI types
        register_numpy_vectors(dbapi_conn)

    _ENGINES[url] = engine
    return engine


def get_engine(settings: Settings) -> Engine:
    return _engine(libpq_url(settings))


def reset_engines() -> None:
    """Forget cached engines (after `init` created the extension, in tests)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def read_url(settings: Settings) -> str:
    """Where searches read: ASSETDB_READ_DATABASE_URL (a streaming replica of the
    primary) when set, else the primary itself."""
    return settings.read_database_url or libpq_url(settings)


@contextmanager
def connect(settings: Settings) -> Iterator[Connection]:
    """A connection to the primary in a transaction, with connection failures turned into
    clear errors. Everything that writes, or reads to decide a write, uses this."""
    with _connected(get_engine(settings), settings, "") as conn:
        yield conn


@contextmanager
def connect_read(settings: Settings) -> Iterator[Connection]:
    """A connection for a search or a browse that writes nothing: to the read replica
    (ASSETDB_READ_DATABASE_URL) when one is set, else to the primary. A replica lags
    its primary: rows committed a moment ago may not be there yet."""
    if not settings.read_database_url:
        with connect(settings) as conn:
            yield conn
        return
    with _connected(_engine(settings.read_database_url, "ASSETDB_READ_DATABASE_URL"), settings,
                    " (the read replica, ASSETDB_READ_DATABASE_URL)") as conn:
        yield conn


@contextmanager
def _connected(engine: Engine, settings: Settings, which: str) -> Iterator[Connection]:
    try:
        conn = engine.connect()
    except OperationalError as exc:
        from assetdb.db.dsn import scrub

        url = engine.url.render_as_string(False)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        # libpq may quote parts of the connection string back in its message.
        raise DatabaseUnavailable(
            f"cannot connect to the database at {redact(url)}{which}: "
            f"{scrub(reason, url, settings.database_url, settings.read_database_url)}"
        ) from None
    with conn:
        with conn.begin():
            yield conn



def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_unavailable(exc: BaseException) -> bool:
    """The server went away or cannot serve now (killed, restarting, disk full): worth
    waiting for, unlike an error in what was asked."""
    import psycopg

    if isinstance(exc, DatabaseUnavailable | psycopg.OperationalError):
        return True
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def user_message(exc: BaseException, *dsns: str | None) -> str | None:
    """One line for a database error that reached the CLI: what happened and what to do,
    never the statement, its parameters or a password (of the `dsns` given). None: not
    a database error."""
    import psycopg

    from assetdb.db.dsn import scrub

    if not isinstance(exc, SQLAlchemyError | psycopg.Error):
        return None
    orig = exc if isinstance(exc, psycopg.Error) else getattr(exc, "orig", None)
    reason = _first_line(orig) if orig is not None else _first_line(exc).split(" [SQL:")[0]
    state = getattr(orig, "sqlstate", None) or ""
    if state == "53100":  # disk_full
        advice = "the database server's disk is full: free space there, then run this again"
    elif is_unavailable(exc):
        advice = ("the database server stopped answering: check that it runs "
                  "(`assetdb db status`), then run this again; work already committed is kept")
    else:
        advice = "the database refused the request"
    return scrub(f"{advice} ({reason})", *dsns)


def retry_database(fn: Callable[[], T], *, wait_s: float | None = None,
                   on_retry: Callable[[float], None] | None = None) -> T:
    """fn(), tried again with backoff (0.5 s doubling to 5 s) while the database is
    unavailable, for at most wait_s seconds in all (ASSETDB_DB_RETRY_SECONDS, default 30):
    long-running workers outlive a server restart. fn must be safe to run again (one
    transaction that rolled back)."""
    budget = env_float("ASSETDB_DB_RETRY_SECONDS", 30.0) if wait_s is None else wait_s
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        try:
            return fn()
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            left = deadline - time.monotonic()
            if not is_unavailable(exc) or left <= 0:
                raise
            pause = min(delay, left)
            if on_retry:
                on_retry(pause)
            time.sleep(pause)
            delay = min(delay * 2, 5.0)


@contextmanager
def autocommit_driver_connection(settings: Settings) -> Iterator[Any]:
    """A psycopg connection in autocommit, from the catalogue's engine (index builds run
    outside a transaction block: they hold no lock longer than the build itself)."""
    with get_engine(settings).connect().execution_options(
            isolation_level="AUTOCOMMIT") as conn:
        yield conn.connection.driver_connection
