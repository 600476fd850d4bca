"""One home for each fact (issue 14): the search breadth init records reaches the SQL
functions; the index, the vector codec, names, dates and single-image classification
each have one definition that every caller shares; packages import without cycles."""

from __future__ import annotations

import ast
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from assetdb.db import indexes
from assetdb.db.engine import connect
from assetdb.db.vectors import from_binary
from assetdb.errors import AssetdbError, FilterError, SidecarError
from tests.conftest import run_cli
from tests.sql_seed import db_model, insert_assets, unit_vectors

PACKAGE = Path(__file__).resolve().parents[1] / "assetdb"


def _init(monkeypatch: pytest.MonkeyPatch, ef_search: int) -> None:
    monkeypatch.setenv("ASSETDB_HNSW_EF_SEARCH", str(ef_search))
    monkeypatch.setenv("ASSETDB_EXACT_SEARCH_MAX_ROWS", "100")  # 3,000 rows: the index
    result = run_cli("init")
    assert result.exit_code == 0, result.output


def _recall(url: str, vectors: np.ndarray, ids: list[int], queries: np.ndarray) -> float:
    """Mean recall@10 of assetdb_nearest against the exact neighbours."""
    from tests.sql_seed import connect as connect_psycopg

    found = 0
    with connect_psycopg(url) as conn:
        for q in queries:
            got = {r[0] for r in conn.execute("SELECT asset_id FROM assetdb_nearest(%s, 10)",
                                              (q,))}
            exact = {ids[i] for i in np.argsort(-(vectors @ q))[:10]}
            found += len(got & exact)
    return found / (10 * len(queries))


def test_init_records_ef_search_and_the_sql_functions_search_that_wide(
        database_url, monkeypatch):
    _init(monkeypatch, 40)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT value FROM assetdb_meta WHERE key = %s",
                              (indexes.EF_SEARCH_META_KEY,)).fetchone()
        configs = dict(conn.execute(
            "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p "
            "WHERE p.proname = 'assetdb_search'").fetchall())
        exact_max = conn.execute("SELECT value FROM assetdb_meta WHERE key = %s",
                                 (indexes.EXACT_MAX_ROWS_META_KEY,)).fetchone()
    assert stored == ("40",) and exact_max == ("100",)
    assert len(configs) == 1  # assetdb_nearest, _similar and _concept_search call it
    _init(monkeypatch, 40)  # again: nothing to change, nothing written
    assert all("hnsw.ef_search=40" in c and "hnsw.iterative_scan=relaxed_order" in c
               for c in configs.values()), configs

    # The real observable: a narrow breadth misses true neighbours that 200 finds (the
    # breadth is never below k: assetdb.search.plan.ef_search_for).
    model, dim = db_model(database_url)
    vectors = unit_vectors(3000, dim, seed=21)
    ids = insert_assets(database_url, vectors, model=model, rebuild_index=True)
    queries = unit_vectors(20, dim, seed=22)
    _init(monkeypatch, 1)
    narrow = _recall(database_url, vectors, ids, queries)
    _init(monkeypatch, 200)  # init again: the new value replaces the old one
    wide = _recall(database_url, vectors, ids, queries)
    assert wide >= 0.95 and narrow < wide - 0.1, (narrow, wide)

    # The read-only role still runs them (the value travels with the function).
    from assetdb.config import Settings
    from assetdb.sqlsurface.readonly import run_readonly

    result = run_readonly(Settings.from_env(),
                          f"SELECT count(*) AS n FROM assetdb_similar({ids[0]}, 5)")
    assert result.rows == [(5,)]


def test_the_index_is_built_from_one_definition(initialised):
    with connect(initialised) as conn:
        indexdef = conn.execute(text("SELECT pg_get_indexdef(CAST(:n AS regclass))"),
                                {"n": indexes.EMBEDDING_INDEX}).scalar_one()
    dim = int(initialised and db_model(initialised.database_url)[1])
    assert (f"USING hnsw (((embedding)::halfvec({dim})) {indexes.HALF_OPCLASS}) WITH "
            f"(m='{indexes.HNSW_M}', ef_construction='{indexes.HNSW_EF_CONSTRUCTION}')"
            ) in indexdef
    assert indexes.vector_index_sql(64, "x_hnsw", column="embedding_next",
                                    concurrently=True) == (
        "CREATE INDEX CONCURRENTLY x_hnsw ON assets USING hnsw ((embedding_next::halfvec(64)) "
        "halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)")
    for bad in ({"name": "x; DROP TABLE assets"}, {"column": "e)) --"}):
        with pytest.raises(ValueError):
            indexes.vector_index_sql(64, **bad)
    with pytest.raises(ValueError):
        indexes.vector_index_sql(4001)  # beyond pgvector's halfvec HNSW limit


