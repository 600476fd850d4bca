"""What ingest tells about near-duplicates: each newly embedded asset is compared with
the older ones (its vector neighbours and the assets sharing a pHash band), and the
closest within the default threshold is recorded as its `duplicate_of`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from assetdb.duplicates import store
from assetdb.duplicates.finder import DEFAULT_NEIGHBOURS, DEFAULT_THRESHOLD
from assetdb.duplicates.hashing import ImageHashes, bits_for


def record_near_duplicates(conn: Connection, hashed: Sequence[tuple[str, str, ImageHashes]],
                           model: str) -> list[dict[str, Any]]:
    """Store (uri, sha256, hashes) of assets just embedded; return and record those that
    near-duplicate an older asset."""
    ids = store.store_hashes(conn, hashed)
    rows = store.find_older_duplicates(conn, ids, bits_for(DEFAULT_THRESHOLD),
                                       DEFAULT_NEIGHBOURS, model)
    return [{"id": r.asset_id, "uri": r.uri, "duplicate_of": r.duplicate_of,
             "duplicate_of_uri": r.other_uri, "similarity": round(float(r.similarity), 4)}
            for r in rows]
