"""Seed rows for the SQL-surface tests: assets with known vectors, inserted with COPY."""

from __future__ import annotations

import json

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from assetdb.sqlsurface.vectors import vector_text


def unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def db_model(url: str) -> tuple[str, int]:
    with psycopg.connect(url) as conn:
        rows = dict(conn.execute("SELECT key, value FROM assetdb_meta").fetchall())
    return rows["model"], int(rows["dimension"])


def insert_assets(url: str, vectors: np.ndarray, *, model: str, prefix: str = "mem://a",
                  metadata: list[dict] | None = None, status: str = "ready",
                  hidden: list[bool] | None = None, tags: list[list[str]] | None = None,
                  start: int = 0, rebuild_index: bool = False) -> list[int]:
    """Insert one asset per vector (uri PREFIX/i); returns the new ids in order."""
    n = len(vectors)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        index = None
        if rebuild_index:
            # Building the HNSW index once is far cheaper than 10,000 single inserts.
            index = cur.execute("SELECT pg_get_indexdef('assets_embedding_hnsw'::regclass)"
                                ).fetchone()[0]
            cur.execute("DROP INDEX assets_embedding_hnsw")
        with cur.copy("COPY assets (uri, kind, title, tags, metadata, embedding, "
                      "embedding_model, embedded_at, status, hidden) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((
                    f"{prefix}/{start + i}", "image", f"asset {start + i}",
                    (tags[i] if tags else []), json.dumps(metadata[i] if metadata else {}),
                    vector_text(vectors[i]), model, "2026-01-01T00:00:00Z", status,
                    bool(hidden[i]) if hidden else False))
        if index:
            cur.execute(index)
        cur.execute("ANALYZE assets")
        cur.execute("SELECT id FROM assets WHERE uri LIKE %s ORDER BY id", (prefix + "/%",))
        ids = [r[0] for r in cur.fetchall()]
    return ids[-n:]


def connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    return conn
