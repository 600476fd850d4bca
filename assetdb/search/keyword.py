"""The keyword side of search: PostgreSQL full-text search over `asset_text` (migration
0007), narrowed by the same declared filters as the vector side.

The tsqueries, the score and the snippet come from the SQL functions of that migration,
so that the CLI, the API and analysts' `assetdb_text_search` rank the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    String,
    and_,
    false,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)

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


# Rows that match only some words are ranked at most this many (migration 0007 holds the
# same number: a test holds the two together).
SOME_WORDS_CAP = 2000
EVERY_WORD = 2.0  # the least score of a match with every word of the query


def ranked(conn: Connection, query: str, *, k: int, filters: Filters, model: str,
           exclude_ids: Sequence[int] = ()) -> list[KeywordMatch]:
    """The k searchable assets that pass the filters whose words best match the query,
    best first (ties by id): assets with every word of the query (on the simple side, as
    prefixes, or stemmed) score EVERY_WORD and above and come first; then, up to
    SOME_WORDS_CAP of them, assets with some of its stemmed words. As
    assetdb_keyword_ranked does."""
    lit = literal(query, String)
    q = select(func.assetdb_query_simple(lit).label("qs"),
               func.assetdb_query_lang_all(lit).label("qa"),
               func.assetdb_query_lang(lit).label("ql")).cte("q")
    score = func.assetdb_keyword_score(T.tsv_simple, T.tsv_lang, q.c.qs, q.c.ql, type_=Float)
    every = or_(T.tsv_simple.op("@@")(q.c.qs), T.tsv_lang.op("@@")(q.c.qa))
    clauses = where_clauses(filters, model)
    if exclude_ids:
        clauses.append(A.id.not_in(list(exclude_ids)))

    def base(*columns: Any) -> Any:  # noqa: ANN401
        return (select(*columns).select_from(q)
                .join(AssetText.__table__, literal(True))
                .join(Asset.__table__, A.id == T.asset_id).where(and_(*clauses)))

    every_word = base(T.asset_id, (2 + score).label("score")).where(every)
    some_words = base(T.asset_id, score.label("score")).where(
        T.tsv_lang.op("@@")(q.c.ql), q.c.ql.is_distinct_from(q.c.qa),
        ~func.coalesce(every, false())).limit(SOME_WORDS_CAP)
    both = union_all(every_word, some_words.subquery().select()).subquery()
    stmt = select(both.c.asset_id, both.c.score).order_by(both.c.score.desc(),
                                                          both.c.asset_id).limit(k)
    return [KeywordMatch(r.asset_id, float(r.score)) for r in conn.execute(stmt)]


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
