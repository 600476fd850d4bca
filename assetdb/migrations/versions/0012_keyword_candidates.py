"""keyword search: a bounded candidate set, so common words cost what rare words cost

Migration 0007 ranked every row that has every word of a query with ts_rank, joined to
`assets` row by row: a word in 70 % of 100,000 rows cost ~350 ms on an idle machine
(EXPLAIN ANALYZE: ~60 % of it is the per-row lookup of `assets`, then the heap of
`asset_text`, the GIN decode, ts_rank). ts_rank carries no IDF: a word in most rows says
little about which of them is wanted, and ranking all of them buys nothing.

The rule now: each group of a query (rows with every word; then, only when those are
fewer than k, rows with some words) is read as its CANDIDATES newest searchable rows
(highest ids), and those are ranked with ts_rank. A query whose words match at most
CANDIDATES rows (every rare word, code or file name) is ranked exactly as before.

The result does not depend on how the candidates are found; two ways cost differently:
- the GIN index (every matching row read, sorted by id): cost grows with the matches;
- the newest rows of `asset_text`, walked backwards by id until CANDIDATES match: cost
  grows with rows / matches. It is tried first when ANALYZE's lexeme frequencies
  (pg_stats.most_common_elems) say the words are common enough that a window of
  2 * sqrt(CANDIDATES * rows) newest rows should hold CANDIDATES matches; a window that
  does not (recent rows differ, filters, hidden rows) falls back to the GIN read. That
  window balances the two: at 100,000 rows and 200 candidates, neither reads more than
  ~9,000 rows.

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None

# How many candidates each group of a keyword query ranks (at least k); assetdb.search.
# keyword holds the same number (a test holds the two together).
CANDIDATES = 200
# At most this many windows are walked before the GIN index is read instead.
MAX_WINDOWS = 4

_SEARCHABLE = """a.status = 'ready' AND NOT a.hidden
                  AND a.embedding_model = (SELECT value FROM assetdb_meta WHERE key = 'model')"""

_PLAN = """
CREATE FUNCTION assetdb_keyword_plan(query text, n integer)
RETURNS TABLE (window_rows integer, every_common boolean, some_common boolean)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH stats AS (
        SELECT s.attname, s.most_common_elems::text::text[] AS elems,
               s.most_common_elem_freqs AS freqs
        FROM pg_stats s
        JOIN pg_class c ON c.relname = s.tablename
        JOIN pg_namespace ns ON ns.oid = c.relnamespace AND ns.nspname = s.schemaname
        WHERE c.oid = 'asset_text'::regclass AND s.attname IN ('tsv_simple', 'tsv_lang')
    ), shares AS (
        SELECT 'tsv_simple' AS side, COALESCE((
            SELECT st.freqs[array_position(st.elems, w)] FROM stats st
            WHERE st.attname = 'tsv_simple'), 0) AS share
        FROM unnest(tsvector_to_array(
            to_tsvector('simple', assetdb_text_split(query)))) AS w
        UNION ALL
        SELECT 'tsv_lang', COALESCE((
            SELECT st.freqs[array_position(st.elems, w)] FROM stats st
            WHERE st.attname = 'tsv_lang'), 0)
        FROM unnest(tsvector_to_array(to_tsvector(assetdb_text_config(), query))) AS w
    ), win AS (
        SELECT GREATEST(n, ceil(2 * sqrt(n * GREATEST(reltuples, 1))))::integer AS r
        FROM pg_class WHERE oid = 'asset_text'::regclass
    )
    -- The words taken as independent: every word, the product of their shares (on the
    -- side that gives more); some word, one less the product of their complements. Sums
    -- of logarithms, floored at e^-50 (a long query must not underflow).
    SELECT win.r,
           GREATEST((SELECT exp(GREATEST(sum(ln(GREATEST(share, 1e-9))), -50)) FROM shares
                     WHERE side = 'tsv_simple'),
                    (SELECT exp(GREATEST(sum(ln(GREATEST(share, 1e-9))), -50)) FROM shares
                     WHERE side = 'tsv_lang'), 0) * win.r >= n,
           COALESCE((SELECT 1 - exp(GREATEST(sum(ln(1 - LEAST(share, 0.999999))), -50))
                     FROM shares WHERE side = 'tsv_lang'), 0) * win.r >= n
    FROM win
