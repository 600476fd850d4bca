"""The vector index: its name and build parameters, and the one statement that builds it.

Since migration 0006 the index is HNSW over a half-precision copy of each vector, an
expression index on `embedding::halfvec(D)`: half the size of a `vector` index, so a
million 512-d rows fit in memory while it is built (the build slows down by an order of
magnitude when the graph outgrows maintenance_work_mem) and its pages stay cached while
it is searched. Searches walk it for candidates and re-rank them exactly with the stored
float32 vectors (assetdb.search.query), so no result is ordered by the half precision.

Migration 0006 creates it, a re-embed builds its shadow beside the new column, bulk loads
and the benchmarks rebuild it: all render the statement here, so they cannot drift apart.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

EMBEDDING_INDEX = "assets_embedding_hnsw"
MODEL_INDEX = "assets_embedding_model_idx"  # btree on embedding_model (searches filter on it)
FRAMES_INDEX = "asset_frames_embedding_hnsw"  # the moments of videos and documents
OPCLASS = "vector_cosine_ops"  # the product's distance is cosine (`<=>`); migration 0001's
HALF_OPCLASS = "halfvec_cosine_ops"  # the index since migration 0006
HALFVEC_MAX_DIM = 4000  # pgvector's limit for an HNSW index on halfvec
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# The search breadth when ASSETDB_HNSW_EF_SEARCH is unset. `assetdb init` records the
# setting in assetdb_meta under EF_SEARCH_META_KEY and hands it to SEARCH_FUNCTIONS.
DEFAULT_EF_SEARCH = 100
EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
EF_SEARCH_META_KEY = "hnsw_ef_search"
# The SQL function (migration 0006) that walks the index with that breadth; the other
# search functions call it. init also records ASSETDB_EXACT_SEARCH_MAX_ROWS, which it reads.
SEARCH_FUNCTIONS = (
    "assetdb_search(vector, integer, text[], text[], jsonb, text[], timestamptz, "
    "timestamptz, boolean, bigint)",
)
EXACT_MAX_ROWS_META_KEY = "exact_search_max_rows"

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def hnsw_index_sql(
    name: str = EMBEDDING_INDEX, *, table: str = "assets", column: str = "embedding",
    opclass: str = OPCLASS, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION,
    concurrently: bool = False,
) -> str:
    """CREATE INDEX for an HNSW index. Identifiers come from code, never from users; they
    are checked anyway, since DDL cannot take bind parameters."""
    for ident in (name, table, column, opclass):
        if not _IDENTIFIER.match(ident):
            raise ValueError(f"not a plain SQL identifier: {ident!r}")
    how = "CONCURRENTLY " if concurrently else ""
    return (f"CREATE INDEX {how}{name} ON {table} USING hnsw ({column} {opclass}) "
            f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})")


def half_expression(column: str, dim: int) -> str:
    """The indexed expression; queries must spell it exactly so for the planner to use it."""
    if not _IDENTIFIER.match(column):
        raise ValueError(f"not a plain SQL identifier: {column!r}")
    return f"({column}::halfvec({_check_dim(dim)}))"


def _check_dim(dim: int) -> int:
    dim = int(dim)
    if not 1 <= dim <= HALFVEC_MAX_DIM:
        raise ValueError(f"an HNSW index on halfvec takes 1 to {HALFVEC_MAX_DIM} dimensions, "
                         f"not {dim}")
    return dim


def vector_index_sql(dim: int, name: str = EMBEDDING_INDEX, *, table: str = "assets",
                     column: str = "embedding", m: int = HNSW_M,
                     ef_construction: int = HNSW_EF_CONSTRUCTION,
                     concurrently: bool = False) -> str:
    """CREATE INDEX for the product's vector index: HNSW on the halfvec expression."""
    for ident in (name, table):
        if not _IDENTIFIER.match(ident):
            raise ValueError(f"not a plain SQL identifier: {ident!r}")
    how = "CONCURRENTLY " if concurrently else ""
    return (f"CREATE INDEX {how}{name} ON {table} USING hnsw "
            f"({half_expression(column, dim)} {HALF_OPCLASS}) "
            f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})")


def drop_vector_index_sql(name: str = EMBEDDING_INDEX) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f"DROP INDEX IF EXISTS {name}"


# --- building it fast ---------------------------------------------------------------------

