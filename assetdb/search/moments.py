"""Search by moment: videos (frames at their seconds) and documents (pages) are found by
their best-matching moment, not only by their asset vector.

An asset's vector in `assets` is the mean of its moments, so every query and SQL function
sees every asset; but a one-scene query matches one scene of a video better than the mean
of all its scenes. So after the asset search, the query walks the moments' own HNSW index
(asset_frames) under the same filters, and an asset's similarity is the better of its own
vector's and its best moment's. Each hit with moments carries its best few (seconds or
page, similarity), which the CLI prints, the API returns and the page opens the player at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, select, text

from assetdb.db.media_models import AssetFrame
from assetdb.search.filters import Filters
from assetdb.search.query import A, Hit, _classifications, _set_local, where_clauses

F = AssetFrame.__table__.c
MOMENTS_PER_HIT = 3  # the best moments each hit carries
FRAMES_PER_RESULT = 10  # frame candidates walked per result wanted


def has_frames(conn: Connection, model: str) -> bool:
    return bool(conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM asset_frames WHERE embedding_model = :m)"
    ), {"m": model}).scalar())


def _frame_candidates(conn: Connection, vector: np.ndarray, k: int, filters: Filters,
                      model: str, exclude_ids: Sequence[int], ef_search: int
                      ) -> dict[int, float]:
    """asset id -> the distance of its closest frame, among the frames nearest the query
    whose asset passes the filters."""
    clauses = where_clauses(filters, model)
    if exclude_ids:
        clauses.append(A.id.not_in(list(exclude_ids)))
    distance = F.embedding.cosine_distance(np.asarray(vector, dtype=np.float32))
    n = min(10_000, k * FRAMES_PER_RESULT)
    _set_local(conn, "hnsw.iterative_scan", "relaxed_order")
    _set_local(conn, "hnsw.ef_search", str(min(1000, max(ef_search, n))))
    q = (select(F.asset_id, distance.label("distance"))
         .join(A.id.table, A.id == F.asset_id)
         .where(F.embedding_model == model, *clauses)
         .order_by(distance).limit(n))
    best: dict[int, float] = {}
    for r in conn.execute(q).all():
        d = float(r.distance)
        if r.asset_id not in best or d < best[r.asset_id]:
            best[r.asset_id] = d
    return best


def _hits_by_id(conn: Connection, ids: list[int]) -> dict[int, Hit]:
    rows = conn.execute(select(A.id, A.uri, A.title, A.kind, A.tags, A.hidden)
                        .where(A.id.in_(ids))).all()
    found = _classifications(conn, ids)
    return {r.id: Hit(id=r.id, uri=r.uri, title=r.title, similarity=0.0, kind=r.kind,
                      tags=list(r.tags or []), hidden=r.hidden,
                      labels=found.get(r.id, ({}, {}))[0],
                      moderation=found.get(r.id, ({}, {}))[1]) for r in rows}


def best_moments(conn: Connection, vector: np.ndarray, ids: Sequence[int], model: str,
                 per_asset: int = MOMENTS_PER_HIT) -> dict[int, list[dict[str, Any]]]:
    """The best `per_asset` moments of each asset (exact: an asset has few frames)."""
    if not ids:
        return {}
    rows = conn.execute(text(
        """
        SELECT asset_id, seconds, page, distance FROM (
            SELECT asset_id, seconds, page, embedding <=> :q AS distance,
                   row_number() OVER (PARTITION BY asset_id
                                      ORDER BY embedding <=> :q, position) AS rank
            FROM asset_frames WHERE asset_id = ANY(:ids) AND embedding_model = :m
        ) ranked WHERE rank <= :n ORDER BY asset_id, rank
        """
    ), {"q": np.asarray(vector, dtype=np.float32), "ids": list(ids), "m": model,
        "n": per_asset}).all()
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.asset_id, []).append({
            "seconds": None if r.seconds is None else round(float(r.seconds), 3),
            "page": r.page, "similarity": round(1.0 - float(r.distance), 6)})
    return out


def with_moments(conn: Connection, hits: list[Hit], vector: np.ndarray, *, k: int,
                 filters: Filters, model: str, exclude_ids: Sequence[int] = (),
                 min_similarity: float | None = None, ef_search: int = 100) -> list[Hit]:
    """The asset search's hits merged with the assets whose frames match best, each
    scored by the better of its vector and its best moment, with its best moments."""
    if not has_frames(conn, model):
        return hits
    frames = _frame_candidates(conn, vector, k, filters, model, exclude_ids, ef_search)
    by_id = {h.id: h for h in hits}
    missing = [i for i in frames if i not in by_id]
    by_id.update(_hits_by_id(conn, missing) if missing else {})
    for asset_id, distance in frames.items():
        hit = by_id.get(asset_id)
        if hit is not None and asset_id not in {h.id for h in hits}:
            hit.similarity = round(1.0 - distance, 6)
        elif hit is not None:
            hit.similarity = max(hit.similarity, round(1.0 - distance, 6))
    ranked = sorted(by_id.values(), key=lambda h: (-h.similarity, h.id))
    if min_similarity is not None:
        ranked = [h for h in ranked if h.similarity >= min_similarity]
    ranked = ranked[:k]
    moments = best_moments(conn, vector, [h.id for h in ranked], model)
    for hit in ranked:
        hit.moments = moments.get(hit.id, [])
        if hit.moments:
            hit.similarity = max(hit.similarity, hit.moments[0]["similarity"])
    return ranked
