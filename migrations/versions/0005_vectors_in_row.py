"""keep embeddings in the row (STORAGE MAIN) instead of out of line in TOAST

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # pgvector's types default to STORAGE EXTERNAL: a 512-d vector (2,052 bytes) pushes the
    # row over the 2 KB TOAST threshold, so every vector lived in the TOAST table and every
    # row an exact scan or an HNSW heap fetch reads cost a TOAST lookup (docs/performance.md:
    # exact plan over 10,000 rows 70 ms -> 24 ms in the row). MAIN keeps it in the row and,
    # unlike PLAIN, still moves it out of line when a row could not fit a page otherwise.
    # Applies to values written from now on; `VACUUM FULL assets` moves existing ones.
    op.execute("ALTER TABLE assets ALTER COLUMN embedding SET STORAGE MAIN")


def downgrade() -> None:
    op.execute("ALTER TABLE assets ALTER COLUMN embedding SET STORAGE EXTERNAL")
