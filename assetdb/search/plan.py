"""Which plan answers a nearest-neighbour search, and how wide the index walk goes.

The rules, shared by the CLI, the API and the SQL functions (migration 0006 writes the
same rules in PL/pgSQL; tests/test_plan_rules.py holds them to the same answers):

1. Unfiltered: the index, nothing counted, unless the whole table is small enough to scan.
2. Filtered: the planner's estimate of the matching rows (EXPLAIN, no rows read).
   - estimate <= threshold / MARGIN: exact, nothing counted;
   - estimate >= threshold * MARGIN: the index, nothing counted;
   - in between: count, stopping at threshold + 1, and decide on the count.
3. The index walk: ef_search grows with k and with the table (a greedy descent into a
   million-row graph needs a wider beam than into 100,000 rows); the iterative scan may
   visit enough tuples to find the candidates at the estimated selectivity; it fetches
   a few more candidates than k and re-ranks them with the float32 vectors.
4. When the walk returns fewer than k candidates, the exact plan answers (query.nearest).

Why an estimate may be trusted this far: an estimate that is too low sends a search to the
exact plan, which is right whatever the filter (only slower); one that is too high sends a
selective filter to the index, where rule 4 catches it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, literal, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

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


def count_capped(conn: Connection, clauses: Sequence[ColumnElement[bool]], cap: int) -> int:
    """How many rows match, counting no further than cap + 1."""
    inner = select(literal(1)).where(*clauses).limit(cap + 1).subquery()
    return conn.execute(select(func.count()).select_from(inner)).scalar_one()


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


def choose_plan(conn: Connection, clauses: Sequence[ColumnElement[bool]], k: int,
                rules: PlanRules, *, filtered: bool) -> Plan:
    n = table_rows(conn)
    threshold = rules.exact_max_rows
    plan = Plan(exact=False, table_rows=n)
    if n <= threshold:
        plan.exact = True  # the whole table is small: scanning it is exact and cheap
        return plan
    if filtered:
        est = estimate_rows(conn, clauses)
        plan.estimated_rows = est
        if est * MARGIN <= threshold:
            plan.exact = True
        elif est < threshold * MARGIN:
            plan.counted = count_capped(conn, clauses, threshold)
            plan.exact = plan.counted <= threshold
        if plan.exact:
            return plan
        matching = plan.counted if plan.counted is not None and plan.counted > est else est
    else:
        matching = n
    plan.ef_search = ef_search_for(k, n, rules.ef_search)
    plan.candidates = candidates_for(k, plan.ef_search)
    plan.max_scan_tuples = scan_tuples_for(plan.candidates, matching / max(n, 1))
    return plan
