"""Which plan answers a nearest-neighbour search, and how wide the index walk goes.

The rules, shared by the CLI, the API and the SQL functions (migration 0006 writes the
same rules in PL/pgSQL; tests/test_plan_rules.py holds them to the same answers):

1. Unfiltered: the index, nothing counted, unless the whole table is small enough to scan.
2. Filtered: the planner's estimate of the matching rows (EXPLAIN, no rows read).
   - estimate <= threshold / MARGIN: exact, nothing counted;
   - estimate >= threshold * MARGIN: the index, nothing counted;
   - in between, when the estimate is above the threshold: a sample of the table's pages
     (TABLESAMPLE SYSTEM, about SAMPLE_ROWS rows, REPEATABLE so a search always chooses
     alike, and its pages stay cached) estimates the matching rows without the planner's
     assumptions; at least threshold * SAMPLE_MARGIN there: the index, nothing counted;
   - otherwise: the exact plan over at most threshold + 1 matching rows, which counts
     them as it goes; when more than the threshold matched, the index answers instead.
3. The index walk: ef_search grows with k and with the table (a greedy descent into a
   million-row graph needs a wider beam than into 100,000 rows); the iterative scan may
   visit enough tuples to find the candidates at the estimated selectivity; it fetches
   a few more candidates than k and re-ranks them with the float32 vectors.
4. When the walk returns fewer than k candidates, the exact plan answers (query.nearest).

Why an estimate may be trusted this far: an estimate that is too low sends a search to the
exact plan, which is right whatever the filter (only slower); one that is too high sends a
selective filter to the index, where rule 4 catches it. The sample reads whole pages, so
rows stored together (one import) vary it more than rows spread out, but a filter that
matches fewer rows than the threshold shows on its pages about as often as anywhere: to
reach twice the threshold it would have to be sampled at twice its share.

The count the sample replaces cost most where the planner multiplies correlated
conditions (a tag with a date range): 134 ms at a million rows, against a few ms for
the sample (docs/performance.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, literal, select, tablesample, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.sql.util import ClauseAdapter

# Count only when the estimate lies within this factor of the threshold.
MARGIN = 4
EF_SEARCH_MAX = 1000  # pgvector's upper bound
# The table size up to which ASSETDB_HNSW_EF_SEARCH is used as given; beyond it the
# breadth grows with the square root of the size (measured: docs/performance.md).
EF_BASE_ROWS = 100_000
CANDIDATE_FACTOR = 2  # candidates fetched from the index per result, re-ranked exactly
MIN_CANDIDATES = 20
SCAN_TUPLES_MIN = 20_000  # pgvector's default hnsw.max_scan_tuples
SCAN_TUPLES_MAX = 200_000
SCAN_OVERSHOOT = 4  # visit this many times the tuples the estimated selectivity needs
# Rows a sample of the table's pages should hold. Few enough to stay under 1% of a large
# table: from 1% up PostgreSQL reads SYSTEM samples through a small ring of buffers, so
# every search would read its pages again (121 ms for a 2% sample of 1M rows, measured),
# while below it the pages stay cached (a repeatable sample reads the same ones). At 3,000
# a filter at the threshold shows about 30 rows in it, at twice the threshold about 60.
SAMPLE_ROWS = 3_000
SAMPLE_MARGIN = 2  # the sample must show this many times the threshold to skip the count


@dataclass(frozen=True)
class PlanRules:
    exact_max_rows: int = 10_000
    ef_search: int = 100


@dataclass
class Plan:
    exact: bool
    table_rows: int
    estimated_rows: int | None = None
    counted: int | None = None
    ef_search: int = 0
    max_scan_tuples: int = 0
    candidates: int = 0
    fallback: bool = False  # the walk came back short and the exact plan answered
    sampled: int | None = None  # matching rows, estimated from a sample of pages
    # The exact plan over at most threshold + 1 rows: it answers if no more matched
    # (then `counted` says how many), else the index does.
    capped: bool = False

    @property
    def name(self) -> str:
        return "exact" if self.exact else "index"

    def as_dict(self) -> dict[str, Any]:
        return {"plan": self.name, **asdict(self)}


def table_rows(conn: Connection) -> int:
    """The planner's row count of assets (pg_class.reltuples; -1 before any ANALYZE)."""
    n = conn.execute(text("SELECT reltuples::bigint FROM pg_class "
                          "WHERE oid = 'assets'::regclass")).scalar_one()
    if n < 0:  # never analysed: the estimate would be a guess, so ask the table
        n = conn.execute(text("SELECT count(*) FROM assets")).scalar_one()
    return int(n)