$$
"""

_PLAN_COMMENT = (
    "How assetdb_keyword_ranked reads a query's candidates: the window of newest rows, "
    "and whether ANALYZE's lexeme frequencies say that window should hold n rows with "
    "every word / with some words (then it is read first, else the GIN index).")

# The matching rows of asset_text ($1..$3 = qs, qa, ql; $4 = n; $5 = the window):
# the newest n in the window of newest rows, or through the GIN index ("+ 0" keeps the
# planner from walking the primary key backwards instead: what the window does, slow for
# rare words); then the same joined to `assets` for the searchable ones.
_NEWEST_IN_WINDOW = """
    SELECT ARRAY(SELECT t.asset_id FROM (
        SELECT x.asset_id, x.tsv_simple, x.tsv_lang FROM asset_text x
        WHERE x.asset_id < $6 ORDER BY x.asset_id DESC LIMIT $5) t
    WHERE {match} ORDER BY t.asset_id DESC LIMIT $4)
"""
_NEWEST = """
    SELECT ARRAY(SELECT t.asset_id FROM asset_text t WHERE {match}
                 ORDER BY t.asset_id + 0 DESC LIMIT $4)
"""
_SEARCHABLE_IN_WINDOW = f"""
    SELECT ARRAY(SELECT t.asset_id FROM (
        SELECT x.asset_id, x.tsv_simple, x.tsv_lang FROM asset_text x
        ORDER BY x.asset_id DESC LIMIT $5) t
    JOIN assets a ON a.id = t.asset_id
    WHERE {{match}} AND {_SEARCHABLE}
    ORDER BY t.asset_id DESC LIMIT $4)
"""
_SEARCHABLE_NEWEST = f"""
    SELECT ARRAY(SELECT t.asset_id FROM asset_text t JOIN assets a ON a.id = t.asset_id
                 WHERE {{match}} AND {_SEARCHABLE}
                 ORDER BY t.asset_id + 0 DESC LIMIT $4)
"""
_EVERY = "(t.tsv_simple @@ $1 OR t.tsv_lang @@ $2)"
_SOME = "t.tsv_lang @@ $3 AND NOT COALESCE(t.tsv_simple @@ $1 OR t.tsv_lang @@ $2, false)"


def _quote(sql: str) -> str:
    return "'" + sql.replace("'", "''") + "'"


def _read(template: str) -> str:
    """A plpgsql expression choosing the every-word or some-words form of a read."""
    return (f"CASE WHEN every_words THEN {_quote(template.format(match=_EVERY))} "
            f"ELSE {_quote(template.format(match=_SOME))} END")


# Candidate reads touch a few thousand rows at most: a parallel worker costs more to
# start than it saves, and a hash or merge join would read all of `assets` where a few
# primary-key lookups do (assetdb.search.keyword sets the same around its reads).
_PLAN_SETTINGS = """
SET max_parallel_workers_per_gather = 0
SET enable_hashjoin = off
SET enable_mergejoin = off
"""

_CANDIDATES = f"""
CREATE FUNCTION assetdb_keyword_candidates(qs tsquery, qa tsquery, ql tsquery,
                                           every_words boolean, n integer,
                                           window_rows integer)
