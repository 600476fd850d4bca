"""How long a model switch blocks searches, with searches running throughout.

Builds a catalogue of N random vectors (no model: vectors are random, which costs the
database exactly what real ones cost), fills the shadow column with random vectors of
another dimension as `assetdb reembed` would, builds the shadow indexes concurrently and
runs the one switching transaction, while a thread searches by stored asset without pause.
Prints the index build time, the switch time and the search latencies (max = the longest
any search waited), and the number of failed searches (should be 0).

    PYTHONPATH=. python benchmarks/switch_window.py --rows 20000 --old-dim 512 --new-dim 768

Uses ASSETDB_DATABASE_URL when set (a database it may fill), else a throw-away embedded
server in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import psycopg
from sqlalchemy import text


@dataclass
class FakeEncoder:  # the switch needs only the name and the dimension
    name: str
    dimension: int


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--old-dim", type=int, default=512)
    ap.add_argument("--new-dim", type=int, default=768)
    args = ap.parse_args()

    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings
    from assetdb.db import embedded, schema
    from assetdb.db.engine import connect, libpq_url, reset_engines
    from assetdb.ingest import model_switch

    home = None
    if not os.environ.get("ASSETDB_DATABASE_URL"):
        home = embedded.scratch_home("assetdb-bench-")
        os.environ["ASSETDB_HOME"] = str(home)
    settings = Settings.from_env()
    try:
        with connect(settings) as conn:
            schema.upgrade(conn, "old-model", args.old_dim)
        reset_engines()
        rng = np.random.default_rng(0)
        url = libpq_url(settings)
        t0 = time.perf_counter()
        with psycopg.connect(url) as pg:
            with pg.cursor().copy("COPY assets (uri, kind, status, embedding, embedding_model) "
                                  "FROM STDIN") as copy:
                for i in range(args.rows):
                    v = rng.standard_normal(args.old_dim).astype(np.float32)
                    vec = "[" + ",".join(f"{x:.5f}" for x in v / np.linalg.norm(v)) + "]"
                    copy.write_row((f"/bench/{i}.jpg", "image", "ready", vec, "old-model"))
        print(f"catalogue: {args.rows} rows of {args.old_dim}-d, loaded and indexed in "
              f"{time.perf_counter() - t0:.1f} s")

        new = FakeEncoder("new-model", args.new_dim)
        with connect(settings) as conn:
            model_switch._add_shadow_columns(conn, new.dimension)
        t0 = time.perf_counter()
        with psycopg.connect(url) as pg:
            pg.execute(
                "UPDATE assets SET embedding_next = l2_normalize(ARRAY(SELECT random() - 0.5 "
                "FROM generate_series(1, %s) WHERE id IS NOT NULL)::vector), "
                "embedding_next_model = %s, embedding_next_at = now()",
                (new.dimension, new.name))
        print(f"shadow column filled in {time.perf_counter() - t0:.1f} s (SQL, no model)")

        latencies: list[float] = []
        failures: list[str] = []
        done = threading.Event()
        exact = replace(settings, exact_search_max_rows=0)  # the HNSW plan

        def searcher() -> None:
            while not done.is_set():
                t = time.perf_counter()
                try:
                    hits = Catalog(exact).similar(1, k=10)
                    if len(hits) != 10:
                        failures.append(f"{len(hits)} hits")
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    failures.append(repr(exc))
                latencies.append(time.perf_counter() - t)

        thread = threading.Thread(target=searcher, daemon=True)
        thread.start()
        time.sleep(1.0)
        before = len(latencies)
        t0 = time.perf_counter()
        model_switch._build_shadow_indexes(settings)
        build_s = time.perf_counter() - t0
        during_build = latencies[before:]
        t0 = time.perf_counter()
        switched = model_switch._swap(settings, new, job_id=0)
        swap_s = time.perf_counter() - t0
        time.sleep(1.0)
        done.set()
        thread.join()
        with connect(settings) as conn:
            dim = conn.execute(text("SELECT value FROM assetdb_meta WHERE key = 'dimension'"))
            dim = dim.scalar_one()
        print(f"shadow HNSW index built CONCURRENTLY in {build_s:.1f} s; "
              f"{len(during_build)} searches meanwhile, max {max(during_build) * 1000:.0f} ms")
        print(f"switch transaction: {swap_s * 1000:.0f} ms (switched={switched}, dimension "
              f"now {dim})")
        print(f"searches: {len(latencies)}, median {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {max(latencies) * 1000:.0f} ms, failed {len(failures)}")
        for f in failures[:5]:
            print("  failure:", f)
    finally:
        reset_engines()
        if home is not None:
            embedded.stop(home)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
