"""Search at scale: the HNSW index over half-precision vectors, and SQL functions that
take the product's filters and follow its plan rules (assetdb.search.plan)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

The vector column's storage becomes MAIN (kept in the row, so the exact plan pays no
TOAST fetch per matching row), and the index moves from `embedding vector_cosine_ops` to
the expression
`(embedding::halfvec(D)) halfvec_cosine_ops`: half the size, so the graph of a million
512-d rows fits in memory while it is built and stays cached while it is searched; the
searches re-rank its candidates with the float32 vectors. On an existing catalogue this
rebuilds the index once, with the memory and workers assetdb.db.indexes sizes for it.
A re-embed's shadow index is dropped too: the re-embed builds it again in the new shape.

`assetdb_search` holds the plan rules once, in PL/pgSQL; `assetdb_nearest`,
`assetdb_similar` and `assetdb_concept_search` call it and gain the same filter
arguments as `assetdb search` (named, all optional: two-argument calls work as before).
It is VOLATILE (PostgreSQL allows EXPLAIN, which reads the planner's estimate, only in
volatile functions) and PARALLEL UNSAFE (it changes hnsw.* settings for its own queries;
its SET clauses restore them when it returns): a query that calls it runs without
parallel workers. Filter values reach its dynamic SQL only as bound parameters (EXECUTE ... USING);
the SQL text is assembled from constant fragments.
"""

from __future__ import annotations

from alembic import context, op
from sqlalchemy import text

from assetdb.db.indexes import (
    DEFAULT_EF_SEARCH,
    EMBEDDING_INDEX,
    build_plan,
    vector_index_sql,
)
from assetdb.search.plan import (
    CANDIDATE_FACTOR,
    EF_BASE_ROWS,
    EF_SEARCH_MAX,
    MARGIN,
    MIN_CANDIDATES,
    SCAN_OVERSHOOT,
    SCAN_TUPLES_MAX,
    SCAN_TUPLES_MIN,
)

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SHADOW_INDEX = "assets_embedding_next_hnsw"

_FILTER_ARGS = """
    tags text[] DEFAULT NULL, any_tags text[] DEFAULT NULL, meta jsonb DEFAULT NULL,
    kinds text[] DEFAULT NULL, captured_after timestamptz DEFAULT NULL,
    captured_before timestamptz DEFAULT NULL, include_hidden boolean DEFAULT false"""
_FILTER_PASS = ("tags, any_tags, meta, kinds, captured_after, captured_before, "
                "include_hidden")
_FILTER_TYPES = ("text[], text[], jsonb, text[], timestamp with time zone, "
                 "timestamp with time zone, boolean")

