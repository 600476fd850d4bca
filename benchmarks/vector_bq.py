"""Binary quantization on the 1M benchmark database (issue 15, item 2's alternatives):
an HNSW index over `binary_quantize(embedding)::bit(D)` with Hamming distance, walked for
C candidates and re-ranked exactly by the float32 vectors, as pgvector's README describes.

It works on a database kept by `benchmarks.vector_search --keep HOME` (same seed, same
rows), builds the bit index beside the product's index, measures, and drops it again:

    python -m benchmarks.vector_search --rows 1000000 --keep HOME        # once
    python -m benchmarks.vector_bq --keep HOME --build --configs '[[200,100,20000]]'

Each config is [hnsw.ef_search, candidates re-ranked, hnsw.max_scan_tuples].
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks._common import bench_database, machine, report
from benchmarks.vector_cases import DIM, K, cases, generate, ground_truth
from benchmarks.vector_search import case_where, measure, raw_runner

INDEX = "assets_bq_hnsw"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, required=True, metavar="HOME")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--build", action="store_true", help="build the bit index first (timed)")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=64)
    ap.add_argument("--configs", default="[[100,40,20000],[200,100,20000],[400,200,40000]]")
    ap.add_argument("--cases", default="none,s50,s10,anti10,meta5")
    ap.add_argument("--keep-index", action="store_true", help="leave the bit index in place")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    configs = json.loads(args.configs)

    import psycopg
    from pgvector.psycopg import register_vector

    from assetdb.db import embedded

    result: dict[str, Any] = {"machine": machine(), "rows": args.rows}
    data = generate(args.rows, 100)
    wanted = set(args.cases.split(","))
    case_list = [c for c in cases(data) if c.name in wanted]
    truth = ground_truth(data, case_list)
    os.environ["ASSETDB_HOME"] = str(args.keep)
    rows: list[dict[str, Any]] = []
    try:
        with bench_database(args.keep, f"bench_vectors_{args.rows}", fresh=False) as url, \
                psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            row_of_id = {int(i): int(u.rsplit("/", 1)[1])
                         for i, u in conn.execute("SELECT id, uri FROM assets")}
            if args.build:
                conn.execute("SET maintenance_work_mem = '3GB'")
                conn.execute("SET max_parallel_maintenance_workers = 1")
                conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
                start = time.perf_counter()
                conn.execute(f"CREATE INDEX {INDEX} ON assets USING hnsw "
                             f"((binary_quantize(embedding)::bit({DIM})) bit_hamming_ops) "
                             f"WITH (m = {int(args.m)}, "
                             f"ef_construction = {int(args.ef_construction)})")
                result["build"] = {
                    "seconds": round(time.perf_counter() - start, 1), "m": args.m,
                    "ef_construction": args.ef_construction,
                    "index_mb": conn.execute(f"SELECT pg_relation_size('{INDEX}') / 1048576"
                                             ).fetchone()[0]}
            for case in case_list:
                where, params = case_where(case)
                for ef, cand, scan in configs:
                    sql = (f"WITH c AS MATERIALIZED (SELECT id, embedding FROM assets {where} "
                           f"ORDER BY binary_quantize(embedding)::bit({DIM}) <~> "
                           f"binary_quantize(%(q)s::vector)::bit({DIM}) LIMIT {int(cand)}) "
                           f"SELECT id FROM c ORDER BY embedding <=> %(q)s, id LIMIT {K}")
                    gucs = {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": "relaxed_order",
                            "hnsw.max_scan_tuples": str(scan), "enable_sort": "off",
                            "enable_seqscan": "off"}

                    run = raw_runner(conn, sql, gucs, params, row_of_id)
                    rows.append({"filter": case.name, "ef_search": ef, "candidates": cand,
                                 "max_scan_tuples": scan,
                                 **measure(run, data.queries, truth[case.name])})
            if not args.keep_index:
                conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
    finally:
        embedded.stop(args.keep)
    result["bq"] = rows
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    tables = {"binary quantization, re-ranked by float32": rows}
    if "build" in result:
        tables = {"bit index build": [result["build"]], **tables}
    report("binary quantization", result, tables, args.out)


if __name__ == "__main__":
    main()
