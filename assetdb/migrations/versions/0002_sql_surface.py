"""SQL surface for analysts: named concepts and similarity functions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

The functions are LANGUAGE sql with their body as a string (not BEGIN ATOMIC): the
body is parsed at call time, so a model switch that rebuilds the `embedding` column
does not break them, and they hold no dependency on its columns. They follow the
product's search rules: only status 'ready', vectors of the database's model (from
assetdb_meta), not hidden. They are not inlined (they carry SET clauses), so each call
plans its own `ORDER BY embedding <=> q LIMIT k`, which the HNSW index serves; the
iterative scan keeps walking the graph until k rows pass those rules, and the outer
ORDER BY re-sorts the (relaxed-order) candidates exactly.
"""

from __future__ import annotations

from alembic import op

from assetdb.db.indexes import DEFAULT_EF_SEARCH

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Shared by every search function: the k nearest searchable assets to the vector
# expression Q, excluding the id expression X (NULL excludes nothing).
_NEAREST = """
    SELECT n.asset_id, 1 - n.distance AS similarity
    FROM (
        SELECT a.id AS asset_id, a.embedding <=> {q} AS distance
        FROM assets a
        WHERE a.status = 'ready'
          AND NOT a.hidden
          AND a.embedding_model = (SELECT value FROM assetdb_meta WHERE key = 'model')
          AND a.id IS DISTINCT FROM {x}
          AND {q} IS NOT NULL
        ORDER BY distance
        LIMIT {k}
    ) n
    ORDER BY n.distance, n.asset_id
"""

# Search settings for every call; relaxed_order lets the scan go on past filtered-out
# rows, and ef_search starts at the application's default breadth (`assetdb init` then
# sets ASSETDB_HNSW_EF_SEARCH's value: assetdb.db.schema.record_ef_search).
_SETTINGS = f"""
    SET hnsw.iterative_scan = relaxed_order
    SET hnsw.ef_search = {DEFAULT_EF_SEARCH}
"""

_FUNCTIONS = [
    (
        "assetdb_model()",
        """
        CREATE FUNCTION assetdb_model() RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT value FROM assetdb_meta WHERE key = 'model' $$
        """,
        "The model the database's vectors must come from (searches use only these).",
    ),
    (
        "assetdb_concept_vector(text)",
        """
        CREATE FUNCTION assetdb_concept_vector(concept_name text) RETURNS vector
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT c.vector FROM assetdb_concepts c
            WHERE c.name = concept_name
              AND c.model = (SELECT value FROM assetdb_meta WHERE key = 'model')
        $$
        """,
        "The stored vector of a concept; NULL if unknown or made by another model.",
    ),
    (
        "assetdb_nearest(vector, integer)",
        f"""
        CREATE FUNCTION assetdb_nearest(query vector, k integer DEFAULT 10)
        RETURNS TABLE (asset_id bigint, similarity double precision)
        LANGUAGE sql STABLE PARALLEL SAFE
        {_SETTINGS}
        AS $$ {_NEAREST.format(q="query", x="NULL::bigint", k="k")} $$
        """,
        "The k searchable assets nearest to a query vector (see assetdb embed-text).",
    ),
    (
        "assetdb_similar(bigint, integer)",
        f"""
        CREATE FUNCTION assetdb_similar(query_asset_id bigint, k integer DEFAULT 10)
        RETURNS TABLE (asset_id bigint, similarity double precision)
        LANGUAGE sql STABLE PARALLEL SAFE
        {_SETTINGS}
        AS $$ {_NEAREST.format(
            q="(SELECT e.embedding FROM assets e WHERE e.id = query_asset_id "
              "AND e.status = 'ready' AND e.embedding_model = "
              "(SELECT value FROM assetdb_meta WHERE key = 'model'))",
            x="query_asset_id", k="k")} $$
        """,
        "The k searchable assets most like an asset (the asset itself left out); "
        "empty if that asset has no vector of the database's model.",
    ),
    (
        "assetdb_concept_search(text, integer)",
        f"""
        CREATE FUNCTION assetdb_concept_search(concept_name text, k integer DEFAULT 10)
        RETURNS TABLE (asset_id bigint, similarity double precision)
        LANGUAGE sql STABLE PARALLEL SAFE
        {_SETTINGS}
        AS $$ {_NEAREST.format(
            q="(SELECT c.vector FROM assetdb_concepts c WHERE c.name = concept_name "
              "AND c.model = (SELECT value FROM assetdb_meta WHERE key = 'model'))",
            x="NULL::bigint", k="k")} $$
        """,
        "The k searchable assets that best match a concept (assetdb concept add); "
        "empty if the concept is unknown or was made by another model.",
    ),
]


def upgrade() -> None:
    # Undimensioned vector: a model switch to another dimension rewrites the rows in
    # place; a handful of rows need no index.
    op.execute(
        """
        CREATE TABLE assetdb_concepts (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name        text NOT NULL UNIQUE CHECK (name <> ''),
            text        text NOT NULL CHECK (text <> ''),
            templates   text[] NOT NULL DEFAULT '{}',
            vector      vector NOT NULL,
            model       text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE assetdb_concepts IS "
        "'Named text queries stored as vectors (assetdb concept add); model made the vector.'"
    )
    for signature, ddl, comment in _FUNCTIONS:
        op.execute(ddl)
        quoted = comment.replace("'", "''")
        op.execute(f"COMMENT ON FUNCTION {signature} IS '{quoted}'")


def downgrade() -> None:
    for signature, _ddl, _comment in reversed(_FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.execute("DROP TABLE assetdb_concepts")
