"""Keyword and hybrid search (migrations 0007 and 0012, assetdb.search.hybrid) against the
real database: the search text follows what people write, without rewriting `assets`;
codes, prefixes, file names, other scripts; every filter on both sides; the fusion rule
and the SQL functions agree; common words rank a bounded candidate set; bad queries stay
safe. OCR has its own file (test_ocr.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from sqlalchemy import String, cast, literal, or_, text
from sqlalchemy.dialects.postgresql import TSQUERY

from assetdb.config import Settings
from assetdb.db.engine import connect
from assetdb.db.roles import reader_conninfo
from assetdb.errors import ConfigError, FilterError
from assetdb.ingest.ingest_files import ingest
from assetdb.search import hybrid, keyword
from assetdb.search.filters import build_filters
from assetdb.search.query import where_clauses
from tests.api_support import make_catalogue
from tests.conftest import run_cli
from tests.images import noise


def kw(settings: Settings, query: str, **options) -> list[int]:
    return [h.id for h in hybrid.search(settings, query, mode="keyword", **options).hits]


def text_row(settings: Settings, asset_id: int) -> dict:
    with connect(settings) as conn:
        return dict(conn.execute(text("SELECT * FROM asset_text WHERE asset_id = :i"),
                                 {"i": asset_id}).one()._mapping)


def xmin(settings: Settings, asset_id: int) -> str:
    """The row version of an assets row: it changes when the row is rewritten."""
    with connect(settings) as conn:
        return conn.execute(text("SELECT xmin::text FROM assets WHERE id = :i"),
                            {"i": asset_id}).scalar_one()


@pytest.fixture
def catalogue(initialised: Settings, encoder, tmp_path: Path) -> dict[str, int]:
    return make_catalogue(initialised, encoder, tmp_path)


def test_search_text_follows_ingest_and_sidecar_updates(catalogue, initialised, encoder,
                                                        tmp_path):
    settings = initialised
    red = catalogue["red-1.png"]
    row = text_row(settings, red)
    assert row["title"] == "Red poster" and row["file_name"] == "red-1.png"
    assert "acme" in row["meta"] and "poster" in row["tags"]
    assert kw(settings, "spring") == [red]  # the description
    assert kw(settings, "zenith", k=50) == sorted(
        catalogue[n] for n in ("blue-1.png", "green-1.png", "noise-2.png"))  # metadata
    # A re-ingest with a new sidecar: the old words stop matching, the new ones match.
    sidecar = tmp_path / "new.json"
    sidecar.write_text(json.dumps({"assets/red-1.png": {"title": "Harbour lighthouse",
                                                        "description": "Dawn"}}))
    ingest(settings, [str(tmp_path / "assets")], metadata_file=sidecar, encoder=encoder)
    assert kw(settings, "lighthouse") == [red]
    assert kw(settings, "spring") == []
    # Unchanged text writes nothing: the same sidecar again leaves asset_text's row as is.
    before = text_row(settings, red)["updated_at"]
    ingest(settings, [str(tmp_path / "assets")], metadata_file=sidecar, encoder=encoder)
    assert text_row(settings, red)["updated_at"] == before
    # Writing search text (OCR's column) never rewrites the assets row (its HNSW entry).
    version = xmin(settings, red)
    with connect(settings) as conn:
        conn.execute(text("UPDATE asset_text SET ocr = 'INVOICE 7731' WHERE asset_id = :i"),
                     {"i": red})
    assert kw(settings, "invoice") == [red]
    assert xmin(settings, red) == version
    # Deleting an asset deletes its search text.
    with connect(settings) as conn:
        conn.execute(text("DELETE FROM assets WHERE id = :i"), {"i": red})
        assert conn.execute(text("SELECT count(*) FROM asset_text WHERE asset_id = :i"),
                            {"i": red}).scalar() == 0


def _seed_words(settings: Settings, rows: list[dict]) -> list[int]:
    """Ready rows with these fields and random vectors of the database's model."""
    with connect(settings) as conn:
        model, dim = (conn.execute(text(
            "SELECT value FROM assetdb_meta WHERE key = :k"), {"k": k}).scalar()
            for k in ("model", "dimension"))
        rng = np.random.default_rng(5)
        ids = []
        for i, r in enumerate(rows):
            v = rng.normal(size=int(dim)).astype(np.float32)
            v /= np.linalg.norm(v)
            ids.append(conn.execute(text(
                "INSERT INTO assets (uri, kind, title, description, tags, metadata, embedding, "
                "embedding_model, status, hidden) VALUES (:uri, 'image', :title, :d, "
                "CAST(:tags AS text[]), CAST(:m AS jsonb), CAST(:v AS vector), :model, "
                "'ready', :hidden) RETURNING id"),
                {"uri": r.get("uri", f"/c/file-{i}.png"), "title": r.get("title"),
                 "d": r.get("description"), "tags": r.get("tags", []),
                 "m": json.dumps(r.get("metadata", {})), "hidden": r.get("hidden", False),
                 "v": "[" + ",".join(map(str, v)) + "]", "model": model}).scalar_one())
    return ids


