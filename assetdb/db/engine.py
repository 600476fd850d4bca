"""Engines and connections. One engine per URL per process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from assetdb.config import Settings
from assetdb.errors import DatabaseError


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


def _engine(url: str) -> Engine:
    if url in _ENGINES:
        return _ENGINES[url]
    if not re.match(r"^(postgres|postgresql)(\+\w+)?://", url):
        raise DatabaseError(
            f"ASSETDB_DATABASE_URL must be a postgresql:// URL, got {redact(url)!r}"
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


def register_numpy_vectors(dbapi_conn) -> None:  # noqa: ANN001 - a psycopg connection
    """numpy arrays bind as `vector`, and `vector` values load as float32 numpy arrays.

    Before `assetdb init` the extension may not exist yet: then nothing is registered.
    """
    from pgvector.psycopg.vector import VectorBinaryLoader, VectorLoader, register_vector_info
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(dbapi_conn, "vector")
    dbapi_conn.rollback()  # leave no transaction open on the fresh connection
    if info is None:
        return
    register_vector_info(dbapi_conn, info)

    class NumpyLoader(VectorLoader):
        def load(self, data):  # noqa: ANN001, ANN201
            return super().load(data).to_numpy()

    class NumpyBinaryLoader(VectorBinaryLoader):
        def load(self, data):  # noqa: ANN001, ANN201
            return super().load(data).to_numpy()

    dbapi_conn.adapters.register_loader(info.oid, NumpyLoader)
    dbapi_conn.adapters.register_loader(info.oid, NumpyBinaryLoader)


def get_engine(settings: Settings) -> Engine:
    return _engine(libpq_url(settings))


def reset_engines() -> None:
    """Forget cached engines (after `init` created the extension, in tests)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


@contextmanager
def connect(settings: Settings) -> Iterator[Connection]:
    """A connection in a transaction, with connection failures turned into clear errors."""
    engine = get_engine(settings)
    try:
        conn = engine.connect()
    except OperationalError as exc:
        from assetdb.db.dsn import scrub

        url = engine.url.render_as_string(False)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        # libpq may quote parts of the connection string back in its message.
        raise DatabaseError(
            f"cannot connect to the database at {redact(url)}: "
            f"{scrub(reason, url, settings.database_url)}"
        ) from None
    with conn:
        with conn.begin():
            yield conn

