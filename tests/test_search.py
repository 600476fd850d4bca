"""Text, image and by-asset search with every filter, against the real database.

Most tests seed vectors directly (fast, and exact answers are known); the CLI tests go
through ingest and the tiny model end to end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from assetdb.config import Settings
from assetdb.db.engine import connect
from assetdb.errors import FilterError
from assetdb.search.filters import build_filters, check_min_similarity
from assetdb.search.query import explain
from assetdb.search.searches import search_vector, similar_to_asset
from tests.conftest import run_cli
from tests.images import noise, solid

DIM = 32


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def seed(settings: Settings, vectors: np.ndarray, **columns) -> list[int]:
    """Insert ready rows with these vectors; `columns` maps a column to a per-row function."""
    with connect(settings) as conn:
        model = conn.execute(text("SELECT value FROM assetdb_meta WHERE key = 'model'")).scalar()
        # Building the HNSW index once after the load is far cheaper than growing it row
        # by row (as `CREATE INDEX` after a bulk load is in production too).
        indexdef = conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'assets_embedding_hnsw'")).scalar()
        conn.execute(text("DROP INDEX assets_embedding_hnsw"))
        params = []
        for i, vec in enumerate(vectors):
            row = {"uri": f"/seed/{i}.jpg", "title": f"asset {i}", "embedding": vec,
                   "model": model, "kind": "image", "tags": [], "metadata": "{}",
                   "captured_at": None, "created_at": datetime(2024, 1, 1, tzinfo=UTC),
                   "hidden": False}
            row.update({k: f(i) for k, f in columns.items()})
            params.append(row)
        conn.execute(text(
            "INSERT INTO assets (uri, title, embedding, embedding_model, status, kind, tags, "
            "metadata, captured_at, created_at, hidden) VALUES (:uri, :title, :embedding, "
            ":model, 'ready', :kind, :tags, CAST(:metadata AS jsonb), :captured_at, "
            ":created_at, :hidden)"), params)
        ids = conn.execute(text("SELECT id FROM assets ORDER BY id")).scalars().all()
        conn.execute(text(indexdef))
    with connect(settings) as conn:
        conn.execute(text("ANALYZE assets"))  # what autovacuum would do after a bulk load
    return list(ids)


def exact_order(vectors: np.ndarray, query: np.ndarray, mask: np.ndarray) -> list[int]:
    dist = 1.0 - vectors @ query
    idx = np.flatnonzero(mask)
    return list(idx[np.argsort(dist[idx], kind="stable")])


@pytest.fixture
def five_thousand(initialised):
    rng = np.random.default_rng(42)
    vectors = unit(rng, 5000)
    ids = seed(initialised, vectors, tags=lambda i: ["rare"] if i % 100 == 7 else ["common"])
    return initialised, vectors, ids, rng


def test_one_percent_filter_returns_exactly_k_in_exact_order(five_thousand):
    settings, vectors, ids, rng = five_thousand
    mask = np.array([i % 100 == 7 for i in range(5000)])  # 50 rows = 1%
    for _ in range(5):
        q = unit(rng, 1)[0]
        hits = search_vector(settings, q, k=10, filters=build_filters(tag=["rare"]))
        expected = [ids[i] for i in exact_order(vectors, q, mask)[:10]]
        assert [h.id for h in hits] == expected
        np.testing.assert_allclose([h.similarity for h in hits],
                                   [float(vectors[ids.index(i)] @ q) for i in expected],
                                   atol=1e-5)
    # asking for more than match: all 50, never more
    hits = search_vector(settings, q, k=80, filters=build_filters(tag=["rare"]))
    assert len(hits) == 50


def test_hnsw_plan_with_iterative_scan_returns_k_rows(five_thousand, monkeypatch):
    settings, vectors, ids, rng = five_thousand
    monkeypatch.setenv("ASSETDB_EXACT_SEARCH_MAX_ROWS", "0")  # force the index path
    hnsw_settings = Settings.from_env()
    mask = np.array([i % 100 == 7 for i in range(5000)])
    recall = []
    for _ in range(5):
        q = unit(rng, 1)[0]
        hits = search_vector(hnsw_settings, q, k=10, filters=build_filters(tag=["rare"]))
        assert len(hits) == 10  # pgvector's iterative scan keeps going past filtered rows
        sims = [h.similarity for h in hits]
        assert sims == sorted(sims, reverse=True)
        expected = {ids[i] for i in exact_order(vectors, q, mask)[:10]}
        recall.append(len(expected & {h.id for h in hits}) / 10)
        unfiltered = search_vector(hnsw_settings, q, k=10)
        exact_all = [ids[i] for i in exact_order(vectors, q, np.ones(5000, bool))[:10]]
        recall.append(len(set(exact_all) & {h.id for h in unfiltered}) / 10)
    assert np.mean(recall) >= 0.9
    with connect(settings) as conn:
        plan = explain(conn, unit(rng, 1)[0], 10, build_filters(), settings.model)
    assert "assets_embedding_hnsw" in plan


def test_every_filter(initialised):
    rng = np.random.default_rng(1)
    vectors = unit(rng, 40)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    ids = seed(
        initialised, vectors,
        kind=lambda i: "animation" if i % 4 == 0 else "image",
        tags=lambda i: [t for t, on in (("red", i % 2 == 0), ("car", i % 3 == 0),
                                        ("sale", i % 5 == 0)) if on],
        metadata=lambda i: json.dumps({"brand": "acme" if i < 20 else "zeta", "n": i,
                                       "code": f"{i:03d}"}),
        captured_at=lambda i: base + timedelta(days=i),
        created_at=lambda i: base + timedelta(days=100 + i),
    )
    q = unit(rng, 1)[0]

    def got(min_similarity: float | None = None, **kw) -> set[int]:
        hits = search_vector(initialised, q, k=100, filters=build_filters(**kw),
                             min_similarity=min_similarity)  # a search option, not a filter
        return {ids.index(h.id) for h in hits}

    everything = set(range(40))
    assert got() == everything
    assert got(kinds=["animation"]) == {i for i in everything if i % 4 == 0}
    assert got(tag=["red", "car"]) == {i for i in everything if i % 6 == 0}
    assert got(tag=["red,car"]) == {i for i in everything if i % 6 == 0}
    assert got(any_tag=["car", "sale"]) == {i for i in everything if i % 3 == 0 or i % 5 == 0}
    assert got(metadata=["brand=zeta"]) == set(range(20, 40))
    assert got(metadata=["brand=acme", "n=7"]) == {7}
    assert got(metadata=["code=007"]) == {7}  # leading zeros: a string, as stored
    assert got(metadata=['n="7"']) == set()  # quoted: the string "7", not the number
    assert got(captured_after="2024-01-05", captured_before="2024-01-10") == set(range(4, 10))
    assert got(created_after="2024-04-30T00:00") == set(range(20, 40))
    sims = {ids.index(h.id): h.similarity for h in search_vector(initialised, q, k=100)}
    ordered = sorted(sims.values())
    cut = (ordered[29] + ordered[30]) / 2  # between two stored values: no rounding ties
    assert got(min_similarity=cut) == {i for i, s in sims.items() if s >= cut}
    assert len(got(min_similarity=cut)) == 10
    assert got(kinds=["image"], tag=["red"], metadata=["brand=acme"]) == {
        i for i in range(20) if i % 2 == 0 and i % 4 != 0}


def test_hidden_assets_are_left_out_unless_asked(initialised):
    rng = np.random.default_rng(3)
    ids = seed(initialised, unit(rng, 6), hidden=lambda i: i < 2)
    q = unit(rng, 1)[0]
    assert {h.id for h in search_vector(initialised, q, k=10)} == set(ids[2:])
    shown = search_vector(initialised, q, k=10, filters=build_filters(include_hidden=True))
    assert {h.id for h in shown} == set(ids)


@pytest.mark.parametrize("kwargs, message", [
    ({"metadata": ["brand"]}, "must look like key=value"),
    ({"metadata": ["=x"]}, "must look like key=value"),
    ({"kinds": ["hologram"]}, "unknown kind 'hologram'"),
    ({"captured_after": "last tuesday"}, "cannot read 'last tuesday' as a date"),
    ({"created_after": "2024-05-01", "created_before": "2024-01-01"}, "date range is empty"),
])
def test_malformed_filters_are_clear_errors(kwargs, message):
    with pytest.raises(FilterError, match=message):
        build_filters(**kwargs)


def test_min_similarity_out_of_range_is_a_clear_error(initialised):
    with pytest.raises(FilterError, match="between -1 and 1"):
        check_min_similarity(2.0)
    with pytest.raises(FilterError, match="between -1 and 1"):
        search_vector(initialised, np.ones(4, np.float32), min_similarity=2.0)


def test_similar_by_id_leaves_the_asset_out(initialised):
    rng = np.random.default_rng(5)
    vectors = unit(rng, 30)
    ids = seed(initialised, vectors)
    hits = similar_to_asset(initialised, ids[3], k=5)
    assert ids[3] not in [h.id for h in hits] and len(hits) == 5
    mask = np.ones(30, bool)
    mask[3] = False
    assert [h.id for h in hits] == [ids[i] for i in exact_order(vectors, vectors[3], mask)[:5]]


def test_cli_search_and_similar_end_to_end(initialised, tmp_path):
    folder = tmp_path / "imgs"
    for i in range(6):
        noise(folder / f"n{i}.png", seed=i)
    solid(folder / "red.png", (220, 20, 20))
    sidecar = tmp_path / "m.csv"
    sidecar.write_text("image_path,tags,brand\nimgs/red.png,\"red,product\",acme\n"
                       "imgs/n1.png,product,zeta\n")
    assert run_cli("ingest", str(folder), "-m", str(sidecar)).exit_code == 0

    result = run_cli("search", "a red square", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    assert set(hits[0]) >= {"id", "uri", "title", "similarity"}
    assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits),
                                                     reverse=True)
    filtered = json.loads(run_cli("search", "red", "--tag", "product", "--meta", "brand=acme",
                                  "--json").stdout)
    assert [h["title"] for h in filtered] == ["red"]
    table = run_cli("search", "red", "-k", "2")
    assert "similarity" in table.stdout and table.stdout.count("\n") == 4

    red_id = filtered[0]["id"]
    by_id = json.loads(run_cli("similar", str(red_id), "-k", "10", "--json").stdout)
    assert red_id not in [h["id"] for h in by_id] and len(by_id) == 6
    # By file nothing is left out (the API's image search does the same): the catalogued
    # file itself comes first at 1.0, then what `similar ID` gives, in the same order.
    by_path = json.loads(run_cli("similar", str(folder / "red.png"), "--json").stdout)
    assert by_path[0]["id"] == red_id and by_path[0]["similarity"] > 0.999
    assert [h["id"] for h in by_path[1:]] == [h["id"] for h in by_id]
    outside = solid(tmp_path / "outside.png", (220, 20, 20))
    by_file = json.loads(run_cli("similar", str(outside), "-k", "1", "--json").stdout)
    assert by_file[0]["id"] == red_id and by_file[0]["similarity"] > 0.999
    narrowed = json.loads(run_cli("similar", str(red_id), "--tag", "product", "--json").stdout)
    assert [h["title"] for h in narrowed] == ["n1"]


def test_cli_errors(initialised, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"junk")
    run_cli("ingest", str(tmp_path / "broken.png"))
    for args, message in [
        (["similar", "999999"], "no asset with id 999999"),
        (["similar", "1"], "has no embedding (status failed"),
        (["similar", "no/such/file.png"], "neither an asset id nor an existing file"),
        (["search", "x", "--meta", "oops"], "must look like key=value"),
        (["search", "x", "-k", "0"], "0 is not in the range 1<=x<=1000"),
        (["search", "   "], "the search text is empty"),
    ]:
        result = run_cli(*args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_without_assetdb_model_the_database_model_is_used(initialised, tmp_path, monkeypatch):
    noise(tmp_path / "a.png", 1)
    assert run_cli("ingest", str(tmp_path / "a.png")).exit_code == 0
    monkeypatch.delenv("ASSETDB_MODEL")  # the default model is not on this machine
    result = run_cli("search", "red", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 1