def test_codes_prefixes_file_names_and_other_scripts(initialised):
    settings = initialised
    ids = _seed_words(settings, [
        {"title": "Product shot", "metadata": {"sku": "QX-4471"}},
        {"uri": "/c/IMG_2041.jpg", "title": "holiday"},
        {"title": "Привет мир", "description": "открытка"},
        {"title": "東京タワー 夜景"},
        {"title": "Running lighthouses", "description": "the keepers ran"},
        {"title": "nothing to see"},
    ])
    code, img, cyr, cjk, run, _ = ids
    assert kw(settings, "QX-4471") == [code]
    assert kw(settings, "qx-44") == [code]  # a partial code: prefixes
    assert kw(settings, "4471") == [code]
    assert kw(settings, "IMG_2041") == [img]
    assert kw(settings, "img_2041.jpg") == [img]
    assert kw(settings, "привет") == [cyr]  # not stemmed by English: the simple side
    assert kw(settings, "ОТКРЫТКА") == [cyr]
    assert kw(settings, "東京") == [cjk]  # a prefix of the unsegmented run
    assert kw(settings, "lighthouse") == [run]  # English stems
    assert kw(settings, "run") == [run]
    # A long query (far past CLIP's 77 tokens) still works on the keyword side.
    long_query = "lighthouse " + " ".join(f"word{i}" for i in range(300))
    assert kw(settings, long_query) == [run]
    # Stop words alone still mean something on the simple side; one word of many matches.
    assert kw(settings, "the") == [run]
    assert kw(settings, "lighthouse holiday") == sorted([run, img])
    # Snippets mark the matched words.
    hit = hybrid.search(settings, "lighthouse", mode="keyword").hits[0]
    assert "<mark>lighthouses</mark>" in hit.snippet.lower()
    assert hit.keyword_rank == 1 and hit.similarity is None
    # Bad queries: a clear error in keyword mode, before any model.
    for bad in ("", "   ", "!!!", "-- ; '", "…"):
        with pytest.raises(FilterError):
            hybrid.search(settings, bad, mode="keyword")
    with pytest.raises(FilterError, match="unknown search mode"):
        hybrid.search(settings, "x", mode="fuzzy")
    with pytest.raises(FilterError, match="min similarity"):
        hybrid.search(settings, "x", mode="keyword", min_similarity=0.5)
    # SQL characters are data: nothing breaks, nothing matches that should not.
    assert kw(settings, "x' OR '1'='1") == []
    assert kw(settings, "a:* | b & !c") == []


