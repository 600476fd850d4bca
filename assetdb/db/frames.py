"""Writes of the moments tables (asset_frames, asset_media): one place that ingest,
workers and re-embedding call after they write an asset's vector, in the same
transaction, so that an asset's frames always belong to its current content and model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, text

Moment = tuple[float | None, int | None, np.ndarray]  # seconds, page, vector

_INSERT = text(
    "INSERT INTO asset_frames (asset_id, position, seconds, page, embedding, embedding_model) "
    "VALUES (:a, :p, :s, :pg, :v, :m)"
)
_MEDIA = text(
    """
    INSERT INTO asset_media (asset_id, facts, note, frames) VALUES (:a, :f, :n, :c)
    ON CONFLICT (asset_id) DO UPDATE SET facts = EXCLUDED.facts, note = EXCLUDED.note,
        frames = EXCLUDED.frames, updated_at = now()
    """
)


def _clean(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if isinstance(v, str | int | float | bool | None)}


def replace_moments(conn: Connection, model: str,
                    items: Sequence[tuple[int, Sequence[Moment], str | None,
                                          Mapping[str, Any]]],
                    table: str = "asset_frames") -> None:
    """Replace the moments of each (asset id, moments, note, facts): old frames go, the
    new ones come with `model`. No moments (the file failed) leaves the asset none."""
    if not items:
        return
    if table not in ("asset_frames", "asset_frames_next"):
        raise ValueError(f"not a frames table: {table}")
    ids = [asset_id for asset_id, *_ in items]
    conn.execute(text(f"DELETE FROM {table} WHERE asset_id = ANY(:ids)"), {"ids": ids})
    rows = [{"a": asset_id, "p": i, "s": seconds, "pg": page, "v": vector, "m": model}
            for asset_id, moments, _, _ in items
            for i, (seconds, page, vector) in enumerate(moments)]
    if rows:
        insert = _INSERT if table == "asset_frames" else text(
            str(_INSERT).replace("asset_frames", table))
        conn.execute(insert, rows)
    if table == "asset_frames":
        conn.execute(_MEDIA, [{"a": asset_id, "f": Jsonb(_clean(facts)), "n": note,
                               "c": len(moments)}
                              for asset_id, moments, note, facts in items])


def ids_by_uri(conn: Connection, uris: Sequence[str]) -> dict[str, int]:
    rows = conn.execute(text("SELECT id, uri FROM assets WHERE uri = ANY(:u)"),
                        {"u": list(uris)}).all()
    return {r.uri: r.id for r in rows}


def frame_vectors(conn: Connection, asset_ids: Sequence[int], model: str
                  ) -> dict[int, list[tuple[float | None, int | None, np.ndarray]]]:
    """The stored moments of these assets, by asset, in order."""
    rows = conn.execute(text(
        "SELECT asset_id, seconds, page, embedding FROM asset_frames "
        "WHERE asset_id = ANY(:ids) AND embedding_model = :m ORDER BY asset_id, position"
    ), {"ids": list(asset_ids), "m": model}).all()
    out: dict[int, list[tuple[float | None, int | None, np.ndarray]]] = {}
    for r in rows:
        out.setdefault(r.asset_id, []).append(
            (r.seconds, r.page, np.asarray(r.embedding, dtype=np.float32)))
    return out
