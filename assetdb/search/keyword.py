"""The keyword side of search: PostgreSQL full-text search over `asset_text` (migration
0007), narrowed by the same declared filters as the vector side.

The tsqueries, the score and the snippet come from the SQL functions of that migration,
so that the CLI, the API and analysts' `assetdb_text_search` rank the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    String,
    and_,
    any_,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import TSQUERY

from assetdb.db.models import Asset
from assetdb.db.text_models import AssetText
from assetdb.search.filters import Filters
from assetdb.search.query import where_clauses

A = Asset.__table__.c
T = AssetText.__table__.c


@dataclass(frozen=True)
class KeywordMatch:
    asset_id: int
    score: float

    @property
    def every_word(self) -> bool:
        return self.score >= EVERY_WORD


def has_words(conn: Connection, query: str) -> bool:
    """Whether the query holds anything the keyword side can match (not only punctuation
    or spaces)."""
    return bool(conn.execute(
        text("SELECT assetdb_query_simple(:q) IS NOT NULL OR assetdb_query_lang(:q) IS NOT NULL"),
        {"q": query},
    ).scalar_one())


# Each group of a query (rows with every word, then rows with some) ranks at most this
# many candidates, its newest matches (migration 0012 holds the same number: a test holds
# the two together).
CANDIDATES = 200
MAX_WINDOWS = 4  # windows of newest rows walked before the GIN index is read instead
EVERY_WORD = 2.0  # the least score of a match with every word of the query

# The score of a candidate, as assetdb_keyword_ranked (migration 0012) computes it.
_RANK = text(
    "SELECT c.id, (c.bonus + assetdb_keyword_score(t.tsv_simple, t.tsv_lang, "
    "CAST(:qs AS tsquery), CAST(:ql AS tsquery)))::double precision AS s "
    "FROM (SELECT unnest(CAST(:every AS bigint[])) AS id, 2 AS bonus "
    "      UNION ALL SELECT unnest(CAST(:some AS bigint[])), 0) c "
    "JOIN asset_text t ON t.asset_id = c.id ORDER BY s DESC, c.id LIMIT :k")


def ranked(conn: Connection, query: str, *, k: int, filters: Filters, model: str,
           exclude_ids: Sequence[int] = ()) -> list[KeywordMatch]:
    """The k searchable assets that pass the filters whose words best match the query,
    best first (ties by id): assets with every word of the query (on the simple side, as
    prefixes, or stemmed) score EVERY_WORD and above and come first; then, when they are
    fewer than k, assets with some of its stemmed words. Each group ranks its newest
    max(k, CANDIDATES) matches (all of them when no more match). As
    assetdb_keyword_ranked (migration 0012) does."""
    n = max(k, CANDIDATES)
    plan = conn.execute(text(
        "SELECT assetdb_query_simple(:q)::text AS qs, assetdb_query_lang_all(:q)::text AS qa, "
        "assetdb_query_lang(:q)::text AS ql, p.window_rows, p.every_common, p.some_common "
        "FROM assetdb_keyword_plan(:q, :n) p"), {"q": query, "n": n}).one()
    qs, qa, ql = (cast(literal(v, String), TSQUERY) for v in (plan.qs, plan.qa, plan.ql))

    def every(simple: Any, lang: Any) -> Any:  # noqa: ANN401
        return or_(simple.op("@@")(qs), lang.op("@@")(qa))

    def some(simple: Any, lang: Any) -> Any:  # noqa: ANN401
        return and_(lang.op("@@")(ql), ~func.coalesce(every(simple, lang), false()))

    clauses = where_clauses(filters, model)
    if exclude_ids:
        clauses.append(A.id.not_in(list(exclude_ids)))
    every_ids = _candidates(conn, every, clauses, n,
                            plan.window_rows if plan.every_common else None)
    some_ids: list[int] = []
    if len(every_ids) < k and plan.ql != plan.qa:
        some_ids = _candidates(conn, some, clauses, n,
                               plan.window_rows if plan.some_common else None)
    rows = conn.execute(_RANK, {"qs": plan.qs, "ql": plan.ql, "every": every_ids,
                                "some": some_ids, "k": k})
    return [KeywordMatch(r.id, float(r.s)) for r in rows]


# Candidate reads touch a few thousand rows at most: a parallel worker costs more to
# start than it saves, and a hash or merge join would read all of `assets` where a few
# primary-key lookups do. Set for the joined reads (the others join nothing, and their
# bound parameters give the planner their selectivity); migration 0012 sets the same on
# assetdb_keyword_candidates.
_PLAN_SETTINGS = {"max_parallel_workers_per_gather": "0", "enable_hashjoin": "off",
                  "enable_mergejoin": "off"}


@contextmanager
def _candidate_plans(conn: Connection) -> Iterator[None]:
    names, values = list(_PLAN_SETTINGS), list(_PLAN_SETTINGS.values())
    before = list(conn.scalars(text(
        "SELECT current_setting(n) FROM unnest(CAST(:n AS text[])) WITH ORDINALITY u(n, i) "
        "ORDER BY i"), {"n": names}))
    set_all = text("SELECT count(set_config(n, v, true)) "
                   "FROM unnest(CAST(:n AS text[]), CAST(:v AS text[])) u(n, v)")
    conn.execute(set_all, {"n": names, "v": values})
    try:
        yield
    finally:
        conn.execute(set_all, {"n": names, "v": before})


def _candidates(conn: Connection, match: Callable[[Any, Any], Any],
                clauses: list[Any], n: int, window: int | None) -> list[int]:
    """The newest n searchable rows that match and pass the filters, newest first (as
    assetdb_keyword_candidates, migration 0012). First the newest n matches alone: from
    the `window` newest rows of asset_text when given (common words) and enough of them
    match, else through the GIN index; then which of them pass. When some do not and
    more match, the matches are read joined to `assets`."""
    ids: list[int] = []
    if window is not None:
        # Window after window down the ids, while the last one held at least as many
        # matches as are still wanted (the next should then hold the rest).
        for _ in range(MAX_WINDOWS):
            below = (select(T.asset_id, T.tsv_simple, T.tsv_lang)
                     .where(T.asset_id < (ids[-1] if ids else 2**63 - 1))
                     .order_by(T.asset_id.desc()).limit(window).subquery("t"))
            chunk = list(conn.scalars(select(below.c.asset_id)
                                      .where(match(below.c.tsv_simple, below.c.tsv_lang))
                                      .order_by(below.c.asset_id.desc()).limit(n - len(ids))))
            ids += chunk
            if len(ids) >= n or len(chunk) < n - len(ids):
                break
    if len(ids) < n:
        # "+ 0": all matches through the GIN index, never a walk down the primary key.
        ids = list(conn.scalars(select(T.asset_id).where(match(T.tsv_simple, T.tsv_lang))
                                .order_by((T.asset_id + 0).desc()).limit(n)))
    passing = list(conn.scalars(select(A.id).where(A.id == any_(cast(
        literal(ids, ARRAY(BigInteger)), ARRAY(BigInteger))), *clauses).order_by(A.id.desc())))
    if len(ids) < n or len(passing) == n:
        return passing
    with _candidate_plans(conn):
        return _joined(conn, match, clauses, n, window)


def _joined(conn: Connection, match: Callable[[Any, Any], Any],
            clauses: list[Any], n: int, window: int | None) -> list[int]:
    """The newest n matches that pass the filters, read joined to `assets`."""
    if window is not None:
        recent = (select(T.asset_id, T.tsv_simple, T.tsv_lang)
                  .order_by(T.asset_id.desc()).limit(window).subquery("t"))
        ids = list(conn.scalars(
            select(recent.c.asset_id)
            .select_from(recent.join(Asset.__table__, A.id == recent.c.asset_id))
            .where(match(recent.c.tsv_simple, recent.c.tsv_lang), *clauses)
            .order_by(recent.c.asset_id.desc()).limit(n)))
        if len(ids) == n:
            return ids
    return list(conn.scalars(
        select(T.asset_id)
        .select_from(AssetText.__table__.join(Asset.__table__, A.id == T.asset_id))
        .where(match(T.tsv_simple, T.tsv_lang), *clauses)
        .order_by((T.asset_id + 0).desc()).limit(n)))


def snippets(conn: Connection, query: str, ids: Sequence[int]) -> dict[int, str]:
    """The matching text of each asset, the query's words in <mark>...</mark>."""
    if not ids:
        return {}
    rows = conn.execute(text(
        "SELECT t.asset_id, assetdb_snippet(t.document, t.tsv_lang, q.qs, q.ql) AS snippet "
        "FROM (SELECT assetdb_query_simple(:q) AS qs, assetdb_query_lang(:q) AS ql) q, "
        "asset_text t WHERE t.asset_id = ANY(:ids)"), {"q": query, "ids": list(ids)}).all()
    return {r.asset_id: r.snippet for r in rows}


def available(conn: Connection) -> bool:
    """Whether this database has the keyword tables (migration 0007: `assetdb init`)."""
    return bool(conn.execute(text("SELECT to_regclass('asset_text') IS NOT NULL")).scalar_one())
