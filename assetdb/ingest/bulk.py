"""Bulk loads: a large ingest into a small catalogue drops the vector index first and
builds it once at the end.

Each row written to an indexed table is also inserted into its HNSW graph, one greedy
search per row; a build after loading sorts out the whole graph at once, in memory and
with parallel workers (assetdb.db.indexes.build_plan), several times faster. Searches
meanwhile stay right: without the index every search takes the exact plan (slower, never
wrong). An ingest that stops half-way rebuilds the index on its way out; if even that
is cut short, `assetdb init` (and the next bulk ingest) rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from assetdb.config import Settings
from assetdb.db import indexes
from assetdb.db.engine import autocommit_driver_connection


@dataclass
class BulkIndex:
    used: bool = False
    rows: int = 0
    build_seconds: float = 0.0
    note: str = ""


def wanted(settings: Settings, new_rows: int, existing_rows: int) -> bool:
    return new_rows >= settings.bulk_index_min_rows and new_rows >= existing_rows


def _connect(settings: Settings) -> Any:  # noqa: ANN401
    return autocommit_driver_connection(settings)


@contextmanager
def index_dropped(settings: Settings, dim: int,
                  say: Callable[[str], None] | None = None) -> Iterator[BulkIndex]:
    """Drop the vector index for the block, build it once when the block ends (also on an
    error or an interrupt: a catalogue is never left without its index by this)."""
    import time

    state = BulkIndex(used=True)
    with _connect(settings) as conn:
        conn.execute(indexes.drop_vector_index_sql())
    if say:
        say("bulk load: the vector index is dropped and will be built once after loading")
    try:
        yield state
    finally:
        with _connect(settings) as conn:
            rows = conn.execute("SELECT count(*) FROM assets WHERE embedding IS NOT NULL"
                                ).fetchone()[0]
            plan = indexes.build_plan(rows, dim)
            if say:
                say(f"building the vector index over {rows:,} rows "
                    f"(maintenance_work_mem {plan.maintenance_work_mem_mb:,} MB, "
                    f"{plan.parallel_workers} parallel worker(s))...")
                if plan.note:
                    say(plan.note)
            start = time.perf_counter()
            indexes.build_vector_index(conn, dim, rows=rows)
            state.rows, state.build_seconds = rows, round(time.perf_counter() - start, 1)
            state.note = plan.note
        if say:
            say(f"vector index built in {state.build_seconds:.1f} s")


