"""Classification and moderation over a synthetic catalogue: N ready assets with random
unit 512-d vectors (the size of ViT-B/32's) in a throwaway embedded PostgreSQL.

Times the catalogue passes (classify dry run and write, moderate dry run and apply,
calibrate) and the ingest hook on one batch. The model is a tiny random CLIP with a
512-d projection: only the prompts go through it, so its size barely matters here.

    PYTHONPATH=. python benchmarks/classify_bench.py --rows 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import psycopg

from assetdb.db.indexes import EMBEDDING_INDEX, vector_index_sql


def main(tmp: Path) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--profile", action="store_true", help="cProfile the classify dry run")
    args = ap.parse_args()

    from assetdb.db import embedded
    from assetdb.embedding.tiny import build_tiny_clip

    server = embedded.start(tmp / "home")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("CREATE DATABASE bench")
    base, _, query = server.partition("?")
    url = base.rsplit("/", 1)[0] + "/bench" + ("?" + query if query else "")
    model_dir = build_tiny_clip(tmp / "clip512", words=["a", "photo", "of"], embed_dim=512)
    os.environ.update(ASSETDB_DATABASE_URL=url, ASSETDB_MODEL=str(model_dir),
                      ASSETDB_HOME=str(tmp / "home"))

    from sqlalchemy import text

    from assetdb.classify import labelling
    from assetdb.classify.auto import apply_auto_classification
    from assetdb.classify.policy import Policy, Rule
    from assetdb.config import Settings
    from assetdb.db import schema
    from assetdb.db.engine import connect, reset_engines
    from assetdb.embedding.encoder import load_encoder

    settings = Settings.from_env()
    encoder = load_encoder(str(model_dir))
    with connect(settings) as conn:
        schema.upgrade(conn, encoder.name, encoder.dimension)
    reset_engines()

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.rows, encoder.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    t = time.perf_counter()
    with psycopg.connect(url) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        # Load without the index, then build it once (as a bulk load would).
        conn.execute(f"DROP INDEX {EMBEDDING_INDEX}")
        with conn.cursor().copy(
            "COPY assets (uri, kind, status, embedding, embedding_model) FROM STDIN "
            "WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "text", "vector", "text"])
            for i, v in enumerate(vectors):
                copy.write_row((f"bench/{i}.jpg", "image", "ready", v, encoder.name))
        conn.execute(vector_index_sql(encoder.dimension))  # the product's index (0006)
    print(f"loaded {args.rows} rows (COPY, then HNSW build): {time.perf_counter() - t:.1f} s")

    labels = [f"label{i}" for i in range(args.labels)]
    templates = ["a photo of a {}.", "a {} photo", "a picture of a {}"]
    policy = Policy(name="bench", rules=(
        Rule(name="r1", texts=("a photo of a knife", "a photo of a gun"), threshold=0.05,
             action="hide", counter_texts=("a photo of a toy",)),
        Rule(name="r2", texts=("a photo of blood",), threshold=0.1, action="flag"),
        Rule(name="r3", texts=("a photo of a cigarette",), threshold=0.1, action="flag"),
    ))

    def timed(name: str, fn) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        print(f"{name:<44} {dt:7.2f} s  {args.rows / dt:9.0f} assets/s")

    if args.profile:
        import cProfile
        import pstats

        with cProfile.Profile() as prof:
            labelling.classify_catalogue(settings, encoder, labels=labels, templates=templates,
                                       dry_run=True, keep_results=False)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return
    timed("classify --dry-run (no per-asset results)", lambda: labelling.classify_catalogue(
        settings, encoder, labels=labels, templates=templates, dry_run=True,
        keep_results=False))
    timed("classify (write labels)", lambda: labelling.classify_catalogue(
        settings, encoder, labels=labels, templates=templates, keep_results=False))
    timed("moderate (3 rules, dry run)", lambda: labelling.moderate(
        settings, encoder, [policy]))
    timed("moderate --apply (3 rules)", lambda: labelling.moderate(
        settings, encoder, [policy], apply=True))
    timed("moderate --calibrate (3 rules)", lambda: labelling.calibrate(
        settings, encoder, [policy]))

    labelling.add_label_set(settings, "bench", labels, templates)
    labelling.save_policy(settings, Policy(name="bench2", rules=tuple(
        Rule(name=f"s{r.name}", texts=r.texts, threshold=r.threshold, action=r.action,
             counter_texts=r.counter_texts) for r in policy.rules)))
    batch = [(i + 1, vectors[i]) for i in range(32)]
    times = []
    for _ in range(7):
        with connect(settings) as conn:
            t0 = time.perf_counter()
            apply_auto_classification(conn, batch, encoder)
            times.append(time.perf_counter() - t0)
    print(f"ingest hook, batch of 32 (1 set, 3 rules): median "
          f"{statistics.median(times[1:]) * 1000:.1f} ms (first, encoding prompts: "
          f"{times[0] * 1000:.1f} ms)")
    with connect(settings) as conn:
        hidden = conn.execute(text("SELECT count(*) FROM assets WHERE hidden")).scalar_one()
        size = conn.execute(text("SELECT pg_size_pretty(pg_relation_size(CAST(:n AS regclass)))"),
                            {"n": EMBEDDING_INDEX}).scalar_one()
    print(f"hidden after apply: {hidden}; HNSW index size now {size}")
    reset_engines()


def run() -> None:
    from assetdb.db import embedded

    tmp = embedded.scratch_home("assetdb-classify-bench-")
    try:
        main(tmp)
    finally:
        from assetdb.db import embedded

        embedded.stop(tmp / "home")


if __name__ == "__main__":
    run()
