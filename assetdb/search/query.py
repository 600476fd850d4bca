"""Filters -> SQL, the plan that answers a nearest-neighbour search, and the query itself.

Two plans, both exact in their order:
- exact: scan the rows that pass the filters and sort them by the float32 distance. Right
  whatever the filter; cheap while few rows match.
- index: walk the HNSW index over the half-precision vectors (assetdb.db.indexes) with
  pgvector's iterative scan (it keeps walking until enough rows pass the filters), take a
  few more candidates than asked for, and re-rank them exactly with the float32 vectors.

The choice (assetdb.search.plan) reads the planner's estimate of the matching rows and
counts them only when the estimate lies near the threshold, so unfiltered and broad
searches pay nothing for it. An estimate that is too high cannot cost rows: when the walk
runs out before it found enough candidates, the exact plan answers instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Select,
    bindparam,
    cast,
    column,
    func,
    select,
    table,
    text,
)

from assetdb.db.models import Asset
from assetdb.search.filters import Filters
from assetdb.search.filters import where as filter_clauses
from assetdb.search.plan import Plan, PlanRules, choose_plan, index_walk

A = Asset.__table__.c
# Zero-shot labels and moderation results (migration 0004), joined onto the k hits.
_CLASSIFIED = table("classifications", column("asset_id"), column("labels"),
                    column("moderation"))


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


def base_clauses(model: str) -> list[ColumnElement[bool]]:
    """What every search keeps, filters or not: ready rows with a vector of the model."""
    return [A.status == "ready", A.embedding.is_not(None), A.embedding_model == model]


def where_clauses(f: Filters, model: str) -> list[ColumnElement[bool]]:
    clauses = base_clauses(model)
    clauses.extend(filter_clauses(f, A))  # the declared filters (search/filters.py)
    return clauses


def _set_local(conn: Connection, name: str, value: str) -> None:
    conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def nearest(
    conn: Connection,
    vector: np.ndarray,
    *,
    k: int,
    filters: Filters,
    model: str,
    exclude_ids: Sequence[int] = (),
    exact_max_rows: int = 10_000,
    ef_search: int = 100,
    min_similarity: float | None = None,
    plan_out: list[Plan] | None = None,
) -> list[Hit]:
    """The k assets closest to `vector` (cosine) among those that pass the filters, and
    no less similar than min_similarity (a search option: it needs a query).
    plan_out: a list that receives the plan used (for `--explain`, tests, benchmarks)."""
    vector = np.asarray(vector, dtype=np.float32)
    clauses = where_clauses(filters, model)
    if exclude_ids:
        clauses.append(A.id.not_in(list(exclude_ids)))
    rules = PlanRules(exact_max_rows=exact_max_rows, ef_search=ef_search)
    plan = choose_plan(conn, clauses, k, rules, filtered=not filters.is_empty())
    rows = None
    query_vector = _bound(vector)
    if plan.capped:
        rows, plan.counted = _exact_rows_capped(conn, query_vector, clauses, k,
                                                rules.exact_max_rows)
        if plan.counted <= rules.exact_max_rows:
            plan.exact = True
        else:  # more rows match than the exact plan takes: the index answers
            rows = None
            index_walk(plan, k, max(plan.estimated_rows or 0, plan.counted), rules)
    if not plan.exact:
        rows = _index_rows(conn, query_vector, clauses, k, plan)
        if len(rows) < k:
            # The walk ran out before it found k candidates: fewer rows match than the
            # estimate said, or they lie beyond the scan's limit. Exact is right either way.
            plan.fallback = True
            plan.exact = True
            rows = None
    if rows is None:
        rows = _exact_rows(conn, query_vector, clauses, k)
    if min_similarity is not None:
        rows = [r for r in rows if r.distance <= 1.0 - min_similarity]
    if plan_out is not None:
        plan_out.append(plan)
    return [
        Hit(id=r.id, uri=r.uri, title=r.title, similarity=round(1.0 - float(r.distance), 6),
            kind=r.kind, tags=list(r.tags or []), hidden=r.hidden,
            labels=r.labels or {}, moderation=r.moderation or {})
        for r in rows
    ]


def _bound(vector: np.ndarray) -> BindParameter[Any]:
    """The query vector as one bind parameter: every place a statement uses it refers to
    the same parameter, so it is encoded and sent once."""
    return bindparam("query_vector", vector, type_=Vector(len(vector)))


def _columns(query_vector: BindParameter[Any]) -> tuple[Any, ...]:
    distance = A.embedding.cosine_distance(query_vector)
    return (A.id, A.uri, A.title, A.kind, A.tags, A.hidden, distance.label("distance"))


def _top_k(candidates: Any, k: int) -> Select[Any]:  # noqa: ANN401 - a CTE
    """The k nearest of the candidates in exact order, with their classifications (a join
    on k rows, after the search, so it leaves the search's plan alone)."""
    return (select(candidates, _CLASSIFIED.c.labels, _CLASSIFIED.c.moderation)
            .select_from(candidates.outerjoin(
                _CLASSIFIED, _CLASSIFIED.c.asset_id == candidates.c.id))
            .order_by(candidates.c.distance, candidates.c.id).limit(k))


def _matching(query_vector: BindParameter[Any], clauses: Sequence[ColumnElement[bool]],
              cap: int | None = None) -> Any:  # noqa: ANN401 - a CTE
    """The matching rows with their float32 distance (at most `cap`). MATERIALIZED keeps
    the planner from pushing the ORDER BY into the HNSW index (which would make it
    approximate)."""
    return (select(*_columns(query_vector)).where(*clauses).limit(cap)
            .cte("candidates").prefix_with("MATERIALIZED"))


def _exact_rows(conn: Connection, query_vector: BindParameter[Any],
                clauses: Sequence[ColumnElement[bool]], k: int) -> list[Any]:
    """Every matching row, sorted by the float32 distance."""
    return list(conn.execute(_top_k(_matching(query_vector, clauses), k)).all())


def _exact_rows_capped(conn: Connection, query_vector: BindParameter[Any],
                       clauses: Sequence[ColumnElement[bool]], k: int,
                       threshold: int) -> tuple[list[Any], int]:
    """The exact plan over at most threshold + 1 matching rows, and how many it found
    (the rows are exact only when that is no more than the threshold)."""
    candidates = _matching(query_vector, clauses, threshold + 1)
    query = _top_k(candidates, k).add_columns(
        select(func.count()).select_from(candidates).scalar_subquery().label("matched"))
    rows = list(conn.execute(query).all())
    if not rows:
        return [], 0
    return rows, int(rows[0].matched)


def half_distance(vector: np.ndarray | BindParameter[Any]) -> ColumnElement[Any]:
    """The distance the index orders by; spelled exactly as the index expression."""
    if not isinstance(vector, BindParameter):
        vector = _bound(np.asarray(vector, dtype=np.float32))
    dim = vector.type.dim
    return cast(A.embedding, HALFVEC(dim)).cosine_distance(cast(vector, HALFVEC(dim)))


def _index_rows(conn: Connection, query_vector: BindParameter[Any],
                clauses: Sequence[ColumnElement[bool]], k: int, plan: Plan) -> list[Any]:
    """plan.candidates rows from the HNSW walk, re-ranked by the float32 distance."""
    # One round trip for the walk's settings. enable_sort off: left alone, the planner may
    # sort every matching row (GIN bitmap + sort) instead of walking the index.
    conn.execute(text(
        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
        "set_config('hnsw.ef_search', :ef, true), "
        "set_config('hnsw.max_scan_tuples', :scan, true), "
        "set_config('enable_sort', 'off', true)"),
        {"ef": str(plan.ef_search), "scan": str(plan.max_scan_tuples)})
    inner = (select(*_columns(query_vector)).where(*clauses)
             .order_by(half_distance(query_vector))
             .limit(plan.candidates)).cte("approx").prefix_with("MATERIALIZED")
    rows = list(conn.execute(_top_k(inner, k)).all())
    _set_local(conn, "enable_sort", "on")  # for whatever else runs in this transaction
    return rows


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
    q = select(A.id).where(*clauses).order_by(
        half_distance(np.asarray(vector, dtype=np.float32))).limit(k)
    compiled = q.compile(conn, compile_kwargs={})
    rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).all()
    return "\n".join(r[0] for r in rows)