def test_filters_apply_to_both_sides_and_k_rows_whenever_k_match(catalogue, initialised,
                                                                 encoder):
    settings = initialised
    poster_tag = build_filters(tag=["poster"])
    posters = {catalogue["red-1.png"], catalogue["blue-1.png"]}
    # "acme" matches six rows by metadata; the tag filter leaves one poster.
    assert kw(settings, "acme", filters=poster_tag) == [catalogue["red-1.png"]]
    for mode in ("hybrid", "semantic"):
        result = hybrid.search(settings, "acme poster", mode=mode, encoder=encoder, k=10,
                               filters=poster_tag)
        assert {h.id for h in result.hits} == posters, mode
    # k rows whenever k match: hybrid fills from the semantic side past the words.
    result = hybrid.search(settings, "spring", encoder=encoder, k=8)
    assert len(result.hits) == 8 and result.hits[0].id == catalogue["red-1.png"]
    assert result.hits[0].keyword_rank == 1 and "<mark>spring</mark>" in result.hits[0].snippet
    assert all(h.similarity is not None for h in result.hits)
    assert all(h.snippet is None for h in result.hits if h.keyword_rank is None)
    # Hidden assets stay out of both sides unless asked for.
    with connect(settings) as conn:
        conn.execute(text("UPDATE assets SET hidden = true WHERE id = :i"),
                     {"i": catalogue["red-1.png"]})
    assert catalogue["red-1.png"] not in kw(settings, "spring red")
    ids = [h.id for h in hybrid.search(settings, "spring", encoder=encoder, k=8).hits]
    assert catalogue["red-1.png"] not in ids and len(ids) == 7
    shown = build_filters(include_hidden=True)
    assert kw(settings, "spring", filters=shown) == [catalogue["red-1.png"]]
    # min_similarity in hybrid: every hit is at least that similar.
    floor = sorted(h.similarity for h in result.hits)[4]
    some = hybrid.search(settings, "spring", encoder=encoder, k=8, min_similarity=floor,
                         filters=shown)
    assert some.hits and all(h.similarity >= floor for h in some.hits)


def test_fusion_rule_paging_and_sql_functions_agree(catalogue, initialised, encoder):
    settings = initialised
    query = "red poster acme"
    full = hybrid.search(settings, query, encoder=encoder, k=8).hits
    # Reciprocal rank fusion, ties to the lower id.
    for h in full:
        weight = hybrid.EVERY_WORD_WEIGHT if (h.keyword_score or 0) >= keyword.EVERY_WORD else 1
        expected = (1 / (hybrid.RRF_K + h.semantic_rank) if h.semantic_rank else 0) + (
            weight / (hybrid.RRF_K + h.keyword_rank) if h.keyword_rank else 0)
        assert h.score == pytest.approx(expected, abs=1e-6)
    assert any(h.keyword_score >= keyword.EVERY_WORD for h in full if h.keyword_score)
    assert [h.score for h in full] == sorted((h.score for h in full), reverse=True)
    # Paging: a shorter request is a prefix of a longer one (the depth does not move).
    for k in (1, 3, 5):
        assert [h.id for h in hybrid.search(settings, query, encoder=encoder, k=k).hits] == \
            [h.id for h in full[:k]]
    # The SQL functions rank the same way, and the read-only role may call them.
    vector = encoder.encode_texts([query])[0]
    kw_hits = hybrid.search(settings, query, mode="keyword", k=8).hits
    with psycopg.connect(reader_conninfo(settings)) as conn:
        register_vector(conn)
        rows = conn.execute("SELECT asset_id, score, snippet FROM assetdb_text_search(%s, 8)",
                            (query,)).fetchall()
        assert [r[0] for r in rows] == [h.id for h in kw_hits]
        assert [r[1] for r in rows] == pytest.approx([h.keyword_score for h in kw_hits],
                                                     abs=1e-5)
        assert [r[2] for r in rows] == [h.snippet for h in kw_hits]
        rows = conn.execute(
            "SELECT asset_id, score, similarity, semantic_rank, keyword_rank, snippet "
            "FROM assetdb_hybrid_search(%s, %s, 8)", (query, vector)).fetchall()
        assert [r[0] for r in rows] == [h.id for h in full]
        assert [r[1] for r in rows] == pytest.approx([h.score for h in full], abs=1e-6)
        assert [r[2] for r in rows] == pytest.approx([h.similarity for h in full], abs=1e-4)
        assert [(r[3], r[4], r[5]) for r in rows] == [
            (h.semantic_rank, h.keyword_rank, h.snippet) for h in full]
        assert conn.execute("SELECT * FROM assetdb_text_search('!!!', 5)").fetchall() == []
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE asset_text SET ocr = 'x'")


