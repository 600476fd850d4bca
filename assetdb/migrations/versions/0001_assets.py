"""assets table with a pgvector HNSW index; assetdb_meta

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import context, op

from assetdb.db.indexes import hnsw_index_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _dimension() -> int:
    # `assetdb init` passes the model's dimension; by hand: alembic upgrade head -x dim=512
    attrs = context.config.attributes
    raw = attrs.get("embedding_dim") or context.get_x_argument(as_dictionary=True).get("dim")
    dim = int(raw or 512)
    if not 1 <= dim <= 16000:
        raise ValueError(f"embedding dimension out of range: {dim}")
    return dim


def upgrade() -> None:
    dim = _dimension()
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        """
        CREATE TABLE assetdb_meta (
            key   text PRIMARY KEY,
            value text NOT NULL
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE assets (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            uri              text NOT NULL UNIQUE,
            sha256           text,
            kind             text,
            mime             text,
            width            integer,
            height           integer,
            bytes            bigint,
            title            text,
            description      text,
            tags             text[] NOT NULL DEFAULT '{{}}',
            metadata         jsonb NOT NULL DEFAULT '{{}}',
            captured_at      timestamptz,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            embedding        vector({dim}),
            embedding_model  text,
            embedded_at      timestamptz,
            status           text NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'ready', 'failed')),
            error            text,
            attempts         integer NOT NULL DEFAULT 0,
            lease_owner      text,
            lease_expires_at timestamptz,
            -- set by moderation policies with action 'hide'; searches leave these out
            hidden           boolean NOT NULL DEFAULT false
        )
        """
    )
    op.execute(hnsw_index_sql())  # assets_embedding_hnsw, m = 16, ef_construction = 64
    op.execute("CREATE INDEX assets_tags_gin ON assets USING gin (tags)")
    op.execute("CREATE INDEX assets_metadata_gin ON assets USING gin (metadata jsonb_path_ops)")
    for column in ("sha256", "kind", "status", "embedding_model", "captured_at", "created_at"):
        op.execute(f"CREATE INDEX assets_{column}_idx ON assets ({column})")


def downgrade() -> None:
    op.execute("DROP TABLE assets")
    op.execute("DROP TABLE assetdb_meta")
