"""worker registry and re-embed jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per worker process: what `assetdb status` shows as workers. Leases themselves
    # live on the assets rows (lease_owner = assetdb_workers.id).
    op.execute(
        """
        CREATE TABLE assetdb_workers (
            id         text PRIMARY KEY,
            hostname   text NOT NULL,
            pid        integer NOT NULL,
            model      text,
            state      text NOT NULL DEFAULT 'running'
                       CHECK (state IN ('running', 'stopped')),
            started_at timestamptz NOT NULL DEFAULT now(),
            last_seen  timestamptz NOT NULL DEFAULT now(),
            embedded   bigint NOT NULL DEFAULT 0,
            failed     bigint NOT NULL DEFAULT 0
        )
        """
    )
    # Re-embed runs. A model switch fills shadow columns (embedding_next, added by
    # `assetdb reembed` with the new model's dimension) and swaps them in at the end.
    op.execute(
        """
        CREATE TABLE assetdb_reembed_jobs (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            target_model text NOT NULL,
            dimension    integer NOT NULL,
            switch       boolean NOT NULL,
            filters      jsonb NOT NULL DEFAULT '{}',
            state        text NOT NULL DEFAULT 'running'
                         CHECK (state IN ('running', 'done', 'aborted')),
            total        bigint NOT NULL DEFAULT 0,
            done         bigint NOT NULL DEFAULT 0,
            failed       bigint NOT NULL DEFAULT 0,
            started_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            finished_at  timestamptz
        )
        """
    )
    # At most one unfinished job at a time.
    op.execute(
        "CREATE UNIQUE INDEX assetdb_reembed_jobs_one_running "
        "ON assetdb_reembed_jobs ((true)) WHERE state = 'running'"
    )
    # Claims look for pending rows whose lease is free or expired.
    op.execute(
        "CREATE INDEX assets_pending_lease_idx ON assets (lease_expires_at, id) "
        "WHERE status = 'pending'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX assets_pending_lease_idx")
    op.execute("DROP TABLE assetdb_reembed_jobs")
    op.execute("DROP TABLE assetdb_workers")
