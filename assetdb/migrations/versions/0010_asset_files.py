"""asset_files: the file status (device, inode, size, mtime, ctime) each content was read at

Revision ID: 0010
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A re-scan trusts a file whose status is the one recorded here with the content
    # (sha256) its row still holds, and does not read it. A side table, written only when
    # the status changes: an UPDATE of an `assets` row would also insert into its HNSW
    # and GIN indexes. Device and inode are stored as signed 64-bit (the bits of the
    # unsigned values); times in nanoseconds.
    op.execute(
        """
        CREATE TABLE asset_files (
            asset_id  bigint PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
            sha256    text,
            device    bigint NOT NULL,
            inode     bigint NOT NULL,
            size      bigint NOT NULL,
            mtime_ns  bigint NOT NULL,
            ctime_ns  bigint NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE asset_files")