SEARCH = f"""
CREATE FUNCTION assetdb_search(query vector, k integer DEFAULT 10, {_FILTER_ARGS},
                               exclude_id bigint DEFAULT NULL)
RETURNS TABLE (asset_id bigint, similarity double precision)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET hnsw.iterative_scan = relaxed_order
SET hnsw.ef_search = {DEFAULT_EF_SEARCH}
SET hnsw.max_scan_tuples = {SCAN_TUPLES_MIN}
SET enable_sort = on
AS $fn$
DECLARE
    model text := (SELECT value FROM assetdb_meta WHERE key = 'model');
    dim integer := (SELECT value FROM assetdb_meta WHERE key = 'dimension')::integer;
    threshold bigint := coalesce(
        (SELECT value FROM assetdb_meta WHERE key = 'exact_search_max_rows')::bigint, 10000);
    base_ef integer := current_setting('hnsw.ef_search')::integer;
    cond text := 'a.status = ''ready'' AND a.embedding IS NOT NULL '
                 'AND a.embedding_model = $1';
    filtered boolean := false;
    n bigint;
    est bigint;
    counted bigint;
    exact boolean := false;
    matching double precision;
    ef integer;
    cand integer;
    scan bigint;
    plan json;
    ids bigint[];
    dists double precision[];
BEGIN
    IF query IS NULL OR k IS NULL OR k < 1 OR model IS NULL THEN
        RETURN;
    END IF;
    IF vector_dims(query) <> dim THEN
        RAISE EXCEPTION 'the query vector has % dimensions; this catalogue''s model (%) '
                        'makes %', vector_dims(query), model, dim;
    END IF;
    -- The same conditions as assetdb.search.filters, as constant SQL fragments.
    IF tags IS NOT NULL AND cardinality(tags) > 0 THEN
        cond := cond || ' AND a.tags @> $2'; filtered := true; END IF;
    IF any_tags IS NOT NULL AND cardinality(any_tags) > 0 THEN
        cond := cond || ' AND a.tags && $3'; filtered := true; END IF;
    IF meta IS NOT NULL AND meta <> '{{}}'::jsonb THEN
        cond := cond || ' AND a.metadata @> $4'; filtered := true; END IF;
    IF kinds IS NOT NULL AND cardinality(kinds) > 0 THEN
        cond := cond || ' AND a.kind = ANY($5)'; filtered := true; END IF;
    IF captured_after IS NOT NULL THEN
        cond := cond || ' AND a.captured_at >= $6'; filtered := true; END IF;
    IF captured_before IS NOT NULL THEN
        cond := cond || ' AND a.captured_at <= $7'; filtered := true; END IF;
    IF NOT coalesce(include_hidden, false) THEN
        cond := cond || ' AND a.hidden IS false'; END IF;
    IF exclude_id IS NOT NULL THEN
        cond := cond || ' AND a.id <> $8'; END IF;

    n := (SELECT reltuples::bigint FROM pg_class WHERE oid = 'assets'::regclass);
    IF n < 0 THEN
        SELECT count(*) INTO n FROM assets;
    END IF;
    IF n <= threshold THEN
        exact := true;
    ELSIF filtered THEN
        EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM assets a WHERE ' || cond INTO plan
            USING model, tags, any_tags, meta, kinds, captured_after, captured_before,
                  exclude_id;
        est := (plan->0->'Plan'->>'Plan Rows')::bigint;
        IF est * {MARGIN} <= threshold THEN
            exact := true;
        ELSIF est < threshold * {MARGIN} THEN
            EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM assets a WHERE ' || cond
                    || ' LIMIT $9) c' INTO counted
                USING model, tags, any_tags, meta, kinds, captured_after, captured_before,
                      exclude_id, threshold + 1;
            exact := counted <= threshold;
        END IF;
    END IF;

    IF NOT exact THEN
        matching := CASE WHEN filtered THEN greatest(est, coalesce(counted, 0)) ELSE n END;
        ef := least({EF_SEARCH_MAX}, greatest(
            floor(base_ef * sqrt(greatest(1.0, n::double precision / {EF_BASE_ROWS}))),
            k))::integer;
        cand := greatest(k, least(ef, greatest({CANDIDATE_FACTOR} * k, {MIN_CANDIDATES})));
        scan := least({SCAN_TUPLES_MAX}, greatest({SCAN_TUPLES_MIN}, floor(
            {SCAN_OVERSHOOT} * cand / greatest(matching / greatest(n, 1), 1e-9))))::bigint;
        PERFORM set_config('hnsw.ef_search', ef::text, true);
        PERFORM set_config('hnsw.max_scan_tuples', scan::text, true);
        PERFORM set_config('enable_sort', 'off', true);
        EXECUTE format(
            'SELECT array_agg(id ORDER BY d, id), array_agg(d ORDER BY d, id) FROM ('
            'SELECT a.id, a.embedding <=> $10 AS d FROM assets a WHERE %s '
            'ORDER BY a.embedding::halfvec(%s) <=> $10::halfvec(%s) LIMIT %s) c',
            cond, dim, dim, cand) INTO ids, dists
            USING model, tags, any_tags, meta, kinds, captured_after, captured_before,
                  exclude_id, NULL::bigint, query;
        PERFORM set_config('enable_sort', 'on', true);
        IF coalesce(cardinality(ids), 0) >= k THEN
            RETURN QUERY SELECT u.id, 1 - u.d FROM unnest(ids, dists) WITH ORDINALITY
                AS u(id, d, i) ORDER BY u.i LIMIT k;
            RETURN;
        END IF;
        -- The walk came back short: the exact plan answers (as in query.nearest).
    END IF;
    RETURN QUERY EXECUTE
        'WITH c AS MATERIALIZED (SELECT a.id, a.embedding <=> $10 AS d FROM assets a '
        'WHERE ' || cond || ') SELECT id, 1 - d FROM c ORDER BY d, id LIMIT $9'
        USING model, tags, any_tags, meta, kinds, captured_after, captured_before,
              exclude_id, k::bigint, query;
END
$fn$
"""

