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
    here (None when it follows the database's), and asset counts: in all, and by
    status, kind and model."""
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
    return data
