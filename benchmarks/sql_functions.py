"""Latency and recall of the SQL similarity functions (migration 0003).

Starts a throw-away embedded PostgreSQL, creates the schema for DIM-d vectors, loads ROWS
random unit vectors with COPY, builds the HNSW index, then calls assetdb_similar(id, k)
for random ids and compares each result with the exact top-k (numpy).

    python benchmarks/sql_functions.py --rows 10000 --dim 512 --queries 200
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from dataclasses import replace

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from assetdb.config import Settings
from assetdb.db import embedded, schema
from assetdb.db.engine import connect
from assetdb.db.indexes import EMBEDDING_INDEX, vector_index_sql
from assetdb.sqlsurface.vectors import vector_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    home = embedded.scratch_home("assetdb-bench-")
    try:
        url = embedded.start(home)
        settings = replace(Settings.from_env(), database_url=url, home=home)
        with connect(settings) as conn:
            schema.upgrade(conn, "bench-model", args.dim)
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            index = vector_index_sql(args.dim)  # the product's index (migration 0006)
            cur.execute(f"DROP INDEX {EMBEDDING_INDEX}")
            t = time.perf_counter()
            with cur.copy("COPY assets (uri, embedding, embedding_model, status) "
                          "FROM STDIN") as copy:
                for i, v in enumerate(vectors):
                    copy.write_row((f"mem://{i}", vector_text(v), "bench-model", "ready"))
            copy_s = time.perf_counter() - t
            t = time.perf_counter()
            cur.execute(index)
            index_s = time.perf_counter() - t
            cur.execute("ANALYZE assets")
        print(f"{args.rows} rows x {args.dim}-d: COPY {copy_s:.1f} s, HNSW build {index_s:.1f} s")

        with psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            ids = [r[0] for r in conn.execute("SELECT id FROM assets ORDER BY id")]
            picks = rng.choice(len(ids), size=args.queries, replace=False)
            conn.execute("SELECT * FROM assetdb_similar(%s, %s)", (ids[0], args.k)).fetchall()
            latencies, recalls = [], []
            for i in picks:
                t = time.perf_counter()
                got = [r[0] for r in conn.execute(
                    "SELECT asset_id FROM assetdb_similar(%s, %s)", (ids[i], args.k))]
                latencies.append((time.perf_counter() - t) * 1000)
                sims = vectors @ vectors[i]
                sims[i] = -np.inf
                exact = {ids[j] for j in np.argsort(-sims)[: args.k]}
                recalls.append(len(exact & set(got)) / args.k)
        latencies.sort()
        print(f"assetdb_similar(id, {args.k}) over {args.queries} queries: "
              f"median {statistics.median(latencies):.2f} ms, "
              f"p95 {latencies[int(0.95 * len(latencies)) - 1]:.2f} ms, "
              f"recall@{args.k} {statistics.mean(recalls):.3f}")
    finally:
        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
