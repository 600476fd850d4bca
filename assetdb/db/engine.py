"""Engines and connections. One engine per URL per process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
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
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


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
        connect_args={"connect_timeout": 10, "application_name": "assetdb"},
    )

    @event.listens_for(engine, "connect")
    def _register_vector(dbapi_conn, _record):  # noqa: ANN001 - DBAPI types
        # Teach psycopg the vector types, where the extension exists already.
        from pgvector.psycopg import register_vector

        try:
            register_vector(dbapi_conn)
        except Exception:  # the extension is created by `assetdb init`
            dbapi_conn.rollback()

    _ENGINES[url] = engine
    return engine


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
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot connect to the database at {redact(engine.url.render_as_string(False))}: "
            f"{reason}"
        ) from None
    with conn:
        with conn.begin():
            yield conn


def vector_array(value: Any) -> np.ndarray:
    """A vector read with plain SQL as float32 numpy: the psycopg adapter of pgvector
    returns pgvector.Vector objects, which np.asarray cannot convert."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy else value, dtype=np.float32)
