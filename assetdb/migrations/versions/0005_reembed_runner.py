"""who runs a re-embed job, and its heartbeat; leases found by owner

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The process running an unfinished job (NULL pid: nobody, it was interrupted) and its
    # last heartbeat: `assetdb status` tells a live run from a killed one, and a second
    # `assetdb reembed` does not join a job that another process is running.
    op.execute(
        "ALTER TABLE assetdb_reembed_jobs ADD COLUMN hostname text, "
        "ADD COLUMN pid integer, ADD COLUMN last_seen timestamptz"
    )
    # Heartbeats renew a process's leases every few seconds (WHERE lease_owner = ...):
    # an index of the few leased rows, not a scan of the table.
    op.execute(
        "CREATE INDEX assets_lease_owner_idx ON assets (lease_owner) "
        "WHERE lease_owner IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX assets_lease_owner_idx")
    op.execute(
        "ALTER TABLE assetdb_reembed_jobs DROP COLUMN hostname, DROP COLUMN pid, "
        "DROP COLUMN last_seen"
    )