RETURNS bigint[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
{_PLAN_SETTINGS}
AS $f$
DECLARE
    ids bigint[] := '{{}}';
    chunk bigint[];
    passing bigint[];
BEGIN
    IF window_rows IS NOT NULL THEN
        -- Window after window down the ids, while the last one held at least as many
        -- matches as are still wanted (the next should then hold the rest).
        FOR walked IN 1..{MAX_WINDOWS} LOOP
            EXECUTE {_read(_NEWEST_IN_WINDOW)} INTO chunk
                USING qs, qa, ql, n - cardinality(ids), window_rows,
                      COALESCE(ids[cardinality(ids)], 9223372036854775807);
            ids := ids || chunk;
            EXIT WHEN cardinality(ids) >= n OR cardinality(chunk) < n - cardinality(ids);
        END LOOP;
    END IF;
    IF cardinality(ids) < n THEN
        EXECUTE {_read(_NEWEST)} INTO ids USING qs, qa, ql, n;
    END IF;
    passing := ARRAY(SELECT a.id FROM assets a WHERE a.id = ANY(ids) AND {_SEARCHABLE}
                     ORDER BY a.id DESC);
    IF cardinality(ids) < n OR cardinality(passing) = n THEN
        RETURN passing;
    END IF;
    IF window_rows IS NOT NULL THEN
        EXECUTE {_read(_SEARCHABLE_IN_WINDOW)} INTO ids USING qs, qa, ql, n, window_rows;
        IF cardinality(ids) = n THEN
            RETURN ids;
        END IF;
    END IF;
    EXECUTE {_read(_SEARCHABLE_NEWEST)} INTO ids USING qs, qa, ql, n;
    RETURN ids;
END $f$
"""

_CANDIDATES_COMMENT = (
    "The newest n searchable assets with every word of a query (every_words) or only some "
    "of them, newest first: the newest matches alone (from the window of newest rows "
    "when given, else through the GIN index), then which of them are searchable.")

_RANKED = f"""
CREATE OR REPLACE FUNCTION assetdb_keyword_ranked(query text, k integer DEFAULT 10)
RETURNS TABLE (asset_id bigint, score double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $f$
DECLARE
    qs tsquery := assetdb_query_simple(query);
    qa tsquery := assetdb_query_lang_all(query);
    ql tsquery := assetdb_query_lang(query);
    n integer := GREATEST(k, {CANDIDATES});
    p record;
    every_ids bigint[];
    some_ids bigint[] := '{{}}';
BEGIN
    SELECT * INTO p FROM assetdb_keyword_plan(query, n);
    every_ids := assetdb_keyword_candidates(
        qs, qa, ql, true, n, CASE WHEN p.every_common THEN p.window_rows END);
    IF cardinality(every_ids) < k AND ql IS DISTINCT FROM qa THEN
        some_ids := assetdb_keyword_candidates(
            qs, qa, ql, false, n, CASE WHEN p.some_common THEN p.window_rows END);
    END IF;
    RETURN QUERY
        SELECT c.id, (c.bonus + assetdb_keyword_score(t.tsv_simple, t.tsv_lang, qs, ql))
                     ::double precision AS s
        FROM (SELECT unnest(every_ids) AS id, 2 AS bonus
              UNION ALL SELECT unnest(some_ids), 0) c
        JOIN asset_text t ON t.asset_id = c.id
        ORDER BY s DESC, c.id
        LIMIT k;
END $f$
"""

_RANKED_COMMENT = (
    "The k searchable assets whose words best match the query (no snippets): those with "
    "every word first (score 2 and above), then, when they are fewer than k, those with "
    f"some (below 2). Each group ranks its {CANDIDATES} (or k) newest matches: exactly "
    "all of them when no more match.")


def upgrade() -> None:
    op.execute(_PLAN)
    op.execute(_CANDIDATES)
    op.execute("COMMENT ON FUNCTION assetdb_keyword_candidates(tsquery, tsquery, tsquery, "
               f"boolean, integer, integer) IS {_quote(_CANDIDATES_COMMENT)}")
    op.execute(f"COMMENT ON FUNCTION assetdb_keyword_plan(text, integer) IS "
               f"{_quote(_PLAN_COMMENT)}")
    op.execute(_RANKED)
    op.execute(f"COMMENT ON FUNCTION assetdb_keyword_ranked(text, integer) IS "
               f"{_quote(_RANKED_COMMENT)}")


def downgrade() -> None:
    previous = importlib.import_module("assetdb.migrations.versions.0007_keyword_search")
    signature, ddl, comment = next(f for f in previous._FUNCTIONS
                                   if f[0] == "assetdb_keyword_ranked(text, integer)")
    op.execute(f"DROP FUNCTION {signature}")
    op.execute(ddl)
    op.execute(f"COMMENT ON FUNCTION {signature} IS {_quote(comment)}")
    op.execute("DROP FUNCTION assetdb_keyword_candidates(tsquery, tsquery, tsquery, boolean, "
               "integer, integer)")
    op.execute("DROP FUNCTION assetdb_keyword_plan(text, integer)")
