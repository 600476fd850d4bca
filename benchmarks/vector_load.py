"""Loading the benchmark's rows into the product's `assets` table (COPY, then the index)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks._common import Timer
from benchmarks.vector_cases import LATE_TAG, Dataset, brand_name, captured_at

MODEL = "synthetic-clustered-512"


def copy_rows(url: str, data: Dataset) -> dict[str, float]:
    """COPY the rows (vector index dropped first: it is built once, after loading, as a
    bulk ingest does), ANALYZE, then tag the `late` rows, which the statistics miss."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    from assetdb.db.indexes import drop_vector_index_sql

    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(drop_vector_index_sql())
        conn.execute("ALTER TABLE assets SET (autovacuum_enabled = off)")
        with Timer() as t_copy, conn.cursor() as cur:
            with cur.copy(
                "COPY assets (uri, kind, status, embedding_model, tags, metadata, captured_at,"
                " embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "text", "text", "text", "text[]", "jsonb",
                                "timestamptz", "vector"])
                for i in range(data.rows):
                    copy.write_row([f"synthetic://{i}", "image", "ready", MODEL, data.tags[i],
                                    Jsonb({"brand": brand_name(int(data.brand[i]))}),
                                    captured_at(int(data.captured[i])), data.vectors[i]])
        with Timer() as t_analyze:
            conn.execute("VACUUM ANALYZE assets")
        uris = [f"synthetic://{i}" for i in data.late]
        conn.execute("UPDATE assets SET tags = tags || %s::text[] WHERE uri = ANY(%s)",
                     [[LATE_TAG], uris])
    return {"copy_seconds": round(t_copy.seconds, 1),
            "vacuum_analyze_seconds": round(t_analyze.seconds, 1)}


def _cpu_seconds(pid: int, children: bool = False) -> float | None:
    """utime + stime of a process (its reaped children's with children=True), from /proc:
    the server's own processes, when it runs on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    first = 13 if children else 11  # cutime, cstime | utime, stime (0-based after "(comm)")
    return (int(fields[first]) + int(fields[first + 1])) / ticks


def build_index(url: str, ef_construction: int | None = None) -> dict[str, Any]:
    """The product's own index build (assetdb.db.indexes), timed in wall seconds and in
    CPU seconds of the server's processes (the leader, and the parallel workers, which
    the postmaster reaps). On a shared machine the wall time measures the load as much
    as the build; CPU seconds / processes is what an idle machine would take."""
    import psycopg

    from assetdb.db.indexes import HNSW_EF_CONSTRUCTION, build_vector_index

    with psycopg.connect(url, autocommit=True) as conn:
        leader = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        pm_pid = _postmaster_pid(leader)
        before = (_cpu_seconds(leader), _cpu_seconds(pm_pid, True) if pm_pid else None)
        with Timer() as t:
            info = build_vector_index(
                conn, ef_construction=ef_construction or HNSW_EF_CONSTRUCTION)
        after = (_cpu_seconds(leader), _cpu_seconds(pm_pid, True) if pm_pid else None)
    out: dict[str, Any] = {"hnsw_build_seconds": round(t.seconds, 1), **info}
    if None not in before and None not in after:
        leader_cpu = after[0] - before[0]
        workers_cpu = after[1] - before[1]
        out["build_cpu_seconds"] = {"leader": round(leader_cpu, 1),
                                    "workers": round(workers_cpu, 1)}
        # Leader and workers share the graph and run side by side: on an idle machine
        # with a core each the wall time is about the largest of them.
        out["idle_estimate_seconds"] = round(max(leader_cpu, workers_cpu), 1)
    return out


def _postmaster_pid(backend: int) -> int | None:
    try:
        fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1])  # ppid
