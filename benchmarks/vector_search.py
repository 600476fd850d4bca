"""Vector search at scale (issue 15): the product's query path on every filter case of
benchmarks/vector_cases.py, with recall@10 against exact search, the smallest recall
and row count of any query, p50/p95 latency, the plan chosen, and the index build time.

    python -m benchmarks.vector_search --rows 100000 --out docs/results/vector_search.json
    python -m benchmarks.vector_search --rows 1000000 --out docs/results/vector_search_1m.json

Rows go into the product's `assets` table by COPY, then the vector index is built once
by the product's own bulk build (assetdb.db.indexes.build_vector_index): memory sized
for the graph, a parallel worker per extra core. `--sweep` adds the alternatives measured
on the way (hnsw.ef_search breadths, candidates re-ranked, the exact plan's cost), each
on the raw HNSW walk, so the choices in assetdb.search.plan can be checked.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    Timer,
    bench_database,
    init_database,
    machine,
    median,
    percentile,
    report,
)
from benchmarks.vector_cases import (
    DIM,
    Case,
    K,
    cases,
    generate,
    ground_truth,
    own_cluster_share,
)
from benchmarks.vector_load import MODEL, build_index, copy_rows


def measure(run: Callable[[np.ndarray], list[int]], queries: np.ndarray,
            truth: np.ndarray) -> dict[str, Any]:
    run(queries[0])  # warm the connection
    latencies, recalls, returned = [], [], []
    for q, true_rows in zip(queries, truth, strict=True):
        start = time.perf_counter()
        rows = run(q)
        latencies.append((time.perf_counter() - start) * 1000)
        returned.append(len(rows))
        recalls.append(len(set(rows) & set(true_rows.tolist())) / K)
    return {"p50_ms": round(median(latencies), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "recall_at_10": round(float(np.mean(recalls)), 3),
            "min_recall": round(float(np.min(recalls)), 2),
            "min_rows": int(min(returned))}


def product_runner(settings: Any, case: Case, row_of_id: dict[int, int],  # noqa: ANN401
                   plans: list[Any]) -> Callable[[np.ndarray], list[int]]:
    """The product path: Catalog.search_vector -> query.nearest, with its plan recorded."""
    from assetdb.db.engine import connect
    from assetdb.search.filters import Filters
    from assetdb.search.query import nearest

    filters = Filters(**case.filters)

    def run(q: np.ndarray) -> list[int]:
        with connect(settings) as conn:
            hits = nearest(conn, q, k=K, filters=filters, model=MODEL,
                           exact_max_rows=settings.exact_search_max_rows,
                           ef_search=settings.hnsw_ef_search, plan_out=plans)
        return [row_of_id[h.id] for h in hits]

    return run


def sql_function_runner(url: str, case: Case, row_of_id: dict[int, int]
                        ) -> Callable[[np.ndarray], list[int]]:
    """The analysts' path: assetdb_nearest(query, k, <the same filters>)."""
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    args = {"tags": case.filters.get("tags_all"), "meta": case.filters.get("metadata"),
            "ca": case.filters.get("captured_after"), "cb": case.filters.get("captured_before")}
    from psycopg.types.json import Jsonb

    args["meta"] = Jsonb(args["meta"]) if args["meta"] else None
    sql = ("SELECT asset_id FROM assetdb_nearest(%(q)s, %(k)s, tags => %(tags)s, "
           "meta => %(meta)s, captured_after => %(ca)s, captured_before => %(cb)s)")

    def run(q: np.ndarray) -> list[int]:
        return [row_of_id[r[0]] for r in conn.execute(sql, {**args, "q": q, "k": K})]

    return run


def case_where(case: Case) -> tuple[str, dict[str, Any]]:
    """The case's filters as a plain SQL WHERE clause and its bind parameters."""
    from psycopg.types.json import Jsonb

    conds, params = [], {}
    f = case.filters
    if "tags_all" in f:
        conds.append("tags @> %(tags)s")
        params["tags"] = f["tags_all"]
    if "metadata" in f:
        conds.append("metadata @> %(meta)s")
        params["meta"] = Jsonb(f["metadata"])
    if "captured_after" in f:
        conds.append("captured_at >= %(ca)s AND captured_at <= %(cb)s")
        params.update(ca=f["captured_after"], cb=f["captured_before"])
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


def sweep(url: str, data: Any, case_list: list[Case], truth: dict[str, np.ndarray],  # noqa: ANN401
          row_of_id: dict[int, int]) -> list[dict[str, Any]]:
    """The raw HNSW walk at several breadths, and the exact plan, per case."""
    import psycopg
    from pgvector.psycopg import register_vector

    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        for case in case_list:
            where, params = case_where(case)
            variants: list[tuple[str, str, dict[str, str]]] = []
            for ef, candidates in ((100, 20), (200, 20), (400, 20), (1000, 20), (1000, 100)):
                variants.append((f"index ef_search={ef}, {candidates} re-ranked", (
                    f"WITH a AS MATERIALIZED (SELECT id, embedding <=> %(q)s AS d FROM assets "
                    f"{where} ORDER BY embedding::halfvec({DIM}) <=> %(q)s::halfvec({DIM}) "
                    f"LIMIT {candidates}) SELECT id FROM a ORDER BY d, id LIMIT {K}"),
                    {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": "relaxed_order",
                     "hnsw.max_scan_tuples": "100000", "enable_sort": "off"}))
            if case.mask is not None and case.share <= 0.1:
                variants.append(("exact", (
                    f"WITH a AS MATERIALIZED (SELECT id, embedding <=> %(q)s AS d FROM assets "
                    f"{where}) SELECT id FROM a ORDER BY d, id LIMIT {K}"), {}))
            for label, sql, gucs in variants:
                run = raw_runner(conn, sql, gucs, params, row_of_id)
                out.append({"filter": case.name, "share": round(case.share, 4), "plan": label,
                            **measure(run, data.queries, truth[case.name])})
    return out


