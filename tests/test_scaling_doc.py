"""docs/scaling.md's partitioning recipe runs verbatim against the real embedded server:
its ```sql blocks that start with `-- partitioning` turn a seeded catalogue's `assets` into
a table partitioned by kind with one HNSW graph per partition. Then the product's own
searches (CLI path and SQL functions) still return the exact neighbours, a kind filter
scans only its partition, and ingest fails as the doc says it does."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import psycopg
import pytest

from assetdb.config import Settings
from assetdb.search.filters import build_filters
from assetdb.search.searches import search_vector
from tests.conftest import run_cli
from tests.images import noise
from tests.sql_seed import db_model, insert_assets, unit_vectors

DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"
BLOCK = re.compile(r"^```sql\n(-- partitioning.*?)^```", re.S | re.M)
KINDS = ["image", "animation", None]  # row i gets KINDS[i % 3]; None: a failed probe


def recipe() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def test_the_doc_has_the_recipe():
    blocks = recipe()
    assert len(blocks) >= 3
    assert any("PARTITION BY LIST (kind)" in b for b in blocks)
    assert any("RENAME TO assets" in b for b in blocks)


@pytest.fixture
def partitioned(initialised: Settings, database_url: str) -> tuple[np.ndarray, list]:
    model, dim = db_model(database_url)
    vectors = unit_vectors(300, dim, seed=5)
    ids = insert_assets(database_url, vectors, model=model)
    kinds = [KINDS[i % 3] for i in range(len(ids))]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE assets SET kind = k FROM unnest(%s::bigint[], %s::text[]) "
                     "AS u(i, k) WHERE id = u.i", (ids, kinds))
        for block in recipe():
            conn.execute(block)
    return vectors, list(zip(ids, kinds, strict=True))


def _exact(vectors: np.ndarray, rows: list, q: np.ndarray, keep, k: int = 10) -> list[int]:
    scored = [(float(vectors[i] @ q), row[0]) for i, row in enumerate(rows) if keep(row)]
    return [asset_id for _, asset_id in sorted(scored, reverse=True)[:k]]


def test_searches_run_unchanged_on_a_table_partitioned_by_kind(partitioned, settings,
                                                               database_url):
    vectors, rows = partitioned
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'assets'"
                            ).fetchone()[0] == "p"
        graphs = conn.execute(
            "SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
            "JOIN pg_index x ON x.indrelid = c.oid JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_am am ON am.oid = i.relam "
            "WHERE h.inhparent = 'assets'::regclass AND am.amname = 'hnsw' ORDER BY 1").fetchall()
        assert [g[0] for g in graphs] == ["assets_animation", "assets_image", "assets_other"]
        # Each partition keeps migration 0014's setting: tags and metadata in the row.
        options = conn.execute(
            "SELECT c.relname, c.reloptions FROM pg_inherits h JOIN pg_class c "
            "ON c.oid = h.inhrelid WHERE h.inhparent = 'assets'::regclass ORDER BY 1"
        ).fetchall()
        assert options == [(name, ["toast_tuple_target=8160"]) for name in
                           ("assets_animation", "assets_image", "assets_other")]
        assert conn.execute("SELECT count(*) FROM assets_other WHERE kind IS NULL"
                            ).fetchone()[0] == 100
    q = unit_vectors(1, vectors.shape[1], seed=9)[0]
    hits = search_vector(settings, q, k=10, filters=build_filters(kind=["animation"]))
    assert [h.id for h in hits] == _exact(vectors, rows, q, lambda r: r[1] == "animation")
    hits = search_vector(settings, q, k=10)
    assert [h.id for h in hits] == _exact(vectors, rows, q, lambda r: True)
    some = rows[0][0]
    with psycopg.connect(database_url) as conn:
        similar = [r[0] for r in conn.execute("SELECT asset_id FROM assetdb_similar(%s, 5)",
                                              (some,))]
        assert similar == _exact(vectors, rows, vectors[0], lambda r: r[0] != some, k=5)
        # 100 rows a partition: left alone the planner sorts them; with the other paths
        # priced out, what remains is whether the pruned partition's own graph is there.
        for path in ("seqscan", "bitmapscan", "sort"):
            conn.execute(f"SET enable_{path} = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN (COSTS OFF) SELECT id FROM assets WHERE kind IN ('animation') "
            f"AND status = 'ready' ORDER BY embedding::halfvec({len(q)}) "
            f"<=> %s::vector::halfvec({len(q)}) LIMIT 10",  # the index's expression (0006)
            (str(q.tolist()),)))
    assert "assets_animation_embedding" in plan, plan  # that partition's own graph ...
    assert "assets_image" not in plan and "assets_other" not in plan, plan  # ... alone


def test_ingest_into_a_partitioned_table_fails_as_documented(partitioned, tmp_path):
    noise(tmp_path / "new.png", seed=3)
    result = run_cli("ingest", str(tmp_path / "new.png"))
    assert result.exit_code != 0
    assert "ON CONFLICT" in result.output or "unique or exclusion constraint" in result.output
    assert "ON CONFLICT (uri)" in DOC.read_text()
