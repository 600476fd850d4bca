"""Loading the benchmark's rows into the product's `assets` table (COPY, then the index)."""

from __future__ import annotations

import json
from typing import Any

from benchmarks._common import Timer
from benchmarks.vector_cases import LATE_TAG, Dataset, brand_name, captured_at

MODEL = "synthetic-clustered-512"


def copy_rows(url: str, data: Dataset) -> dict[str, float]:
    """COPY the rows (vector index dropped first: it is built once, after loading, as a
    bulk ingest does), ANALYZE, then tag the `late` rows, which the statistics miss."""
    import psycopg
    from pgvector.psycopg import register_vector

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
                                    json.dumps({"brand": brand_name(int(data.brand[i]))}),
                                    captured_at(int(data.captured[i])), data.vectors[i]])
        with Timer() as t_analyze:
            conn.execute("VACUUM ANALYZE assets")
        uris = [f"synthetic://{i}" for i in data.late]
        conn.execute("UPDATE assets SET tags = tags || %s::text[] WHERE uri = ANY(%s)",
                     [[LATE_TAG], uris])
    return {"copy_seconds": round(t_copy.seconds, 1),
            "vacuum_analyze_seconds": round(t_analyze.seconds, 1)}


def build_index(url: str) -> dict[str, Any]:
    """The product's own index build (assetdb.db.indexes), timed."""
    import psycopg

    from assetdb.db.indexes import build_vector_index

    with psycopg.connect(url, autocommit=True) as conn, Timer() as t:
        info = build_vector_index(conn)
    return {"hnsw_build_seconds": round(t.seconds, 1), **info}