def test_migration_and_service_share_the_fusion_constants():
    import importlib

    migration = importlib.import_module("assetdb.migrations.versions.0007_keyword_search")
    assert (migration.RRF_K, migration.FUSION_DEPTH) == (hybrid.RRF_K, hybrid.FUSION_DEPTH)
    assert migration.EVERY_WORD_WEIGHT == hybrid.EVERY_WORD_WEIGHT
    candidates = importlib.import_module(
        "assetdb.migrations.versions.0012_keyword_candidates")
    assert (candidates.CANDIDATES, candidates.MAX_WINDOWS) == (keyword.CANDIDATES,
                                                               keyword.MAX_WINDOWS)
    assert keyword._PLAN_SETTINGS == dict(
        line.removeprefix("SET ").split(" = ") for line in
        candidates._PLAN_SETTINGS.strip().splitlines())


def _newest_ranked(settings: Settings, query: str, k: int, where: str = "true") -> list:
    """The rule, brute force: the newest CANDIDATES searchable rows with every word, ranked
    by their keyword score (ties by id)."""
    with connect(settings) as conn:
        rows = conn.execute(text(
            "SELECT t.asset_id, (2 + assetdb_keyword_score(t.tsv_simple, t.tsv_lang, "
            "assetdb_query_simple(:q), assetdb_query_lang(:q)))::float8 AS s "
            "FROM asset_text t JOIN assets a ON a.id = t.asset_id "
            "WHERE (t.tsv_simple @@ assetdb_query_simple(:q) "
            "       OR t.tsv_lang @@ assetdb_query_lang_all(:q)) "
            f"AND a.status = 'ready' AND NOT a.hidden AND {where} "
            "ORDER BY t.asset_id DESC LIMIT :n"),
            {"q": query, "n": max(k, keyword.CANDIDATES)}).all()
    return sorted(((r.asset_id, round(r.s, 6)) for r in rows), key=lambda r: (-r[1], r[0]))[:k]