_MODEL = "(SELECT value FROM assetdb_meta WHERE key = 'model')"

WRAPPERS = [
    ("assetdb_nearest", "query vector", "query", "NULL::bigint",
     "The k searchable assets nearest to a query vector (see assetdb embed-text), "
     "with the filters of assetdb search as optional named arguments."),
    ("assetdb_similar", "query_asset_id bigint",
     "(SELECT e.embedding FROM assets e WHERE e.id = query_asset_id AND e.status = 'ready' "
     f"AND e.embedding_model = {_MODEL})", "query_asset_id",
     "The k searchable assets most like an asset (the asset itself left out); empty if "
     "that asset has no vector of the database's model. Filters as in assetdb_nearest."),
    ("assetdb_concept_search", "concept_name text",
     "(SELECT c.vector FROM assetdb_concepts c WHERE c.name = concept_name "
     f"AND c.model = {_MODEL})", "NULL::bigint",
     "The k searchable assets that best match a concept (assetdb concept add); empty if "
     "the concept is unknown or was made by another model. Filters as in assetdb_nearest."),
]

OLD_SIGNATURES = ("assetdb_nearest(vector, integer)", "assetdb_similar(bigint, integer)",
                  "assetdb_concept_search(text, integer)")


def _wrapper_sql(name: str, arg: str, vector: str, exclude: str) -> str:
    return f"""
CREATE FUNCTION {name}({arg}, k integer DEFAULT 10, {_FILTER_ARGS})
RETURNS TABLE (asset_id bigint, similarity double precision)
LANGUAGE sql VOLATILE PARALLEL UNSAFE
AS $$ SELECT * FROM assetdb_search({vector}, k, {_FILTER_PASS}, {exclude}) $$
"""


def _dimension(conn) -> int:  # noqa: ANN001
    row = conn.execute(text("SELECT value FROM assetdb_meta WHERE key = 'dimension'")).first()
    if row is not None:
        return int(row[0])
    attrs = context.config.attributes
    raw = attrs.get("embedding_dim") or context.get_x_argument(as_dictionary=True).get("dim")
    return int(raw or 512)


def upgrade() -> None:
    conn = op.get_bind()
    dim = _dimension(conn)
    rows = conn.execute(text("SELECT count(*) FROM assets WHERE embedding IS NOT NULL")
                        ).scalar_one()
    plan = build_plan(rows, dim)
    op.execute(f"SET LOCAL maintenance_work_mem = '{int(plan.maintenance_work_mem_mb)}MB'")
    op.execute(f"SET LOCAL max_parallel_maintenance_workers = {int(plan.parallel_workers)}")
    # Vectors in the row (not out of line in TOAST): the exact plan reads each matching
    # row's vector from its heap page instead of a TOAST index lookup and a second page.
    # New and re-written rows only; `VACUUM FULL assets` moves existing ones (a rewrite).
    op.execute("ALTER TABLE assets ALTER COLUMN embedding SET STORAGE MAIN")
    op.execute(f"DROP INDEX IF EXISTS {EMBEDDING_INDEX}")
    op.execute(f"DROP INDEX IF EXISTS {SHADOW_INDEX}")
    op.execute(vector_index_sql(dim))
    for signature in OLD_SIGNATURES:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute(SEARCH)
    op.execute("COMMENT ON FUNCTION assetdb_search(vector, integer, " + _FILTER_TYPES
               + ", bigint) IS 'The k searchable assets nearest to a vector under the "
               "filters, by the plan rules of assetdb search (the other search functions "
               "call it).'")
    for name, arg, vector, exclude, comment in WRAPPERS:
        op.execute(_wrapper_sql(name, arg, vector, exclude))
        argtype = arg.split()[1]
        quoted = comment.replace("'", "''")
        op.execute(f"COMMENT ON FUNCTION {name}({argtype}, integer, {_FILTER_TYPES}) "
                   f"IS '{quoted}'")


def downgrade() -> None:
    raise NotImplementedError("migration 0006 is not reversible: restore from a backup")
