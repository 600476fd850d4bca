"""Text query end to end with the ViT-B/32 architecture (random weights): through the CLI
(a new process per query: start-up, model load, encode, SQL) and through a long-lived
process with a warm model (`assetdb.search.searches.search_text`); and `assetdb --help`
start-up time.

    python -m benchmarks.query_latency --rows 10000 --out benchmarks/results/query.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    Timer,
    bench_database,
    build_vit_b32,
    init_database,
    machine,
    median,
    percentile,
    report,
)

QUERIES = ["a photo of a dog", "sunset over a brutalist concrete building", "red sneakers",
           "a cat sleeping on a sofa", "aerial view of a harbour", "portrait in soft light"]


def wall(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def fill(url: str, model: str, rows: int) -> None:
    """rows clustered vectors tagged with the model's name (what ingest would leave)."""
    import psycopg
    from pgvector.psycopg import register_vector

    from benchmarks.vector_search import clustered

    data, _ = clustered(rows, 1)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        with conn.cursor() as cur, cur.copy(
            "COPY assets (uri, title, kind, status, embedding_model, embedding) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "text", "text", "text", "vector"])
            for i, vec in enumerate(data):
                copy.write_row([f"synthetic://{i}", f"asset {i}", "image", "ready", model, vec])
        conn.execute("VACUUM ANALYZE assets")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000, help="catalogue size")
    ap.add_argument("--cli-runs", type=int, default=3)
    ap.add_argument("--warm-queries", type=int, default=30)
    ap.add_argument("--help-runs", type=int, default=5)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()

    info = machine()
    model_dir = build_vit_b32()
    assetdb_bin = str(Path(sys.executable).parent / "assetdb")
    env = dict(os.environ)
    result: dict[str, Any] = {"machine": info, "rows": args.rows}

    help_times = wall([assetdb_bin, "--help"], env, args.help_runs)
    python_times = wall([sys.executable, "-c", "pass"], env, args.help_runs)
    startup = [
        {"command": "assetdb --help", "median_s": round(median(help_times), 3),
         "max_s": round(max(help_times), 3)},
        {"command": "python -c pass (floor)", "median_s": round(median(python_times), 3),
         "max_s": round(max(python_times), 3)},
    ]
    result["startup"] = startup

    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings
    from assetdb.db import embedded
    from assetdb.db.engine import reset_engines
    from assetdb.embedding.encoder import canonical_model_name, load_encoder

    with tempfile.TemporaryDirectory(prefix="assetdb-qbench-") as tmp:
        home = Path(tmp)

        home.chmod(0o711)  # the server may run as another user (under root)
        os.environ["ASSETDB_HOME"] = env["ASSETDB_HOME"] = str(home)
        try:
            with bench_database(home, "bench_query") as url:
                model = canonical_model_name(str(model_dir))
                init_database(url, model, 512)
                fill(url, model, args.rows)
                env.update(ASSETDB_DATABASE_URL=url, ASSETDB_MODEL=model)
                cli_times = wall([assetdb_bin, "search", QUERIES[1], "-k", "10", "--json"],
                                 env, args.cli_runs)

                settings = Settings.from_env()
                with Timer() as t_load:
                    encoder = load_encoder(model)
                Catalog(settings).search_text(encoder, QUERIES[0], k=10)  # warm connection + caches
                total, encode, sql = [], [], []
                for i in range(args.warm_queries):
                    q = QUERIES[i % len(QUERIES)] + f" {i}"
                    with Timer() as t:
                        hits = Catalog(settings).search_text(encoder, q, k=10)
                    total.append(t.seconds * 1000)
                    if len(hits) != 10:
                        raise SystemExit(f"expected 10 hits, got {len(hits)}")
                    with Timer() as t:
                        vec = encoder.encode_texts([q])[0]
                    encode.append(t.seconds * 1000)
                    with Timer() as t:
                        Catalog(settings).search_vector(vec, k=10)
                    sql.append(t.seconds * 1000)
        finally:
            reset_engines()
            embedded.stop(home)

    text_rows = [
        {"path": "CLI: assetdb search ... --json (new process)", "queries": args.cli_runs,
         "p50_ms": round(median(cli_times) * 1000), "p95_ms": round(max(cli_times) * 1000)},
        {"path": "long-lived process: search_text (warm model)", "queries": args.warm_queries,
         "p50_ms": round(median(total), 1), "p95_ms": round(percentile(total, 95), 1)},
        {"path": "  of which: encode_texts", "queries": args.warm_queries,
         "p50_ms": round(median(encode), 1), "p95_ms": round(percentile(encode, 95), 1)},
        {"path": "  of which: search_vector (SQL)", "queries": args.warm_queries,
         "p50_ms": round(median(sql), 1), "p95_ms": round(percentile(sql, 95), 1)},
    ]
    result["model_load_seconds_in_process"] = round(t_load.seconds, 2)
    result["text_query"] = text_rows
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report("text query and start-up", result,
           {"start-up": startup, f"text query, k=10, {args.rows} rows": text_rows}, args.out)


if __name__ == "__main__":
    main()
