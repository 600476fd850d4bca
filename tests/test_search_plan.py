"""When `nearest` takes its HNSW branch it really walks the index, even where the planner
would rather sort every matching row, and it still returns k rows with high recall."""

from __future__ import annotations

import dataclasses

import numpy as np
from sqlalchemy import text

from assetdb.db import schema
from assetdb.db.engine import connect
from assetdb.search.filters import Filters
from assetdb.search.query import nearest


def _fill(settings, rows: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((rows, dim)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    tagged = rng.random(rows) < 0.5
    with connect(settings) as conn:
        model = schema.require_meta(conn)["model"]
        conn.execute(
            text("INSERT INTO assets (uri, kind, status, embedding_model, tags, embedding) "
                 "VALUES (:uri, 'image', 'ready', :model, :tags, :vec)"),
            [{"uri": f"mem://{i}", "model": model, "tags": ["half"] if tagged[i] else [],
              "vec": data[i]} for i in range(rows)],
        )
    with connect(settings) as conn:
        conn.execute(text("ANALYZE assets"))
    return data, tagged


def _hnsw_scans(settings) -> int:
    with connect(settings) as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        return conn.execute(text(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = "
            "'assets_embedding_hnsw'")).scalar_one()


def test_hnsw_branch_uses_the_index_and_finds_the_neighbours(initialised):
    data, tagged = _fill(initialised, 400, 32)
    with connect(initialised) as conn:
        model = schema.require_meta(conn)["model"]
    rng = np.random.default_rng(7)
    before = _hnsw_scans(initialised)
    recalls = []
    for _ in range(5):
        q = rng.standard_normal(32).astype(np.float32)
        q /= np.linalg.norm(q)
        with connect(initialised) as conn:
            hits = nearest(conn, q, k=10, filters=Filters(tags_all=["half"]), model=model,
                           exact_max_rows=0)  # always the HNSW branch
            # Flush this backend's statistics when the transaction ends.
            conn.execute(text("SELECT pg_stat_force_next_flush()"))
        assert len(hits) == 10
        with connect(initialised) as conn:
            ids = conn.execute(text("SELECT id, uri FROM assets")).all()
        row_of = {r.id: int(r.uri.split("//")[1]) for r in ids}
        scores = np.where(tagged, data @ q, -np.inf)
        truth = set(np.argsort(-scores)[:10].tolist())
        found = {row_of[h.id] for h in hits}
        assert all(tagged[r] for r in found)
        recalls.append(len(found & truth) / 10)
    # A sequential scan + sort would be exact but leave the index unused.
    assert _hnsw_scans(initialised) >= before + 5
    assert np.mean(recalls) >= 0.9


def test_exact_branch_is_exact(initialised):
    data, tagged = _fill(initialised, 200, 32, seed=1)
    with connect(initialised) as conn:
        model = schema.require_meta(conn)["model"]
        q = data[3]
        hits = nearest(conn, q, k=10, filters=Filters(tags_all=["half"]), model=model)
        ids = dict(conn.execute(text("SELECT id, uri FROM assets")).all())
    found = [int(ids[h.id].split("//")[1]) for h in hits]
    scores = np.where(tagged, data @ q, -np.inf)
    assert found == np.argsort(-scores)[:10].tolist()
    assert dataclasses.asdict(hits[0])["similarity"] <= 1.0
