"""Alembic environment: runs against a connection handed over by `assetdb init`,
or against ASSETDB_DATABASE_URL (or the embedded server) when run as `alembic upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from assetdb.db.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from assetdb.config import settings
    from assetdb.db.engine import get_engine

    with get_engine(settings()).connect() as conn:
        _run(conn)
        conn.commit()
