"""Filters -> SQL, and the nearest-neighbour query itself.

Two plans, both exact in their order:
- few matching rows (<= ASSETDB_EXACT_SEARCH_MAX_ROWS): scan them exactly in a
  materialized CTE; cheaper than the graph at that size, and k rows whenever k match;
- otherwise walk the HNSW index with pgvector's iterative scan (relaxed order, so it
  keeps going until k rows pass the filters) and re-sort the k rows exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, Select, func, literal, select, text

from assetdb.db.models import Asset
from assetdb.search.filters import Filters
from assetdb.search.filters import where as filter_clauses

A = Asset.__table__.c


@dataclass
class Hit:
    id: int
    uri: str
    title: str | None
    similarity: float
    kind: str | None
    tags: list[str]
    # zero-shot labels and moderation results (assetdb.classify), and the hidden flag
    labels: dict[str, Any] = field(default_factory=dict)
    moderation: dict[str, Any] = field(default_factory=dict)
    hidden: bool = False
    # The best-matching moments of a video or document: {seconds, page, similarity}
    # (assetdb.search.moments); empty for a still image.
    moments: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def where_clauses(f: Filters, model: str) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [
        A.status == "ready",
        A.embedding.is_not(None),
        A.embedding_model == model,
    ]
    clauses.extend(filter_clauses(f, A))  # the declared filters (search/filters.py)
    return clauses


def _set_local(conn: Connection, name: str, value: str) -> None:
    conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def count_capped(conn: Connection, clauses: Sequence[ColumnElement[bool]], cap: int) -> int:
    """How many rows match, counting no further than cap + 1."""
    inner = select(literal(1)).where(*clauses).limit(cap + 1).subquery()
    return conn.execute(select(func.count()).select_from(inner)).scalar_one()


def nearest(
    conn: Connection,
    vector: np.ndarray,
    *,
    k: int,
    filters: Filters,
    model: str,
    exclude_ids: Sequence[int] = (),
    exact_max_rows: int = 20_000,
    ef_search: int = 100,
    min_similarity: float | None = None,
) -> list[Hit]:
    """The k assets closest to `vector` (cosine) among those that pass the filters, and
    no less similar than min_similarity (a search option: it needs a query)."""
    clauses = where_clauses(filters, model)
    if exclude_ids:
        clauses.append(A.id.not_in(list(exclude_ids)))
    distance = A.embedding.cosine_distance(np.asarray(vector, dtype=np.float32))
    columns = (A.id, A.uri, A.title, A.kind, A.tags, A.hidden, distance.label("distance"))
    exact = count_capped(conn, clauses, exact_max_rows) <= exact_max_rows
    if exact:
        candidates = select(*columns).where(*clauses).cte("candidates").prefix_with(
            "MATERIALIZED"
        )
        query: Select[Any] = select(candidates).order_by(candidates.c.distance, candidates.c.id)
    else:
        _set_local(conn, "hnsw.iterative_scan", "relaxed_order")
        _set_local(conn, "hnsw.ef_search", str(max(ef_search, k)))
        _set_local(conn, "hnsw.max_scan_tuples", str(max(20_000, k * 1_000)))
        # Many rows match, so walk the graph. Left alone, the planner may instead sort every
        # matching row (GIN bitmap + sort): its cost model does not see that each 512-d
        # vector is a TOAST fetch, and that plan measured 1.3 s at 50k rows against ~10 ms
        # for the index (docs/performance.md). Only the index gives this order unsorted.
        _set_local(conn, "enable_sort", "off")
        inner = (
            select(*columns).where(*clauses).order_by(distance).limit(k)
        ).cte("approx").prefix_with("MATERIALIZED")
        query = select(inner).order_by(inner.c.distance, inner.c.id)
    if min_similarity is not None:
        query = query.where(query.selected_columns.distance <= 1.0 - min_similarity)
    rows = conn.execute(query.limit(k)).all()
    if not exact:
        _set_local(conn, "enable_sort", "on")  # for whatever else runs in this transaction
    found = _classifications(conn, [r.id for r in rows])
    return [
        Hit(id=r.id, uri=r.uri, title=r.title, similarity=round(1.0 - float(r.distance), 6),
            kind=r.kind, tags=list(r.tags or []), hidden=r.hidden,
            labels=found.get(r.id, ({}, {}))[0], moderation=found.get(r.id, ({}, {}))[1])
        for r in rows
    ]


def _classifications(conn: Connection, ids: list[int]) -> dict[int, tuple[dict, dict]]:
    """Zero-shot labels and moderation results of the hits (assetdb.classify), fetched
    after the search so that they leave its plan alone."""
    if not ids:
        return {}
    rows = conn.execute(text("SELECT asset_id, labels, moderation FROM classifications "
                             "WHERE asset_id = ANY(:ids)"), {"ids": ids}).all()
    return {r.asset_id: (r.labels, r.moderation) for r in rows}


def explain(conn: Connection, vector: np.ndarray, k: int, filters: Filters, model: str) -> str:
    """EXPLAIN of the HNSW plan (for tests and `--explain`)."""
    clauses = where_clauses(filters, model)
    distance = A.embedding.cosine_distance(np.asarray(vector, dtype=np.float32))
    q = select(A.id).where(*clauses).order_by(distance).limit(k)
    compiled = q.compile(conn, compile_kwargs={})
    rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).all()
    return "\n".join(r[0] for r in rows)