def test_common_words_rank_their_newest_candidates_by_either_path(initialised):
    """A word in every row ranks its newest CANDIDATES matches; a rarer one ranks all of
    them. The GIN read (no statistics yet) and the walk down the newest rows (ANALYZE
    says the word is common) give the same rows; hidden rows and filters are honoured;
    k rows whenever k match, past CANDIDATES too; Python == assetdb_keyword_ranked."""
    settings = initialised
    total = 2 * keyword.CANDIDATES + 50
    with connect(settings) as conn:
        model, dim = (conn.execute(text("SELECT value FROM assetdb_meta WHERE key = :k"),
                                   {"k": k}).scalar() for k in ("model", "dimension"))
        # Row i: "harbour" everywhere (in the title of every third row, so scores vary),
        # "beacon" in every fourth, tag "poster" on every other.
        conn.execute(text(
            "INSERT INTO assets (uri, kind, title, description, tags, embedding, "
            "embedding_model, status) "
            "SELECT '/c/gen-' || i || '.png', 'image', "
            "  CASE WHEN i % 3 = 0 THEN 'harbour view' ELSE 'view' END, "
            "  'a quiet harbour' || CASE WHEN i % 4 = 0 THEN ' beacon' ELSE '' END, "
            "  CASE WHEN i % 2 = 0 THEN ARRAY['poster'] ELSE ARRAY[]::text[] END, "
            "  CAST(array_fill(0.1, ARRAY[:d]) AS vector), :m, 'ready' "
            "FROM generate_series(1, :n) AS i"), {"d": int(dim), "m": model, "n": total})
        newest = conn.execute(text("SELECT max(id) FROM assets")).scalar_one()

    def python(query: str, k: int, filters=None) -> list:
        with connect(settings) as conn:
            return [(m.asset_id, round(m.score, 6)) for m in keyword.ranked(
                conn, query, k=k, filters=filters or build_filters(), model=model)]

    def sql(query: str, k: int) -> list:
        with psycopg.connect(reader_conninfo(settings)) as conn:
            return [(r[0], round(r[1], 6)) for r in conn.execute(
                "SELECT asset_id, score FROM assetdb_keyword_ranked(%s, %s)", (query, k))]

    def plan(query: str) -> bool:
        with connect(settings) as conn:
            return conn.execute(text("SELECT every_common FROM assetdb_keyword_plan(:q, :n)"),
                                {"q": query, "n": keyword.CANDIDATES}).scalar_one()

    def check() -> None:
        for query, k in (("harbour", 10), ("harbour", total - 20), ("beacon", 10),
                         ("harbour beacon", 5)):
            expected = _newest_ranked(settings, query, k)
            assert len(expected) == k
            assert python(query, k) == sql(query, k) == expected, (query, k)
        with connect(settings) as conn:
            shown = conn.execute(text("SELECT count(*) FROM assets WHERE NOT hidden")).scalar()
        assert len(python("harbour", total)) == shown  # k rows whenever k match
        assert python("harbour", 10, build_filters(tag=["poster"])) == _newest_ranked(
            settings, "harbour", 10, "'poster' = ANY(a.tags)")

    assert not plan("harbour")  # no statistics yet: the GIN index
    check()
    with connect(settings) as conn:
        conn.execute(text("UPDATE assets SET hidden = true WHERE id > :i"), {"i": newest - 3})
        conn.execute(text("ANALYZE asset_text"))
    assert plan("harbour") and not plan("zzzz")  # common by ANALYZE: the newest rows
    check()
    assert newest not in {i for i, _ in python("harbour", total)}
    # Walking several windows of newest rows finds what the GIN read finds (a quarter of
    # the rows carry "beacon": two windows of 100 hold the newest 40).
    expected = sorted((i for i, _ in _newest_ranked(settings, "beacon", total)),
                      reverse=True)[:40]
    with psycopg.connect(reader_conninfo(settings)) as conn:
        for window in (100, None):
            assert conn.execute(
                "SELECT assetdb_keyword_candidates(assetdb_query_simple(%s), "
                "assetdb_query_lang_all(%s), assetdb_query_lang(%s), true, 40, %s)",
                ("beacon",) * 3 + (window,)).fetchone()[0] == expected, window
    with connect(settings) as conn:
        qs, qa = (cast(literal(q, String), TSQUERY) for q in conn.execute(text(
            "SELECT assetdb_query_simple('beacon')::text, "
            "assetdb_query_lang_all('beacon')::text")).one())

        def match(simple, lang):  # noqa: ANN001, ANN202
            return or_(simple.op("@@")(qs), lang.op("@@")(qa))
        for window in (100, None):
            assert keyword._candidates(conn, match, where_clauses(build_filters(), model),
                                       40, window) == expected, window


def test_every_word_match_outranks_the_best_wordless_semantic_match(initialised, encoder):
    """A keyword match with every word, found nowhere near the top on the semantic side,
    still comes first in hybrid (plain RRF would tie it with the best semantic match)."""
    settings = initialised
    ids = _seed_words(settings, [{"title": f"filler {i}"} for i in range(120)]
                      + [{"title": "zebulon quartz"}])
    result = hybrid.search(settings, "zebulon quartz", encoder=encoder, k=3)
    top = result.hits[0]
    assert top.id == ids[-1] and top.keyword_rank == 1
    assert top.semantic_rank is None or top.semantic_rank > 1


