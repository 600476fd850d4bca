"""The vector index: its name and build parameters, and the one statement that builds it.

Migration 0001 creates it, a re-embed builds its shadow beside the new column, and the
benchmarks rebuild it: all three render the statement here, so they cannot drift apart.
"""

from __future__ import annotations

import re

EMBEDDING_INDEX = "assets_embedding_hnsw"
MODEL_INDEX = "assets_embedding_model_idx"  # btree on embedding_model (searches filter on it)
FRAMES_INDEX = "asset_frames_embedding_hnsw"  # the moments of videos and documents
OPCLASS = "vector_cosine_ops"  # the product's distance is cosine (`<=>`)
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# The search breadth when ASSETDB_HNSW_EF_SEARCH is unset. `assetdb init` records the
# setting in assetdb_meta under EF_SEARCH_META_KEY and hands it to SEARCH_FUNCTIONS.
DEFAULT_EF_SEARCH = 100
EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
EF_SEARCH_META_KEY = "hnsw_ef_search"
# The SQL functions (migration 0002) that walk the index with that breadth.
SEARCH_FUNCTIONS = (
    "assetdb_nearest(vector, integer)",
    "assetdb_similar(bigint, integer)",
    "assetdb_concept_search(text, integer)",
)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def hnsw_index_sql(
    name: str = EMBEDDING_INDEX, *, table: str = "assets", column: str = "embedding",
    opclass: str = OPCLASS, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION,
    concurrently: bool = False,
) -> str:
    """CREATE INDEX for an HNSW index. Identifiers come from code, never from users; they
    are checked anyway, since DDL cannot take bind parameters."""
    for ident in (name, table, column, opclass):
        if not _IDENTIFIER.match(ident):
            raise ValueError(f"not a plain SQL identifier: {ident!r}")
    how = "CONCURRENTLY " if concurrently else ""
    return (f"CREATE INDEX {how}{name} ON {table} USING hnsw ({column} {opclass}) "
            f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})")
