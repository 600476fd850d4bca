"""HNSW index size and build time as the catalogue grows, `vector` against `halfvec`
(docs/scaling.md's sizing table).

For each row count: the benchmark's clustered 512-d unit vectors (benchmarks.vector_search
generates them) are copied into a bare table as `vector(512)` and as `halfvec(512)`, and an
HNSW index with the product's parameters (m=16, ef_construction=64, cosine) is built on
each with maintenance_work_mem large enough to hold the graph and one parallel worker,
as the product's build does. Reported per row count and type: build seconds, index MB
and bytes per row, table MB.

A second, small probe measures what the build needs in memory: with a deliberately small
maintenance_work_mem, pgvector says after how many tuples the graph stopped fitting
("hnsw graph no longer fits into maintenance_work_mem after N tuples"), which gives the
in-memory graph's bytes per row; the sizing table extrapolates both linearly.

Run (the lead's 1M build is measured by benchmarks/vector_search.py; this one stays small):

    python -m benchmarks.index_sizing --rows 20000 100000 --out docs/results/index_sizing.json

Each row count's figures are saved as soon as they are measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from assetdb.db import embedded
from assetdb.db.indexes import hnsw_index_sql
from benchmarks._common import Timer, bench_database, machine, report
from benchmarks.vector_cases import DIM, clustered

TYPES = {"vector": "vector_cosine_ops", "halfvec": "halfvec_cosine_ops"}
_NO_LONGER_FITS = re.compile(r"no longer fits into maintenance_work_mem after (\d+) tuples")


def _load(conn: Any, table: str, typ: str, data: np.ndarray) -> None:  # noqa: ANN401
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (id bigint, embedding {typ}({DIM}))")
    with conn.cursor() as cur, cur.copy(
            f"COPY {table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "vector"])
        for i, vec in enumerate(data):
            copy.write_row([i, vec])
    conn.execute(f"VACUUM ANALYZE {table}")


def _mb(conn: Any, rel: str, what: str = "pg_relation_size") -> float:  # noqa: ANN401
    # pg_table_size for a table: a 2 KB vector lives out of line, in its TOAST table.
    size = conn.execute(f"SELECT {what}(%s::regclass)", [rel]).fetchone()[0]
    return size / 2**20


def build(url: str, rows: int) -> list[dict[str, Any]]:
    import psycopg
    from pgvector.psycopg import register_vector

    data, _ = clustered(rows, 1)
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        _load(conn, "sizing_vector", "vector", data)
        conn.execute("DROP TABLE IF EXISTS sizing_halfvec")
        conn.execute("CREATE TABLE sizing_halfvec AS SELECT id, "
                     f"embedding::halfvec({DIM}) AS embedding FROM sizing_vector")
        conn.execute("VACUUM ANALYZE sizing_halfvec")
        conn.execute("SET maintenance_work_mem = '3GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        for typ, opclass in TYPES.items():
            table = f"sizing_{typ}"
            with Timer() as t:
                conn.execute(hnsw_index_sql(f"{table}_hnsw", table=table, opclass=opclass))
            index_mb = _mb(conn, f"{table}_hnsw")
            out.append({"rows": rows, "type": f"{typ}({DIM})",
                        "build_s": round(t.seconds, 1), "index_mb": round(index_mb, 1),
                        "index_bytes_per_row": round(index_mb * 2**20 / rows),
                        "table_mb": round(_mb(conn, table, "pg_table_size"), 1)})
        conn.execute("DROP TABLE sizing_vector, sizing_halfvec")
    return out


def graph_memory(url: str, rows: int = 6000, mem_mb: int = 4) -> list[dict[str, Any]]:
    """Bytes per row of the graph while it is built in memory (pgvector's own count)."""
    import psycopg
    from pgvector.psycopg import register_vector

    data, _ = clustered(rows, 1, seed=3)
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        _load(conn, "probe_vector", "vector", data)
        conn.execute("CREATE TABLE probe_halfvec AS SELECT id, "
                     f"embedding::halfvec({DIM}) AS embedding FROM probe_vector")
        conn.execute(f"SET maintenance_work_mem = '{mem_mb}MB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")
        for typ, opclass in TYPES.items():
            notices.clear()
            conn.execute(hnsw_index_sql(f"probe_{typ}_hnsw", table=f"probe_{typ}",
                                        opclass=opclass))
            fits = [int(m[1]) for n in notices if (m := _NO_LONGER_FITS.search(n))]
            if fits:
                out.append({"type": f"{typ}({DIM})", "maintenance_work_mem_mb": mem_mb,
                            "tuples_that_fit": fits[0],
                            "graph_bytes_per_row": round(mem_mb * 2**20 / fits[0])})
        conn.execute("DROP TABLE probe_vector, probe_halfvec")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    info = machine()
    home = embedded.scratch_home("assetdb-sizing-")
    try:
        with bench_database(home, "sizing") as url:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                version = conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            result = {"machine": info, "pgvector": version,
                      "hnsw": {"m": 16, "ef_construction": 64},
                      "builds": [], "graph_memory": graph_memory(url)}
            for rows in args.rows:
                result["builds"] += build(url, rows)
                # Saved after each size: a run cut short on a loaded machine keeps its figures.
                info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
                if args.out:
                    _save(result, args.out)
    finally:
        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)
    report("HNSW size and build time", result,
           {"builds": result["builds"], "graph memory while building": result["graph_memory"]},
           args.out)


def _save(result: dict[str, Any], out: Path) -> None:
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
