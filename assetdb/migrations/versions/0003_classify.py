"""zero-shot classification and moderation: per-asset results, label sets, policies

Results live in their own table, not in columns of `assets`: every update of an assets
row writes a new row version, and with the HNSW index on `assets` that means one more
index insertion per asset (measured: classifying 5k assets, 76 assets/s instead of
thousands). Only `assets.hidden` is written on `assets`, and only where it changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # labels:     {FIELD: {label, probability, top3: [{label, probability}]}}
    # moderation: {RULE: {score, flagged, threshold, action, policy}}
    op.execute(
        """
        CREATE TABLE classifications (
            asset_id   bigint PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
            labels     jsonb NOT NULL DEFAULT '{}',
            moderation jsonb NOT NULL DEFAULT '{}',
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX classifications_labels_gin ON classifications "
        "USING gin (labels jsonb_path_ops)"
    )
    op.execute(
        "CREATE INDEX classifications_moderation_gin ON classifications "
        "USING gin (moderation jsonb_path_ops)"
    )
    op.execute(
        """
        CREATE TABLE label_sets (
            name       text PRIMARY KEY,
            field      text NOT NULL,
            labels     text[] NOT NULL CHECK (cardinality(labels) > 0),
            templates  text[] NOT NULL CHECK (cardinality(templates) > 0),
            enabled    boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE moderation_policies (
            name       text PRIMARY KEY,
            -- {"description", "rules": [{name, texts, counter_texts, threshold, action}]},
            -- validated by assetdb.classify.policy before it is stored
            policy     jsonb NOT NULL,
            enabled    boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE moderation_policies")
    op.execute("DROP TABLE label_sets")
    op.execute("DROP TABLE classifications")