def ef_search_for(k: int, rows: int, base: int) -> int:
    scale = math.sqrt(max(1.0, rows / EF_BASE_ROWS))
    return int(min(EF_SEARCH_MAX, max(math.floor(base * scale), k)))


def candidates_for(k: int, ef: int) -> int:
    return int(max(k, min(ef, max(CANDIDATE_FACTOR * k, MIN_CANDIDATES))))


def scan_tuples_for(candidates: int, selectivity: float) -> int:
    need = SCAN_OVERSHOOT * candidates / max(selectivity, 1e-9)
    return int(min(SCAN_TUPLES_MAX, max(SCAN_TUPLES_MIN, need)))


class _ExplainJson(Executable, ClauseElement):
    """EXPLAIN (FORMAT JSON) of a statement, its parameters bound as in the statement
    (SQLAlchemy's documented recipe for compiling a construct of one's own)."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_ExplainJson)
def _compile_explain(element: _ExplainJson, compiler: Any, **kw: Any) -> str:  # noqa: ANN401
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def estimate_rows(conn: Connection, clauses: Sequence[ColumnElement[bool]]) -> int:
    """The planner's estimate of the rows that pass `clauses` (EXPLAIN, nothing runs)."""
    plan = conn.execute(_ExplainJson(select(literal(1)).where(*clauses))).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


def sample_pages_percent(rows: int) -> float:
    """The share of the table's pages (percent) that holds about SAMPLE_ROWS rows."""
    return min(100.0, 100.0 * SAMPLE_ROWS / max(rows, 1))


def sample_rows(conn: Connection, clauses: Sequence[ColumnElement[bool]], rows: int) -> int:
    """The rows that pass `clauses`, estimated from a fixed sample of the table's pages."""
    from assetdb.db.models import Asset

    percent = sample_pages_percent(rows)
    sample = tablesample(Asset.__table__, func.system(percent), name="sampled",
                         seed=literal(0))
    adapter = ClauseAdapter(sample)
    found = conn.execute(select(func.count()).select_from(sample).where(
        *[adapter.traverse(c) for c in clauses])).scalar_one()
    return int(round(found * 100.0 / percent))


def choose_plan(conn: Connection, clauses: Sequence[ColumnElement[bool]], k: int,
                rules: PlanRules, *, filtered: bool) -> Plan:
    n = table_rows(conn)
    threshold = rules.exact_max_rows
    plan = Plan(exact=False, table_rows=n)
    if n <= threshold:
        plan.exact = True  # the whole table is small: scanning it is exact and cheap
        return plan
    matching = n
    if filtered:
        est = estimate_rows(conn, clauses)
        plan.estimated_rows = matching = est
        if est * MARGIN <= threshold:
            plan.exact = True
            return plan
        if est < threshold * MARGIN:
            if est > threshold:
                plan.sampled = sample_rows(conn, clauses, n)
            if plan.sampled is not None and plan.sampled >= threshold * SAMPLE_MARGIN:
                matching = plan.sampled
            else:
                plan.capped = True  # the caller scans; index_walk() if it overflows
                return plan
    return index_walk(plan, k, matching, rules)


def index_walk(plan: Plan, k: int, matching: int, rules: PlanRules) -> Plan:
    """The walk's breadth, candidates and scan limit for `matching` rows of the table."""
    plan.exact = False
    plan.ef_search = ef_search_for(k, plan.table_rows, rules.ef_search)
    plan.candidates = candidates_for(k, plan.ef_search)
    plan.max_scan_tuples = scan_tuples_for(plan.candidates,
                                           matching / max(plan.table_rows, 1))
    return plan