# Bytes per row of pgvector's in-memory HNSW graph besides the vector itself: layer-0
# neighbour list (2m candidates), upper layers, element header. Measured: see
# docs/performance.md ("Builds"); kept generous, since a graph that does not fit costs
# far more than memory left unused.
_GRAPH_BYTES_PER_NEIGHBOUR = 16
_GRAPH_OVERHEAD_PER_ROW = 160


def graph_bytes(rows: int, dim: int, m: int = HNSW_M) -> int:
    """The memory pgvector needs to build the graph of `rows` halfvec(dim) rows at once."""
    value = 8 + 2 * dim
    neighbours = (2 * m + m // 2) * _GRAPH_BYTES_PER_NEIGHBOUR
    return int(rows * (value + neighbours + _GRAPH_OVERHEAD_PER_ROW) * 1.1)


def memory_bytes() -> int | None:
    """This machine's memory (the database's, when it runs here: the embedded server)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return None


@dataclass
class BuildPlan:
    rows: int
    graph_mb: int
    maintenance_work_mem_mb: int
    parallel_workers: int
    fits: bool
    note: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def build_plan(rows: int, dim: int, *, memory: int | None = None, cpus: int | None = None,
               max_fraction: float = 0.5) -> BuildPlan:
    """maintenance_work_mem sized for the whole graph (never more than max_fraction of the
    memory), and a parallel worker per core beyond the leader's."""
    need = graph_bytes(rows, dim)
    memory = memory_bytes() if memory is None else memory
    cap = int(memory * max_fraction) if memory else need
    mem = max(64 * 2**20, min(need, cap))
    fits = need <= mem
    workers = max(0, min(8, (cpus or os.cpu_count() or 1) - 1))
    note = "" if fits else (
        f"the HNSW graph of {rows:,} rows needs about {need // 2**20:,} MB but at most "
        f"{mem // 2**20:,} MB ({max_fraction:.0%} of memory) is given to the build: it will "
        "spill to disk and take several times longer. Build it on a machine with more "
        "memory.")
    return BuildPlan(rows, need // 2**20, mem // 2**20, workers, fits, note)


def apply_build_settings(conn: Any, plan: BuildPlan) -> None:  # noqa: ANN401 - DB-API or SA
    """SET the build's memory and workers for this session (values are ints from code)."""
    _exec(conn, f"SET maintenance_work_mem = '{int(plan.maintenance_work_mem_mb)}MB'")
    _exec(conn, f"SET max_parallel_maintenance_workers = {int(plan.parallel_workers)}")


def _exec(conn: Any, sql: str) -> None:  # noqa: ANN401
    if hasattr(conn, "exec_driver_sql"):
        conn.exec_driver_sql(sql)
    else:
        conn.execute(sql)


def build_vector_index(conn: Any, dim: int | None = None, *,  # noqa: ANN401
                       name: str = EMBEDDING_INDEX, column: str = "embedding",
                       rows: int | None = None,
                       ef_construction: int = HNSW_EF_CONSTRUCTION) -> dict[str, Any]:
    """Drop and build the vector index in one go on a psycopg connection in autocommit
    (a bulk load builds it once, after loading). Returns the build plan it used."""
    if dim is None:
        dim = int(conn.execute("SELECT value FROM assetdb_meta WHERE key = 'dimension'")
                  .fetchone()[0])
    if rows is None:
        rows = int(conn.execute("SELECT count(*) FROM assets WHERE embedding IS NOT NULL")
                   .fetchone()[0])
    plan = build_plan(rows, dim)
    apply_build_settings(conn, plan)
    conn.execute(drop_vector_index_sql(name))
    conn.execute(vector_index_sql(dim, name, column=column, ef_construction=ef_construction))
    conn.execute("RESET maintenance_work_mem")
    conn.execute("RESET max_parallel_maintenance_workers")
    return {**plan.as_dict(), "ef_construction": int(ef_construction)}


def index_exists(conn: Any, name: str = EMBEDDING_INDEX) -> bool:  # noqa: ANN401
    row = conn.execute(f"SELECT to_regclass('{name}') IS NOT NULL" if _IDENTIFIER.match(name)
                       else "SELECT false").fetchone()
    return bool(row[0])


def ensure_vector_index(conn: Any, dim: int) -> bool:  # noqa: ANN401 - psycopg, autocommit
    """Build the vector index if it is missing (a bulk load cut short). True if built."""
    if index_exists(conn):
        return False
    build_vector_index(conn, dim)
    return True
