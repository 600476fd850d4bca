"""How an asset row is stored (migrations 0006 and 0014): the vector, the tags and the
metadata stay in the row, so a filter test reads one heap page and no TOAST, while a value
too large for a page still goes out of line. Checked with 512-d vectors, the size at which
the default toast_tuple_target pushed tags and metadata out of every row."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

DIM = 512


def _out_of_line(conn: psycopg.Connection, uri: str) -> dict[str, bool]:
    row = conn.execute(
        "SELECT pg_column_toast_chunk_id(embedding) IS NOT NULL, "
        "pg_column_toast_chunk_id(tags) IS NOT NULL, "
        "pg_column_toast_chunk_id(metadata) IS NOT NULL, "
        "pg_column_toast_chunk_id(description) IS NOT NULL FROM assets WHERE uri = %s",
        (uri,)).fetchone()
    return dict(zip(("embedding", "tags", "metadata", "description"), row, strict=True))


def test_tags_metadata_and_vector_stay_in_the_row_and_a_long_text_goes_out(database_url):
    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings

    Catalog(Settings.from_env()).init(lambda: SimpleNamespace(name="m512", dimension=DIM))
    rng = np.random.default_rng(0)
    with psycopg.connect(database_url) as conn:
        if conn.info.server_version < 170000:
            pytest.skip("pg_column_toast_chunk_id needs PostgreSQL 17")
        register_vector(conn)
        vec = rng.standard_normal(DIM).astype(np.float32)
        tags = ["sunset", "beach", "campaign-2024", "hero-shot", "approved"]
        meta = Jsonb({"brand": "acme", "photographer": "A. Person", "licence": "CC-BY"})
        long_text = secrets.token_hex(6000)  # 12 KB that pglz cannot shrink much
        for uri, description in (("mem://plain", "a short caption"),
                                 ("mem://long", long_text)):
            conn.execute(
                "INSERT INTO assets (uri, kind, tags, metadata, description, embedding, "
                "embedding_model, status) VALUES (%s, 'image', %s, %s, %s, %s, 'm512', "
                "'ready')", (uri, tags, meta, description, vec))
        conn.commit()
        assert _out_of_line(conn, "mem://plain") == {
            "embedding": False, "tags": False, "metadata": False, "description": False}
        # Too large for a page: the largest value leaves the row, the filters stay.
        assert _out_of_line(conn, "mem://long") == {
            "embedding": False, "tags": False, "metadata": False, "description": True}
        assert conn.execute("SELECT count(*) FROM assets WHERE tags @> %s AND "
                            "metadata @> %s", (["beach"], meta)).fetchone()[0] == 2
