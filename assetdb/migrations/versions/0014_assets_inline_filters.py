"""Keep a row's filter columns in the row: toast_tuple_target at its maximum

Migration 0006 stores the vector in the row (STORAGE MAIN) so that the exact plan does
not fetch it from TOAST. A 512-d vector alone is 2 KB, and PostgreSQL's toaster tries to
bring every row under toast_tuple_target (2 KB by default): it moved every other
compressible or external-able value out of line instead, so the tags array, the jsonb
metadata and the text columns of almost every row lived in the TOAST table, and each
filter test (`tags @> ...`, `metadata @> ...`) cost a TOAST index lookup and a page:
~3 us a row. That is what a page sample, the exact plan and every filtered index walk
(which tests the filter on each tuple it visits) paid. Measured on 100,000 rows of the
1M benchmark: `count(*) WHERE tags @> '{d10}'` 290 -> 55 ms, the jsonb filter
392 -> 66 ms, the same pages (3 rows each), no TOAST for tags and metadata.

At the maximum (8160 bytes on 8 KB pages) the toaster acts only on rows that would not
fit a page otherwise, and then moves the largest value first (a long description).

New and re-written rows only: `VACUUM FULL assets` moves existing ones (a rewrite of the
table and its indexes, under an exclusive lock: a maintenance window).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TOAST_TUPLE_TARGET_MAX = 8160  # PostgreSQL's upper bound for 8 KB pages


def upgrade() -> None:
    op.execute(f"ALTER TABLE assets SET (toast_tuple_target = {TOAST_TUPLE_TARGET_MAX})")


def downgrade() -> None:
    op.execute("ALTER TABLE assets RESET (toast_tuple_target)")
