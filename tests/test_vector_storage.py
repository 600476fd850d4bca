"""Embeddings live in the row, not in TOAST (migration 0005): at 512 dimensions a vector is
over PostgreSQL's 2 KB TOAST threshold, and pgvector's default storage moved every one out
of line, costing a TOAST lookup per row read (docs/performance.md)."""

from __future__ import annotations

import numpy as np
import psycopg
from sqlalchemy import text

from assetdb.db import schema
from assetdb.db.engine import connect, libpq_url, reset_engines
from assetdb.search.filters import Filters
from assetdb.search.query import nearest

DIM = 512


def _storage(conn, column: str) -> str:  # noqa: ANN001
    return conn.execute(text(
        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'assets'::regclass "
        "AND attname = :c"), {"c": column}).scalar_one()


def _toasted(conn) -> int:  # noqa: ANN001
    """Rows whose embedding is stored out of line (pg_column_toast_chunk_id: PostgreSQL 17+)."""
    return conn.execute(text(
        "SELECT count(*) FROM assets WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL"
    )).scalar_one()


def _init(settings) -> None:  # noqa: ANN001
    with connect(settings) as conn:
        schema.upgrade(conn, "m512", DIM)
    reset_engines()  # new connections know the vector type the upgrade created


def test_512d_vectors_are_stored_in_the_row_and_read_back_exactly(settings):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _init(settings)
    with connect(settings) as conn:
        assert _storage(conn, "embedding") == "m"
        conn.execute(text(
            "INSERT INTO assets (uri, title, tags, status, embedding, embedding_model) "
            "VALUES (:u, :t, ARRAY['x'], 'ready', :e, 'm512')"),
            [{"u": f"file:///v{i}", "t": "an asset with a title and tags", "e": v}
             for i, v in enumerate(vectors)])
    with connect(settings) as conn:
        assert _toasted(conn) == 0  # with STORAGE EXTERNAL: all 200
        stored = conn.execute(text("SELECT embedding FROM assets ORDER BY id")).scalars().all()
        assert np.array_equal(np.stack(stored), vectors)
        hits = nearest(conn, vectors[7], k=5, filters=Filters(), model="m512")
    assert hits[0].id == 8 and abs(hits[0].similarity - 1.0) < 1e-6


def test_default_storage_would_have_toasted_them(settings):
    """The test above can fail: the same row under pgvector's default storage goes to TOAST."""
    _init(settings)
    with connect(settings) as conn:
        conn.execute(text("ALTER TABLE assets ALTER COLUMN embedding SET STORAGE EXTERNAL"))
        vec = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
        conn.execute(text("INSERT INTO assets (uri, status, embedding) VALUES ('file:///a', "
                          "'ready', :e)"), {"e": vec})
        assert _toasted(conn) == 1
        conn.execute(text("ALTER TABLE assets ALTER COLUMN embedding SET STORAGE MAIN"))
    # What the migration's note tells owners of older catalogues: VACUUM FULL moves them.
    with psycopg.connect(libpq_url(settings), autocommit=True) as raw:
        raw.execute("VACUUM FULL assets")
    with connect(settings) as conn:
        assert _toasted(conn) == 0
