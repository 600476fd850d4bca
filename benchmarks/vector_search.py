"""Vector search: HNSW build time, latency and recall@10 against exact search, unfiltered
and with filters matching 50%, 10%, 1% and 0.1% of rows, through the product's query path
(`assetdb.search.searches.search_vector` -> `assetdb.search.query.nearest`); and `vector`
against `halfvec` storage (sizes, build time, recall, latency) in benchmark tables.

Data: clustered synthetic 512-d unit vectors (cluster centres plus Gaussian spread), the
queries drawn from the same clusters; filter tags assigned at random. Ground truth is
exact cosine search in numpy.

    python -m benchmarks.vector_search --rows 100000 --out benchmarks/results/vector_search.json
    python -m benchmarks.vector_search --rows 1000000      # the large run (about 4 GB RAM)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assetdb.db.indexes import EMBEDDING_INDEX, hnsw_index_sql
from benchmarks._common import (
    Timer,
    bench_database,
    init_database,
    machine,
    median,
    percentile,
    report,
)

DIM = 512
MODEL = "synthetic-clustered-512"
SELECTIVITIES = {"s50": 0.5, "s10": 0.1, "s1": 0.01, "s0.1": 0.001}
K = 10


def clustered(rows: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around rows/100 random centres; spread chosen so that a point's
    cosine to its own centre is about 0.7 (a neighbourhood structure like CLIP's)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, rows // 100), DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = 1.0 / np.sqrt(DIM)

    def draw(n: int) -> np.ndarray:
        out = np.empty((n, DIM), dtype=np.float32)
        for i in range(0, n, 50_000):
            m = min(50_000, n - i)
            pts = centres[rng.integers(0, len(centres), m)]
            pts = pts + rng.standard_normal((m, DIM)).astype(np.float32) * spread
            out[i : i + m] = pts / np.linalg.norm(pts, axis=1, keepdims=True)
        return out

    return draw(rows), draw(queries)


def assign_tags(rows: int, seed: int = 1) -> dict[str, np.ndarray]:
    """For each selectivity, an exact share of rows (random, independent of the vectors)."""
    rng = np.random.default_rng(seed)
    masks = {}
    for tag, share in SELECTIVITIES.items():
        mask = np.zeros(rows, dtype=bool)
        mask[rng.permutation(rows)[: max(K, round(rows * share))]] = True
        masks[tag] = mask
    return masks


def ground_truth(data: np.ndarray, queries: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Exact top-K row indexes per query (cosine on unit vectors = dot product)."""
    out = np.empty((len(queries), K), dtype=np.int64)
    for i, q in enumerate(queries):
        scores = data @ q
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        top = np.argpartition(-scores, K)[:K]
        out[i] = top[np.argsort(-scores[top])]
    return out


