"""Counts over the whole catalogue (`assetdb stats`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, literal, select

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect, libpq_url, redact
from assetdb.db.models import Asset

A = Asset.__table__.c
GROUPS = {"by_status": A.status, "by_kind": A.kind, "by_model": A.embedding_model}


def _grouped(conn: Connection, column: Any) -> dict[str, int]:  # noqa: ANN401 - a column
    """Rows per value of column, most first; NULL counted as '(none)'."""
    key = func.coalesce(column, literal("(none)")).label("k")
    n = func.count().label("n")
    rows = conn.execute(select(key, n).group_by(key).order_by(n.desc())).all()
    return {k: count for k, count in rows}


def catalogue_stats(settings: Settings) -> dict[str, Any]:
    """The database (password redacted), its model and dimension, the model configured
    here (None when it follows the database's), asset counts: in all, and by status,
    kind and model; and the read replica with its lag, when one is set."""
    with connect(settings) as conn:
        meta = schema.require_meta(conn)
        data: dict[str, Any] = {
            "database": redact(libpq_url(settings)),
            "model": meta["model"],
            "dimension": int(meta["dimension"]),
            "configured_model": settings.model if settings.model_is_explicit else None,
            "total": conn.execute(select(func.count()).select_from(Asset)).scalar_one(),
        }
        data.update({name: _grouped(conn, column) for name, column in GROUPS.items()})
    data.update(_read_replica(settings))
    return data


def _read_replica(settings: Settings) -> dict[str, Any]:
    """Where searches read (None: the primary), how many bytes of WAL that replica has
    still to apply (None: not a streaming replica, or none configured), and why it could
    not be asked (the counts above come from the primary and stay useful)."""
    from assetdb.db.replica import replica_state
    from assetdb.errors import DatabaseUnavailable

    out: dict[str, Any] = {"read_database": None, "read_replica_lag_bytes": None,
                           "read_replica_error": None}
    if not settings.read_database_url:
        return out
    out["read_database"] = redact(settings.read_database_url)
    try:
        state = replica_state(settings)
    except DatabaseUnavailable as exc:
        out["read_replica_error"] = str(exc)
        return out
    out["read_replica_lag_bytes"] = state.lag_bytes if state else None
    return out
