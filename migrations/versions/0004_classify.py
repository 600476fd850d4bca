"""zero-shot classification and moderation: per-asset results, label sets, policies

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # labels:     {FIELD: {label, probability, top3: [{label, probability}], classified_at}}
    # moderation: {RULE: {score, flagged, threshold, action, policy, scored_at}}
    op.execute("ALTER TABLE assets ADD COLUMN labels jsonb NOT NULL DEFAULT '{}'")
    op.execute("ALTER TABLE assets ADD COLUMN moderation jsonb NOT NULL DEFAULT '{}'")
    op.execute("CREATE INDEX assets_labels_gin ON assets USING gin (labels jsonb_path_ops)")
    op.execute(
        "CREATE INDEX assets_moderation_gin ON assets USING gin (moderation jsonb_path_ops)"
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
            -- {"rules": [{name, texts, counter_texts, threshold, action}]}, validated by
            -- assetdb.classify.policy before it is stored
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
    op.execute("ALTER TABLE assets DROP COLUMN moderation")
    op.execute("ALTER TABLE assets DROP COLUMN labels")
