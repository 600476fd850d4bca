"""near-duplicates: perceptual hashes, candidate pairs, groups, hides and keepers

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

Everything lives in side tables keyed by asset id (deleted with the asset): none of it
rewrites an `assets` row, whose every UPDATE also inserts into its HNSW index. The one
exception is `--hide`, which sets `assets.hidden` (the flag every search, SQL function and
file route already honours, as moderation does) for the hidden assets only, once.

- asset_hashes: 64-bit pHash and dHash of an asset's content (sha256 says which content),
  computed from the decode ingest does anyway. The pHash's four 16-bit bands are indexed:
  two hashes within 3 bits share at least one band exactly (pigeonhole), which finds
  candidates that the vector neighbours may miss (multi-index hashing).
- duplicate_neighbours / duplicate_scanned: each asset's vector neighbours, found once
  (HNSW, in chunks) and kept, so a `duplicates` run that stops resumes where it stopped.
- duplicate_groups: the groups of the last `duplicates` run (assetdb_duplicates()).
- asset_duplicate_of: what ingest found: a new asset near-duplicating an older one.
- duplicate_hides / duplicate_keepers: `--hide` (reversible) and keepers users marked.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ASSET = "bigint NOT NULL REFERENCES assets(id) ON DELETE CASCADE"

_TABLES = [
    ("asset_hashes", f"""
        asset_id  {_ASSET} PRIMARY KEY,
        sha256    text NOT NULL,
        phash     bigint NOT NULL,
        dhash     bigint NOT NULL,
        band0     integer GENERATED ALWAYS AS (((phash >> 48) & 65535)::integer) STORED,
        band1     integer GENERATED ALWAYS AS (((phash >> 32) & 65535)::integer) STORED,
        band2     integer GENERATED ALWAYS AS (((phash >> 16) & 65535)::integer) STORED,
        band3     integer GENERATED ALWAYS AS ((phash & 65535)::integer) STORED,
        hashed_at timestamptz NOT NULL DEFAULT now()
    """),
    ("duplicate_scanned", f"""
        asset_id    {_ASSET} PRIMARY KEY,
        embedded_at timestamptz,
        scanned_at  timestamptz NOT NULL DEFAULT now()
    """),
    ("duplicate_neighbours", f"""
        low     {_ASSET},
        high    {_ASSET},
        cosine  real NOT NULL,
        PRIMARY KEY (low, high),
        CHECK (low < high)
    """),
    ("duplicate_groups", f"""
        asset_id   {_ASSET} PRIMARY KEY,
        keeper_id  {_ASSET},
        similarity real NOT NULL,
        distance   smallint,
        rule       text NOT NULL,
        threshold  real NOT NULL,
        found_at   timestamptz NOT NULL DEFAULT now()
    """),
    ("asset_duplicate_of", f"""
        asset_id     {_ASSET} PRIMARY KEY,
        duplicate_of {_ASSET},
        similarity   real NOT NULL,
        found_at     timestamptz NOT NULL DEFAULT now()
    """),
    ("duplicate_hides", f"""
        asset_id  {_ASSET} PRIMARY KEY,
        keeper_id bigint REFERENCES assets(id) ON DELETE SET NULL,
        hidden_at timestamptz NOT NULL DEFAULT now()
    """),
    ("duplicate_keepers", f"""
        asset_id  {_ASSET} PRIMARY KEY,
        marked_at timestamptz NOT NULL DEFAULT now()
    """),
]

_FUNCTIONS = [
    (
        "assetdb_duplicates()",
        """
        CREATE FUNCTION assetdb_duplicates()
        RETURNS TABLE (group_id bigint, asset_id bigint, is_keeper boolean,
                       similarity double precision, distance integer, hidden boolean)
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT g.keeper_id, g.asset_id, g.asset_id = g.keeper_id,
                   g.similarity::double precision, g.distance::integer, a.hidden
            FROM duplicate_groups g JOIN assets a ON a.id = g.asset_id
            ORDER BY g.keeper_id, g.asset_id = g.keeper_id DESC, g.similarity DESC, g.asset_id
        $$
        """,
        "The near-duplicate groups the last `assetdb duplicates` run found: group_id is "
        "the keeper's id; similarity to the keeper (1 - distance/128 for hashes).",
    ),
    (
        "assetdb_near_duplicates(bigint, integer)",
        """
        CREATE FUNCTION assetdb_near_duplicates(query_asset_id bigint,
                                                max_distance integer DEFAULT 25)
        RETURNS TABLE (asset_id bigint, distance integer, similarity double precision)
        LANGUAGE sql STABLE PARALLEL SAFE
        AS $$
            SELECT o.asset_id, d.distance, 1 - d.distance / 128.0
            FROM asset_hashes q
            JOIN asset_hashes o ON o.asset_id <> q.asset_id
            CROSS JOIN LATERAL (
                SELECT (bit_count(CAST(o.phash # q.phash AS bit(64)))
                        + bit_count(CAST(o.dhash # q.dhash AS bit(64))))::integer AS distance
            ) d
            WHERE q.asset_id = query_asset_id AND d.distance <= max_distance
            ORDER BY d.distance, o.asset_id
        $$
        """,
        "Assets whose perceptual hashes lie within max_distance bits (pHash + dHash, "
        "0..128; 25 is the default threshold 0.8) of an asset's (an exact scan).",
    ),
]


def upgrade() -> None:
    for name, columns in _TABLES:
        op.execute(f"CREATE TABLE {name} ({columns})")
    for band in range(4):
        op.execute(f"CREATE INDEX asset_hashes_band{band}_idx ON asset_hashes (band{band})")
    # Reverse look-ups (ON DELETE CASCADE of the other end, keeper -> members).
    op.execute("CREATE INDEX duplicate_neighbours_high_idx ON duplicate_neighbours (high)")
    op.execute("CREATE INDEX duplicate_groups_keeper_idx ON duplicate_groups (keeper_id)")
    op.execute("CREATE INDEX asset_duplicate_of_idx ON asset_duplicate_of (duplicate_of)")
    for signature, ddl, comment in _FUNCTIONS:
        op.execute(ddl)
        quoted = comment.replace("'", "''")
        op.execute(f"COMMENT ON FUNCTION {signature} IS '{quoted}'")


def downgrade() -> None:
    for signature, _ddl, _comment in reversed(_FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    for name, _columns in reversed(_TABLES):
        op.execute(f"DROP TABLE {name}")
