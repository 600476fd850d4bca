"""Keepers users choose (the page, the API): a marked asset is its group's keeper in every
later grouping, whatever its size or age."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect
from assetdb.duplicates import store


def mark_keeper(settings: Settings, asset_id: int, keep: bool = True) -> dict[str, Any]:
    """Mark `asset_id` as the keeper of its group (keep=False: take the mark away). The
    other members of its last stored group lose their marks, and the new keeper, if
    --hide hid it, is shown again."""
    with connect(settings) as conn:
        schema.require_meta(conn)
        if not keep:
            conn.execute(text("DELETE FROM duplicate_keepers WHERE asset_id = :i"),
                         {"i": asset_id})
            return {"asset_id": asset_id, "marked_keeper": False, "shown_again": 0}
        conn.execute(text(
            """
            DELETE FROM duplicate_keepers WHERE asset_id IN (
                SELECT g.asset_id FROM duplicate_groups g
                JOIN duplicate_groups mine ON mine.keeper_id = g.keeper_id
                WHERE mine.asset_id = :i AND g.asset_id <> :i)
            """), {"i": asset_id})
        conn.execute(text("INSERT INTO duplicate_keepers (asset_id) VALUES (:i) "
                          "ON CONFLICT (asset_id) DO NOTHING"), {"i": asset_id})
        shown = store.unhide(conn, [asset_id])
    return {"asset_id": asset_id, "marked_keeper": True, "shown_again": shown}