def load(url: str, data: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """COPY rows into the product's assets table (index dropped first), then build the HNSW
    index with the migration's parameters, timed."""
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"DROP INDEX {EMBEDDING_INDEX}")
        with Timer() as t_copy, conn.cursor() as cur:
            with cur.copy(
                "COPY assets (uri, kind, status, embedding_model, tags, embedding) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "text", "text", "text", "text[]", "vector"])
                for i, vec in enumerate(data):
                    tags = [tag for tag, mask in masks.items() if mask[i]]
                    copy.write_row([f"synthetic://{i}", "image", "ready", MODEL, tags, vec])
        conn.execute("VACUUM ANALYZE assets")
        _build_settings(conn)
        with Timer() as t_build:
            conn.execute(hnsw_index_sql())
    return {"copy_seconds": round(t_copy.seconds, 2),
            "hnsw_build_seconds": round(t_build.seconds, 2)}


def _build_settings(conn: Any) -> None:
    # The graph must fit in maintenance_work_mem or the build slows down by an order of
    # magnitude; one parallel worker besides the leader on this 2-core machine.
    conn.execute("SET maintenance_work_mem = '3GB'")
    conn.execute("SET max_parallel_maintenance_workers = 1")


def build_halfvec(url: str) -> dict[str, Any]:
    """Narrow copies of the vectors as vector and as halfvec; HNSW on the halfvec one."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name, typ in (("bench_vector", f"vector({DIM})"), ("bench_halfvec", f"halfvec({DIM})")):
            conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.execute(
                f"CREATE TABLE {name} AS SELECT id, tags, embedding::{typ} AS embedding "
                "FROM assets ORDER BY id"
            )
            conn.execute(f"CREATE INDEX {name}_tags ON {name} USING gin (tags)")
            conn.execute(f"VACUUM ANALYZE {name}")
        _build_settings(conn)
        with Timer() as t:
            conn.execute(hnsw_index_sql("bench_halfvec_hnsw", table="bench_halfvec",
                                        opclass="halfvec_cosine_ops"))

        def size(rel: str) -> int:
            return conn.execute("SELECT pg_total_relation_size(%s::regclass)", [rel]).fetchone()[0]

        def rel_size(rel: str) -> int:
            return conn.execute("SELECT pg_relation_size(%s::regclass)", [rel]).fetchone()[0]

        return {
            "halfvec_hnsw_build_seconds": round(t.seconds, 2),
            "vector_table_mb": round(
                (size("bench_vector") - rel_size("bench_vector_tags")) / 2**20, 1),
            "halfvec_table_mb": round(
                (size("bench_halfvec") - rel_size("bench_halfvec_tags")
                 - rel_size("bench_halfvec_hnsw")) / 2**20, 1),
            "vector_hnsw_mb": round(rel_size(EMBEDDING_INDEX) / 2**20, 1),
            "halfvec_hnsw_mb": round(rel_size("bench_halfvec_hnsw") / 2**20, 1),
        }


def exact_storage(url: str, queries: np.ndarray, truth: np.ndarray, tag: str,
                  id_of_row: np.ndarray) -> list[dict[str, Any]]:
    """The exact plan (filter, then sort every match) against three storages of the same
    vectors: `vector` as pgvector stores it (a 512-d vector, 2 KB, is moved out of line into
    TOAST), `vector` with STORAGE PLAIN (kept in the row), and `halfvec` (1 KB, in the row)."""
    import psycopg

    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_vector_plain")
        conn.execute(f"CREATE TABLE bench_vector_plain (id bigint, tags text[], "
                     f"embedding vector({DIM}))")
        conn.execute("ALTER TABLE bench_vector_plain ALTER COLUMN embedding SET STORAGE PLAIN")
        conn.execute("INSERT INTO bench_vector_plain SELECT id, tags, embedding FROM bench_vector")
        conn.execute("CREATE INDEX bench_vector_plain_tags ON bench_vector_plain USING gin (tags)")
        conn.execute("VACUUM ANALYZE bench_vector_plain")
        for table, typ, label in (("bench_vector", "vector", "vector (TOAST, default)"),
                                  ("bench_vector_plain", "vector", "vector STORAGE PLAIN"),
                                  ("bench_halfvec", "halfvec", "halfvec")):
            row_of_id = {int(i): r for r, i in enumerate(id_of_row)}
            sql = (f"SELECT id FROM {table} WHERE tags @> %(tags)s "
                   f"ORDER BY embedding <=> %(q)s::{typ}, id LIMIT {K}")

            def run(q: np.ndarray, sql: str = sql, row_of_id: dict = row_of_id) -> list[int]:
                with conn.transaction():
                    conn.execute("SET LOCAL enable_indexscan = off")  # no HNSW: exact
                    rows = conn.execute(sql, {"q": str(q.tolist()), "tags": [tag]}).fetchall()
                return [row_of_id[r[0]] for r in rows]

            out.append({"storage": label, "filter": tag, **measure(run, queries, truth)})
    return out


def hnsw_sweep(url: str, params: list[tuple[int, int]], queries: np.ndarray,
               truth: np.ndarray, id_of_row: np.ndarray) -> list[dict[str, Any]]:
    """Build time, size, recall and latency for several (m, ef_construction) settings,
    on the narrow vector table, unfiltered, at two ef_search values."""
    import psycopg

    rows = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_vector")
        conn.execute(f"CREATE TABLE bench_vector AS SELECT id, tags, embedding::vector({DIM}) "
                     "AS embedding FROM assets ORDER BY id")
        conn.execute("VACUUM ANALYZE bench_vector")
        for m, efc in params:
            conn.execute("DROP INDEX IF EXISTS bench_vector_hnsw")
            _build_settings(conn)
            with Timer() as t:
                conn.execute(hnsw_index_sql("bench_vector_hnsw", table="bench_vector",
                                            m=m, ef_construction=efc))
            mb = conn.execute("SELECT pg_relation_size('bench_vector_hnsw')").fetchone()[0]
            for ef in (40, 100):
                run = raw_runner(conn, "bench_vector", "vector", None, ef, id_of_row)
                rows.append({"m": m, "ef_construction": efc, "build_s": round(t.seconds, 1),
                             "hnsw_mb": round(mb / 2**20, 1), "ef_search": ef,
                             **measure(run, queries, truth)})
    return rows


def measure(run: Callable[[np.ndarray], list[int]], queries: np.ndarray,
            truth: np.ndarray) -> dict[str, Any]:
    run(queries[0])  # warm the cache and the connection
    latencies, recalls, returned = [], [], []
    for q, true_ids in zip(queries, truth, strict=True):
        start = time.perf_counter()
        ids = run(q)
        latencies.append((time.perf_counter() - start) * 1000)
        returned.append(len(ids))
        recalls.append(len(set(ids) & set(true_ids.tolist())) / K)
    return {"p50_ms": round(median(latencies), 2), "p95_ms": round(percentile(latencies, 95), 2),
            "recall_at_10": round(float(np.mean(recalls)), 4),
            "min_recall_at_10": round(float(np.min(recalls)), 2),
            "min_rows_returned": int(min(returned))}


def product_runner(settings: Any, tag: str | None, id_of_row: np.ndarray):  # noqa: ANN201
    from assetdb.catalog.catalogue import Catalog
    from assetdb.search.filters import Filters

    filters = Filters(tags_all=[tag] if tag else [])
    row_of_id = {int(i): r for r, i in enumerate(id_of_row)}

    def run(q: np.ndarray) -> list[int]:
        return [row_of_id[h.id] for h in Catalog(settings).search_vector(q, k=K, filters=filters)]

    return run


def raw_runner(conn: Any, table: str, typ: str, tag: str | None, ef: int,
               id_of_row: np.ndarray):  # noqa: ANN201
    """The HNSW plan of `nearest` (iterative scan, exact re-sort) on a benchmark table.
    Table and type names come from code constants only."""
    row_of_id = {int(i): r for r, i in enumerate(id_of_row)}
    where = "WHERE tags @> %(tags)s" if tag else ""
    sql = (
        f"WITH approx AS MATERIALIZED (SELECT id, embedding <=> %(q)s::{typ} AS d "
        f"FROM {table} {where} ORDER BY embedding <=> %(q)s::{typ} LIMIT {K}) "
        "SELECT id FROM approx ORDER BY d, id"
    )

    def run(q: np.ndarray) -> list[int]:
        with conn.transaction():
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            conn.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            conn.execute("SET LOCAL hnsw.max_scan_tuples = 20000")
            conn.execute("SET LOCAL enable_sort = off")  # as nearest(): walk the index
            rows = conn.execute(sql, {"q": str(q.tolist()), "tags": [tag]}).fetchall()
        return [row_of_id[r[0]] for r in rows]

    return run


class _Done(Exception):
    """Leave the measurements early (--only-sweep)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--no-halfvec", action="store_true", help="skip the halfvec comparison")
    ap.add_argument("--no-storage-compare", action="store_true",
                    help="skip re-running the product path with vectors stored in the row")
    ap.add_argument("--hnsw-sweep", action="store_true",
                    help="also build indexes with (m, ef_construction) = (8, 32), (16, 64), "
                    "(32, 128) and compare them")
    ap.add_argument("--only-sweep", action="store_true",
                    help="skip the product path and halfvec runs (with --hnsw-sweep)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()

    import psycopg

    from assetdb.config import Settings
    from assetdb.db import embedded
    from assetdb.db.engine import reset_engines

    info = machine()
    with Timer() as t_gen:
        data, queries = clustered(args.rows, args.queries)
        masks = assign_tags(args.rows)
        truth: dict[str | None, np.ndarray] = {None: ground_truth(data, queries, None)}
        for tag, mask in masks.items():
            truth[tag] = ground_truth(data, queries, mask)
    result: dict[str, Any] = {"machine": info, "rows": args.rows, "queries": args.queries,
                              "dimension": DIM, "k": K, "clusters": max(1, args.rows // 100),
                              "data_and_truth_seconds": round(t_gen.seconds, 1)}
    tables: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="assetdb-vbench-") as tmp:
        home = Path(tmp)
        home.chmod(0o711)  # the server may run as another user (under root)
        os.environ["ASSETDB_HOME"] = str(home)
        try:
            with bench_database(home, "bench_vectors") as url:
                init_database(url, MODEL, DIM)
                result["load"] = load(url, data, masks)
                settings = Settings.from_env()
                with psycopg.connect(url) as conn:
                    ids = conn.execute("SELECT id FROM assets ORDER BY id").fetchall()
                id_of_row = np.array([r[0] for r in ids])  # COPY kept row order

                if args.hnsw_sweep:
                    sweep = hnsw_sweep(url, [(8, 32), (16, 64), (32, 128)], queries,
                                       truth[None], id_of_row)
                    tables["HNSW build parameters (unfiltered)"] = sweep
                    result["hnsw_sweep"] = sweep
                if args.only_sweep:
                    raise _Done

                # 1. The product's path with its defaults, and with the exact plan turned off
                #    (every query walks the HNSW graph with the iterative scan).
                forced = dataclasses.replace(settings, exact_search_max_rows=0)
                rows = []
                for label, tag in [("none", None), *((t, t) for t in SELECTIVITIES)]:
                    share = 1.0 if tag is None else float(masks[tag].mean())
                    for plan, st in (("product default", settings), ("HNSW forced", forced)):
                        if tag is None and plan == "HNSW forced":
                            continue
                        m = measure(product_runner(st, tag, id_of_row), queries, truth[tag])
                        rows.append({"filter": label, "share": share, "plan": plan, **m})
                tables["product query path (search_vector -> nearest), k=10"] = rows
                result["product_path"] = rows

                # 2. ef_search trade-off, unfiltered, HNSW plan.
                ef_rows = []
                with psycopg.connect(url, autocommit=True) as conn:
                    for ef in (20, 40, 100, 200):
                        m = measure(raw_runner(conn, "assets", "vector", None, ef, id_of_row),
                                    queries, truth[None])
                        ef_rows.append({"ef_search": ef, **m})
                tables["hnsw.ef_search trade-off (unfiltered, m=16, ef_construction=64)"] = ef_rows
                result["ef_search"] = ef_rows

                # 3. vector against halfvec.
                if not args.no_halfvec:
                    result["halfvec_sizes"] = build_halfvec(url)
                    hv_rows = []
                    with psycopg.connect(url, autocommit=True) as conn:
                        for tag in (None, "s50", "s10", "s1"):
                            for table, typ in (("assets", "vector"), ("bench_halfvec", "halfvec")):
                                run = raw_runner(conn, table, typ, tag, 100, id_of_row)
                                m = measure(run, queries, truth[tag])
                                hv_rows.append({"storage": typ, "filter": tag or "none", **m})
                    tables["vector vs halfvec (HNSW plan, ef_search=100)"] = hv_rows
                    ex = exact_storage(url, queries, truth["s10"], "s10", id_of_row)
                    tables["exact plan by storage (filter s10)"] = ex
                    result["exact_storage"] = ex
                    result["halfvec"] = hv_rows
                    sizes = result["halfvec_sizes"]
                    tables["storage sizes (MB) and build time (s)"] = [
                        {"storage": "vector", "table_mb": sizes["vector_table_mb"],
                         "hnsw_mb": sizes["vector_hnsw_mb"],
                         "hnsw_build_s": result["load"]["hnsw_build_seconds"]},
                        {"storage": "halfvec", "table_mb": sizes["halfvec_table_mb"],
                         "hnsw_mb": sizes["halfvec_hnsw_mb"],
                         "hnsw_build_s": sizes["halfvec_hnsw_build_seconds"]},
                    ]

                # 4. The product path again with the vectors moved into the row (STORAGE
                #    MAIN, table rewritten): faster exact sorts, but every row read by the
                #    count that chooses the plan is now 2 KB wide.
                if not args.no_storage_compare:
                    heap_sql = "SELECT pg_relation_size('assets') / 1048576.0"
                    with psycopg.connect(url, autocommit=True) as conn:
                        heap_before = conn.execute(heap_sql).fetchone()[0]
                        conn.execute("ALTER TABLE assets ALTER COLUMN embedding SET STORAGE MAIN")
                        with Timer() as t_full:
                            conn.execute("VACUUM FULL assets")
                        conn.execute("VACUUM ANALYZE assets")
                        heap_mb = conn.execute(heap_sql).fetchone()[0]
                    main_rows = []
                    for label, tag in [("none", None), *((t, t) for t in SELECTIVITIES)]:
                        share = 1.0 if tag is None else float(masks[tag].mean())
                        m = measure(product_runner(settings, tag, id_of_row), queries, truth[tag])
                        main_rows.append({"filter": label, "share": share,
                                          "storage": "in the row (MAIN)", **m})
                    default = [{"filter": r["filter"], "share": r["share"],
                                "storage": "TOAST (pgvector default, shipped)",
                                **{k: v for k, v in r.items()
                                   if k not in ("filter", "share", "plan")}}
                               for r in rows if r["plan"] == "product default"]
                    tables["product path by embedding storage (k=10)"] = default + main_rows
                    result["product_path_storage_main"] = main_rows
                    result["storage_main_rewrite_seconds"] = round(t_full.seconds, 1)
                    result["heap_mb"] = {"toast": round(float(heap_before), 1),
                                         "main": round(float(heap_mb), 1)}
        except _Done:
            pass
        finally:
            reset_engines()
            embedded.stop(home)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    tables = {"build": [{"rows": args.rows, **result["load"]}], **tables}
    report("vector search", result, tables, args.out)


if __name__ == "__main__":
    main()
