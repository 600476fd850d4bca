"""Search plans: a sample of pages instead of a count, and the exact plan that counts

Migration 0006's `assetdb_search` counted the matching rows (up to the threshold + 1)
whenever the planner's estimate lay within MARGIN of ASSETDB_EXACT_SEARCH_MAX_ROWS. At a
million rows that count cost 134 ms for a tag combined with a date range (the planner
multiplies the two, so its estimate was 5x too low and in the band; the count then built
two bitmaps of 100,000 and 168,000 rows), and 20 ms before the exact plan scanned the same
rows again for a 1% tag. The rules now (assetdb.search.plan, the same in Python):

- in the band with an estimate above the threshold, a REPEATABLE sample of the table's
  pages (TABLESAMPLE SYSTEM, about SAMPLE_ROWS rows) estimates the matching rows without
  the planner's assumptions; at least SAMPLE_MARGIN x the threshold: the index, and the
  sample's figure sets the walk's scan limit;
- otherwise the exact plan runs over at most threshold + 1 matching rows and counts them
  as it goes; it answers when no more than the threshold matched, else the index does.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

import importlib

from alembic import op

from assetdb.search.plan import MARGIN, SAMPLE_MARGIN, SAMPLE_ROWS

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ARGS = "model, tags, any_tags, meta, kinds, captured_after, captured_before, exclude_id"

_OLD_BAND = f"""        ELSIF est < threshold * {MARGIN} THEN
            EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM assets a WHERE ' || cond
                    || ' LIMIT $9) c' INTO counted
                USING model, tags, any_tags, meta, kinds, captured_after, captured_before,
                      exclude_id, threshold + 1;
            exact := counted <= threshold;
        END IF;
    END IF;

    IF NOT exact THEN
        matching := CASE WHEN filtered THEN greatest(est, coalesce(counted, 0)) ELSE n END;"""

_NEW_BAND = f"""        ELSIF est < threshold * {MARGIN} THEN
            IF est > threshold THEN
                -- A fixed sample of pages: the matching rows without the planner's
                -- independence assumptions.
                pct := least(100.0, 100.0 * {SAMPLE_ROWS} / greatest(n, 1));
                EXECUTE 'SELECT count(*) FROM assets a TABLESAMPLE SYSTEM ($9::real) '
                        'REPEATABLE (0) WHERE ' || cond INTO sampled
                    USING {_ARGS}, pct;
                sampled := round(sampled * 100.0 / pct);
            END IF;
            IF sampled IS NULL OR sampled < threshold * {SAMPLE_MARGIN} THEN
                -- The exact plan over at most threshold + 1 rows, counting them.
                EXECUTE 'WITH c AS MATERIALIZED (SELECT a.id, a.embedding <=> $10 AS d '
                        'FROM assets a WHERE ' || cond || ' LIMIT $9), '
                        't AS (SELECT id, d FROM c ORDER BY d, id LIMIT $11) '
                        'SELECT (SELECT count(*) FROM c), array_agg(t.id ORDER BY t.d, t.id), '
                        'array_agg(t.d ORDER BY t.d, t.id) FROM t'
                    INTO counted, ids, dists
                    USING {_ARGS}, threshold + 1, query, k;
                IF counted <= threshold THEN
                    RETURN QUERY SELECT u.id, 1 - u.d FROM unnest(ids, dists)
                        WITH ORDINALITY AS u(id, d, i) ORDER BY u.i;
                    RETURN;
                END IF;
            END IF;
        END IF;
    END IF;

    IF NOT exact THEN
        matching := CASE WHEN NOT filtered THEN n
                         WHEN sampled >= threshold * {SAMPLE_MARGIN} THEN sampled
                         ELSE greatest(est, coalesce(counted, 0)) END;"""

_OLD_DECLARE = "    counted bigint;\n"
_NEW_DECLARE = "    counted bigint;\n    sampled bigint;\n    pct double precision;\n"


def _previous():  # noqa: ANN202
    return importlib.import_module("assetdb.migrations.versions.0006_search_plans")


def search_sql() -> str:
    """0006's function with the new band: every other line of it stays as it was."""
    old = _previous().SEARCH
    for before in (_OLD_BAND, _OLD_DECLARE):
        if old.count(before) != 1:
            raise RuntimeError("migration 0006's assetdb_search is not the expected text")
    return (old.replace(_OLD_BAND, _NEW_BAND).replace(_OLD_DECLARE, _NEW_DECLARE)
            .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))


def upgrade() -> None:
    op.execute(search_sql())


def downgrade() -> None:
    op.execute(_previous().SEARCH.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