def test_cli_modes_json_and_fallback(catalogue, initialised):
    out = run_cli("search", "spring", "--json")
    assert out.exit_code == 0, out.output
    hits = json.loads(out.stdout)
    assert {"similarity", "keyword_rank", "semantic_rank", "snippet", "score"} <= set(hits[0])
    assert hits[0]["id"] == catalogue["red-1.png"] and hits[0]["keyword_rank"] == 1
    out = run_cli("search", "spring", "--mode", "keyword", "--json")
    assert [h["id"] for h in json.loads(out.stdout)] == [catalogue["red-1.png"]]
    table = run_cli("search", "spring", "--mode", "keyword")
    assert "[spring]" in table.stdout  # the snippet, the match in brackets
    sem = run_cli("search", "spring", "--mode", "semantic", "--json", "-k", "3")
    assert all(h["keyword_rank"] is None for h in json.loads(sem.stdout))
    # Punctuation only: hybrid answers with the semantic ranking and says so.
    out = run_cli("search", "?!", "--json", "-k", "2")
    assert out.exit_code == 0 and len(json.loads(out.stdout)) == 2
    assert "no words to match" in out.stderr
    bad = run_cli("search", "?!", "--mode", "keyword")
    assert bad.exit_code != 0 and "no words" in bad.output


def test_language_setting(initialised, monkeypatch, tmp_path):
    settings = initialised
    (ids := _seed_words(settings, [{"title": "Die Häuser am Hafen"}]))
    assert kw(settings, "Haus") == []  # English does not stem German
    monkeypatch.setenv("ASSETDB_TEXT_SEARCH_CONFIG", "german")
    assert run_cli("init").exit_code == 0
    assert kw(settings, "Haus") == ids  # rebuilt with German stems
    monkeypatch.setenv("ASSETDB_TEXT_SEARCH_CONFIG", "klingon")
    with pytest.raises(ConfigError, match="klingon"):
        from assetdb.catalog.catalogue import Catalog

        Catalog(Settings.from_env()).init()
    noise(tmp_path / "n.png", seed=1)  # the database still works after the refusal
    assert kw(settings, "hafen") == ids


def test_api_mode_fields_and_pages(catalogue, initialised, encoder):
    from fastapi.testclient import TestClient

    from assetdb.api.app import create_app
    from assetdb.api.deps import ApiConfig

    config = ApiConfig(token=None, max_upload_bytes=2**20, max_results=500)
    with TestClient(create_app(initialised, encoder, config),
                    base_url="http://127.0.0.1:8000") as client:
        r = client.get("/api/search", params={"q": "spring", "mode": "keyword"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mode"] == "keyword" and len(body["results"]) == 1
        hit = body["results"][0]
        assert hit["id"] == catalogue["red-1.png"] and hit["keyword_rank"] == 1
        assert "<mark>spring</mark>" in hit["snippet"]
        whole = client.get("/api/search", params={"q": "acme poster", "limit": 8}).json()
        assert whole["mode"] == "hybrid"
        pages = [client.get("/api/search", params={"q": "acme poster", "limit": 3,
                                                   "offset": o}).json() for o in (0, 3, 6)]
        assert [h["id"] for p in pages for h in p["results"]] == \
            [h["id"] for h in whole["results"]]
        assert client.get("/api/search", params={"q": "x", "mode": "fuzzy"}).status_code == 422
        r = client.get("/api/search", params={"q": "!!", "mode": "keyword"})
        assert r.status_code == 400 and "no words" in r.json()["error"]
        fallback = client.get("/api/search", params={"q": "!!"}).json()
        assert fallback["mode"] == "semantic" and fallback["warnings"]
