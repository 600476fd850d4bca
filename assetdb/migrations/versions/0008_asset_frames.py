"""asset_frames (moments of videos and documents, with their own HNSW index) and
asset_media (probed facts and sampling notes)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from assetdb.db.indexes import FRAMES_INDEX, hnsw_index_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _vector_type() -> str:
    # The frames hold vectors of the catalogue's model: the same type as assets.embedding.
    found = op.get_bind().execute(text(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'assets'::regclass AND attname = 'embedding' AND NOT attisdropped"
    )).scalar()
    if not found or not found.startswith("vector("):
        raise RuntimeError(f"assets.embedding has an unexpected type: {found!r}")
    return found


def upgrade() -> None:
    # A side table: frames are written after the asset row, replaced on re-embed, and
    # searched through their own index; the assets row and its index entry stay as they are.
    op.execute(
        f"""
        CREATE TABLE asset_frames (
            asset_id        bigint NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
            position        integer NOT NULL,
            seconds         double precision,
            page            integer,
            embedding       {_vector_type()} NOT NULL,
            embedding_model text NOT NULL,
            PRIMARY KEY (asset_id, position)
        )
        """
    )
    op.execute(hnsw_index_sql(FRAMES_INDEX, table="asset_frames"))
    op.execute(
        """
        CREATE TABLE asset_media (
            asset_id   bigint PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
            facts      jsonb NOT NULL DEFAULT '{}',
            note       text,
            frames     integer NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE asset_media")
    op.execute("DROP TABLE asset_frames")
