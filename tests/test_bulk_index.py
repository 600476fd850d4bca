"""Bulk loads build the vector index once after loading (issue 15, item 5), and a
catalogue left without its index (a bulk load cut short) gets it back from `init`."""

from __future__ import annotations

import json

import psycopg

from assetdb.db import indexes
from tests.conftest import run_cli
from tests.images import noise


def _index(url: str) -> tuple[int, str] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT c.oid::bigint, pg_get_indexdef(c.oid) FROM pg_class c "
                           "WHERE c.relname = %s", (indexes.EMBEDDING_INDEX,)).fetchone()
    return None if row is None else (row[0], row[1])


def test_a_bulk_load_builds_the_index_once_after_loading(initialised, database_url,
                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("ASSETDB_BULK_INDEX_MIN_ROWS", "4")
    before = _index(database_url)
    assert before is not None and "halfvec" in before[1]
    for i in range(5):
        noise(tmp_path / "pics" / f"{i}.png", seed=i)
    result = run_cli("ingest", str(tmp_path / "pics"))
    assert result.exit_code == 0, result.output
    assert "bulk load: the vector index is dropped" in result.output
    assert "building the vector index over 5 rows" in result.output
    assert "vector index built once after loading" in result.output
    after = _index(database_url)
    assert after is not None and after[0] != before[0]  # a new index, built once
    assert after[1] == before[1]  # from the same definition
    with psycopg.connect(database_url) as conn:
        valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s",
                             (after[0],)).fetchone()[0]
    assert valid
    # A small ingest into the now larger catalogue keeps the index (row by row).
    noise(tmp_path / "more" / "x.png", seed=99)
    result = run_cli("ingest", str(tmp_path / "more"), "--json")
    assert json.loads(result.stdout)["index_built_after_load"] is False
    assert _index(database_url)[0] == after[0]


def test_init_rebuilds_a_missing_index(initialised, database_url, tmp_path):
    for i in range(3):
        noise(tmp_path / f"{i}.png", seed=i)
    assert run_cli("ingest", str(tmp_path)).exit_code == 0
    with psycopg.connect(database_url) as conn:
        conn.execute(indexes.drop_vector_index_sql())
    assert _index(database_url) is None
    assert run_cli("init").exit_code == 0
    assert _index(database_url) is not None
    result = run_cli("search", "red circle", "-k", "2", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2


def test_the_build_plan_sizes_memory_for_the_graph():
    plan = indexes.build_plan(1_000_000, 512, memory=24 * 2**30, cpus=2)
    assert plan.fits and plan.parallel_workers == 1
    assert 1_200 <= plan.maintenance_work_mem_mb <= 3_000
    small = indexes.build_plan(1_000_000, 512, memory=2 * 2**30, cpus=2)
    assert not small.fits and "needs about" in small.note and small.maintenance_work_mem_mb