def raw_runner(conn: Any, sql: str, gucs: dict[str, str], params: dict[str, Any],  # noqa: ANN401
               row_of_id: dict[int, int]) -> Callable[[np.ndarray], list[int]]:
    """One raw statement per query (bound as %(q)s), under its own settings."""

    def run(q: np.ndarray) -> list[int]:
        with conn.transaction():
            for name, value in gucs.items():
                conn.execute("SELECT set_config(%s, %s, true)", [name, value])
            rows = conn.execute(sql, {**params, "q": q}).fetchall()
        return [row_of_id[r[0]] for r in rows]

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--sweep", action="store_true", help="also measure the alternatives")
    ap.add_argument("--families", type=int, default=0, metavar="N",
                    help="draw the cluster centres around N family centres (structure "
                    "between clusters, as real embeddings have); 0: independent centres")
    ap.add_argument("--no-sql", action="store_true", help="skip the SQL-function path")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--keep", type=Path, metavar="HOME",
                    help="build the database under HOME and keep it (with --reuse, measure "
                    "again without loading and building: the data is the same for a seed)")
    ap.add_argument("--reuse", action="store_true",
                    help="measure on the database --keep HOME holds (its load and build "
                    "figures come from the run that made it)")
    ap.add_argument("--rebuild", type=int, metavar="EF_CONSTRUCTION",
                    help="with --reuse: build the index again with this ef_construction "
                    "(m stays 16) and measure on it; the build is recorded in this run")
    args = ap.parse_args()
    if args.reuse and not args.keep:
        ap.error("--reuse needs --keep HOME")

    import psycopg

    from assetdb.config import Settings
    from assetdb.db import embedded
    from assetdb.db.engine import reset_engines

    info = machine()
    with Timer() as t_gen:
        data = generate(args.rows, args.queries, families=args.families)
        case_list = cases(data)
        truth = ground_truth(data, case_list)
    result: dict[str, Any] = {"machine": info, "rows": args.rows, "queries": args.queries,
                              "dimension": DIM, "k": K, "clusters": len(np.unique(data.cluster)),
                              "families": args.families,
                              "data_and_truth_seconds": round(t_gen.seconds, 1)}
    tables: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="assetdb-vbench-") as tmp:
        home = args.keep or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o711)  # the server may run as another user (under root)
        os.environ["ASSETDB_HOME"] = str(home)
        tag = f"{args.rows}" + (f"_f{args.families}" if args.families else "")
        saved = home / f"build-{tag}.json"
        try:
            with bench_database(home, f"bench_vectors_{tag}",
                                fresh=not args.reuse) as url:
                if args.reuse:
                    os.environ["ASSETDB_DATABASE_URL"] = url
                    os.environ["ASSETDB_MODEL"] = MODEL
                    result.update(json.loads(saved.read_text()))
                    if args.rebuild:
                        result["build"] = build_index(url, args.rebuild)
                else:
                    init_database(url, MODEL, DIM)
                    result["load"] = copy_rows(url, data)
                    result["build"] = build_index(url)
                    saved.write_text(json.dumps({k: result[k] for k in ("load", "build")}))
                settings = Settings.from_env()
                with psycopg.connect(url) as conn:
                    ids = conn.execute("SELECT id, uri FROM assets").fetchall()
                    result["sizes_mb"] = {
                        rel: round(conn.execute("SELECT pg_relation_size(%s::regclass)",
                                                [rel]).fetchone()[0] / 2**20, 1)
                        for rel in ("assets", "assets_embedding_hnsw")}
                row_of_id = {int(i): int(uri.rsplit("/", 1)[1]) for i, uri in ids}
                # One unmeasured pass of unfiltered searches first: the server has just
                # started, and the first case would otherwise pay for reading the index
                # into its cache (a serving database has it there).
                warm = product_runner(settings, case_list[0], row_of_id, [])
                for q in data.queries:
                    warm(q)
                rows = []
                for case in case_list:
                    plans: list[Any] = []
                    m = measure(product_runner(settings, case, row_of_id, plans),
                                data.queries, truth[case.name])
                    names = sorted({p.name for p in plans})
                    rows.append({"filter": case.name, "share": round(case.share, 4),
                                 "own_cluster": round(own_cluster_share(
                                     data, truth[case.name]), 3),
                                 "plan": "/".join(names), **m,
                                 "sampled": sum(p.sampled is not None for p in plans),
                                 "counted": sum(p.counted is not None for p in plans),
                                 "fallbacks": sum(p.fallback for p in plans),
                                 "estimated_rows": plans[-1].estimated_rows,
                                 "ef_search": plans[-1].ef_search})
                tables["product path (Catalog search -> query.nearest), k=10"] = rows
                result["product_path"] = rows
                if not args.no_sql:
                    sql_rows = [{"filter": c.name, **measure(
                        sql_function_runner(url, c, row_of_id), data.queries, truth[c.name])}
                        for c in case_list]
                    tables["SQL function assetdb_nearest(q, 10, <filters>)"] = sql_rows
                    result["sql_function"] = sql_rows
                if args.sweep:
                    s = sweep(url, data, case_list, truth, row_of_id)
                    tables["alternatives (raw walk / exact)"] = s
                    result["sweep"] = s
        finally:
            reset_engines()
            embedded.stop(home)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    tables = {"build": [{"rows": args.rows, **result["load"], **result["build"],
                         **{f"{k}_mb": v for k, v in result["sizes_mb"].items()}}], **tables}
    report("vector search", result, tables, args.out)


if __name__ == "__main__":
    main()
