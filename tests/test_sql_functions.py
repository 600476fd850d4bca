"""The SQL functions of migration 0002, against the real embedded PostgreSQL: the product's
search rules, exact results on small sets, and the HNSW plan inside the functions."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.sql_seed import connect, db_model, insert_assets, unit_vectors


def _exact(vectors: np.ndarray, ids: list[int], query: np.ndarray, k: int,
           allowed: set[int]) -> list[int]:
    sims = vectors @ query
    order = sorted((i for i in range(len(ids)) if ids[i] in allowed), key=lambda i: -sims[i])
    return [ids[i] for i in order[:k]]


def _add_concept(conn, name: str, vector: np.ndarray, model: str) -> None:
    conn.execute("INSERT INTO assetdb_concepts (name, text, vector, model) "
                 "VALUES (%s, %s, %s, %s)", (name, name, vector, model))


def test_functions_follow_the_search_rules(initialised, database_url):
    model, dim = db_model(database_url)
    vectors = unit_vectors(40, dim, seed=3)
    hidden = [i % 7 == 1 for i in range(40)]
    ids = insert_assets(database_url, vectors, model=model, hidden=hidden)
    pending = insert_assets(database_url, unit_vectors(5, dim, seed=4), model=model,
                            prefix="mem://pending", status="pending")
    other = insert_assets(database_url, unit_vectors(5, dim, seed=5), model="another-model",
                          prefix="mem://other")
    visible = {ids[i] for i in range(40) if not hidden[i]}
    with connect(database_url) as conn:
        # assetdb_similar: the query asset left out, hidden/pending/other-model never returned
        rows = conn.execute("SELECT asset_id, similarity FROM assetdb_similar(%s, 10)",
                            (ids[0],)).fetchall()
        assert [r[0] for r in rows] == _exact(vectors, ids, vectors[0], 10, visible - {ids[0]})
        expected_sims = [float(vectors[ids.index(r[0])] @ vectors[0]) for r in rows]
        assert [r[1] for r in rows] == pytest.approx(expected_sims, abs=1e-5)
        assert all(a[1] >= b[1] for a, b in zip(rows, rows[1:], strict=False))
        # k larger than the searchable set: every searchable asset but the query, once
        everything = conn.execute("SELECT asset_id FROM assetdb_similar(%s, 500)",
                                  (ids[0],)).fetchall()
        assert {r[0] for r in everything} == visible - {ids[0]}
        # an asset without a vector of the database's model has no neighbours
        for asset_id in (pending[0], other[0], 10**9):
            assert conn.execute("SELECT * FROM assetdb_similar(%s, 5)",
                                (asset_id,)).fetchall() == []

        # assetdb_nearest with a pasted vector, and assetdb_concept_search
        query = unit_vectors(1, dim, seed=9)[0]
        near = conn.execute("SELECT asset_id FROM assetdb_nearest(%s, 7)", (query,)).fetchall()
        assert [r[0] for r in near] == _exact(vectors, ids, query, 7, visible)
        _add_concept(conn, "probe", query, model)
        found = conn.execute("SELECT asset_id FROM assetdb_concept_search('probe', 7)"
                             ).fetchall()
        assert [r[0] for r in found] == [r[0] for r in near]
        stored = conn.execute("SELECT assetdb_concept_vector('probe')").fetchone()[0]
        assert np.allclose(stored.to_numpy(), query, atol=1e-6)
        assert conn.execute("SELECT assetdb_model()").fetchone()[0] == model
        # a concept made by another model (stale after a switch) matches nothing
        _add_concept(conn, "stale", query, "another-model")
        assert conn.execute("SELECT * FROM assetdb_concept_search('stale', 5)").fetchall() == []
        assert conn.execute("SELECT * FROM assetdb_concept_search('nope', 5)").fetchall() == []
        assert conn.execute("SELECT assetdb_concept_vector('stale')").fetchone()[0] is None

        # usable in joins and LATERAL
        pairs = conn.execute(
            "SELECT a.id, s.asset_id FROM assets a "
            "CROSS JOIN LATERAL assetdb_similar(a.id, 2) s "
            "WHERE a.id = ANY(%s) ORDER BY a.id, s.similarity DESC", (ids[:3],)).fetchall()
        for i in range(3):
            assert [p[1] for p in pairs if p[0] == ids[i]] == _exact(
                vectors, ids, vectors[i], 2, visible - {ids[i]})
    assert pending and other


def _plans(conn, sql: str, params: tuple = ()) -> list[str]:
    """The plans of every statement the query runs, nested ones included (auto_explain
    reports them as notices), so the plan inside a function is visible."""
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for name, value in (("log_min_duration", "0"), ("log_nested_statements", "on"),
                        ("log_level", "notice")):
        conn.execute(f"SET auto_explain.{name} = {value}")
    conn.execute(sql, params).fetchall()
    conn.execute("SET auto_explain.log_min_duration = -1")
    return notices


def test_functions_use_the_hnsw_index_with_10000_assets(initialised, database_url,
                                                        monkeypatch):
    model, dim = db_model(database_url)
    vectors = unit_vectors(10_000, dim, seed=11)
    ids = insert_assets(database_url, vectors, model=model, rebuild_index=True)
    # init records the threshold the functions read: below the table's size, so the
    # unfiltered searches walk the index (assetdb.search.plan).
    monkeypatch.setenv("ASSETDB_EXACT_SEARCH_MAX_ROWS", "1000")
    assert run_cli("init").exit_code == 0
    with connect(database_url) as conn:
        _add_concept(conn, "probe", vectors[1], model)
        for sql, params in (
            ("SELECT * FROM assetdb_similar(%s, 10)", (ids[0],)),
            ("SELECT * FROM assetdb_concept_search('probe', 10)", ()),
            ("SELECT * FROM assetdb_nearest(%s, 10)", (vectors[2],)),
            ("SELECT a.id, s.* FROM assets a CROSS JOIN LATERAL assetdb_similar(a.id, 3) s "
             "WHERE a.id = ANY(%s)", (ids[:2],)),
        ):
            inner = [p for p in _plans(conn, sql, params) if "FROM assets a" in p
                     and "array_agg(id ORDER BY d, id)" in p]
            assert inner, f"no nested plan reported for {sql}"
            for plan in inner:
                assert "Index Scan using assets_embedding_hnsw on assets a" in plan, plan
                assert f"Order By: ((embedding)::halfvec({dim}) <=> " in plan, plan
                assert "Seq Scan on assets" not in plan, plan

        # The iterative scan: hide the 300 nearest neighbours of asset 0 (more than
        # ef_search), and k rows still come back, none of them hidden.
        order = np.argsort(-(vectors @ vectors[0]))
        near = [ids[i] for i in order[1:301]]
        conn.execute("UPDATE assets SET hidden = true WHERE id = ANY(%s)", (near,))
        rows = conn.execute("SELECT asset_id FROM assetdb_similar(%s, 10)",
                            (ids[0],)).fetchall()
        assert len(rows) == 10
        assert not {r[0] for r in rows} & set(near) and ids[0] not in {r[0] for r in rows}