def test_one_vector_codec_for_the_product_and_the_sql_surface(initialised, database_url):
    model, dim = db_model(database_url)
    vector = unit_vectors(1, dim, seed=5)[0]
    [asset_id] = insert_assets(database_url, vector[None], model=model)
    with connect(initialised) as conn:
        row = conn.execute(text("SELECT embedding, vector_send(embedding) AS raw FROM assets "
                                "WHERE id = :i"), {"i": asset_id}).one()
    assert isinstance(row.embedding, np.ndarray) and row.embedding.dtype == np.float32
    assert np.array_equal(from_binary(row.raw), row.embedding)
    from assetdb.sqlsurface.readonly import run_readonly

    result = run_readonly(initialised, f"SELECT embedding FROM assets WHERE id = {asset_id}")
    [[as_list]] = result.rows
    assert isinstance(as_list, list) and np.array_equal(np.float32(as_list), row.embedding)


def test_one_rule_for_dates_names_and_scalars():
    from assetdb.classify.policy import PolicyError
    from assetdb.classify.policy import check_name as policy_name
    from assetdb.ingest.sidecar import parse_datetime
    from assetdb.search.filters import build_filters
    from assetdb.sqlsurface.concepts import check_name as concept_name

    for raw, expected in (("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
                          ("2024-05-01T12:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
                          (" 2024-05-01T12:00+02:00 ", datetime(2024, 5, 1, 10, tzinfo=UTC))):
        assert parse_datetime(raw, "x") == expected
        assert build_filters(captured_after=raw).captured_after == expected
    with pytest.raises(SidecarError, match="cannot read date"):
        parse_datetime("May 1st", "row 3")
    with pytest.raises(FilterError, match="captured after: cannot read 'May 1st' as a date"):
        build_filters(captured_after="May 1st")
    assert build_filters(metadata=["n=00123", "k=42"]).metadata == {"n": "00123", "k": 42}

    assert policy_name("a.b-c_1", "policy name") == "a.b-c_1"
    assert concept_name("brand:acme") == "brand:acme"  # ':' only in concept names
    with pytest.raises(PolicyError, match="policy name 'brand:acme' must be 1-64"):
        policy_name("brand:acme", "policy name")
    with pytest.raises(AssetdbError, match="quoted in SQL"):
        concept_name("bad name")


def test_a_file_and_an_upload_are_classified_by_the_same_rule(encoder, tmp_path):
    from PIL import Image

    from assetdb.classify.labelling import classify_file
    from assetdb.classify.one_image import classify_image

    path = tmp_path / "red.png"
    Image.new("RGB", (40, 40), (220, 30, 30)).save(path)
    labels = ["red", "green", "blue"]
    from_file = classify_file(encoder, path, labels)
    with Image.open(path) as image:
        from_upload = classify_image(encoder, image.convert("RGB"), labels)
    assert from_file == from_upload
    assert sorted(r["label"] for r in from_file) == sorted(labels)
    assert sum(r["probability"] for r in from_file) == pytest.approx(1, abs=1e-4)


def test_stats_counts_come_from_the_catalogue_service(initialised, database_url):
    from assetdb.catalog.stats import catalogue_stats

    model, dim = db_model(database_url)
    insert_assets(database_url, unit_vectors(3, dim), model=model)
    insert_assets(database_url, unit_vectors(1, dim), model=model, prefix="mem://p",
                  status="pending")
    data = catalogue_stats(initialised)
    assert (data["total"], data["by_status"], data["by_model"]) == (
        4, {"ready": 3, "pending": 1}, {model: 4})
    assert data["dimension"] == dim and data["model"] == model


def _package_imports() -> dict[str, set[str]]:
    """Which of assetdb's top-level packages/modules each one imports (lazy imports too)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        source = parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                bits = name.split(".")
                if bits[0] == "assetdb" and len(bits) > 1 and bits[1] != source:
                    edges[source].add(bits[1])
    return edges


def test_search_and_ingest_do_not_import_each_other():
    edges = _package_imports()
    assert "search" in edges["ingest"]  # the walk sees real imports (re-embed filters)
    assert "ingest" not in edges["search"], "search must not import ingest"


def test_no_import_cycle_between_packages():
    edges = _package_imports()
    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a]
                    if a < b and a in edges.get(b, ()))
    assert cycles == []
