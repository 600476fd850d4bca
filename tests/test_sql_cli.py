"""assetdb sql (read-only) and assetdb embed-text."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import psycopg

from assetdb.sqlsurface.concepts import concept_vector
from tests.conftest import run_cli
from tests.sql_seed import db_model, insert_assets, unit_vectors


def _snapshot(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return (conn.execute("SELECT id, uri, title, hidden FROM assets ORDER BY id").fetchall(),
                conn.execute("SELECT to_regclass('evil')").fetchone()[0],
                conn.execute("SELECT value FROM assetdb_meta ORDER BY key").fetchall())


def test_sql_formats(initialised, database_url):
    model, dim = db_model(database_url)
    ids = insert_assets(database_url, unit_vectors(3, dim), model=model,
                        metadata=[{"sku": "A-1"}, {"sku": "B,2"}, {}], tags=[["x"], [], []])
    query = ("SELECT id, title, metadata, tags, embedding, 'it''s 50%' AS note "
             "FROM assets ORDER BY id")

    as_json = run_cli("sql", query, "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    assert [r["id"] for r in rows] == ids and rows[1]["metadata"] == {"sku": "B,2"}
    assert rows[0]["tags"] == ["x"] and rows[0]["note"] == "it's 50%"
    assert len(rows[0]["embedding"]) == dim

    as_csv = run_cli("sql", query, "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    parsed = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [int(r["id"]) for r in parsed] == ids
    assert json.loads(parsed[1]["metadata"]) == {"sku": "B,2"}
    assert len(json.loads(parsed[2]["embedding"])) == dim

    table = run_cli("sql", "SELECT id, title FROM assets ORDER BY id")
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split() == ["id", "title"] and len(lines) == 2 + len(ids)

    capped = run_cli("sql", "SELECT g FROM generate_series(1, 50) g", "--format", "json",
                     "--max-rows", "7")
    assert capped.exit_code == 0
    assert [r["g"] for r in json.loads(capped.output[:capped.output.rindex("]") + 1])] == list(
        range(1, 8))
    assert "stopped after 7 rows" in capped.output


def test_sql_is_read_only(initialised, database_url):
    model, dim = db_model(database_url)
    insert_assets(database_url, unit_vectors(3, dim), model=model)
    before = _snapshot(database_url)
    for statement, message in (
        ("DELETE FROM assets", "read-only"),
        ("UPDATE assets SET hidden = true", "read-only"),
        ("INSERT INTO assets (uri) VALUES ('x')", "read-only"),
        ("CREATE TABLE evil (x int)", "read-only"),
        ("UPDATE assetdb_meta SET value = 'other' WHERE key = 'model'", "read-only"),
        ("WITH d AS (DELETE FROM assets RETURNING id) SELECT count(*) FROM d", "read-only"),
        # a second statement could end the read-only transaction: one statement only
        ("SELECT 1; COMMIT; DELETE FROM assets", "multiple commands"),
        ("COMMIT; DELETE FROM assets", "multiple commands"),
        ("SET TRANSACTION READ WRITE", "must be set before any query"),
        ("SELEC 1", "syntax error"),
        ("", "empty"),
    ):
        result = run_cli("sql", statement)
        assert result.exit_code == 1, (statement, result.output)
        assert result.output.startswith("Error: "), result.output
        assert message in result.output, (statement, result.output)
    assert _snapshot(database_url) == before


def test_sql_statement_timeout(initialised):
    result = run_cli("sql", "SELECT pg_sleep(5)", "--timeout", "0.2")
    assert result.exit_code == 1
    assert "statement timeout (0.2 s" in result.output


def test_embed_text_pastes_into_sql(initialised, database_url, encoder):
    model, dim = db_model(database_url)
    vectors = unit_vectors(30, dim, seed=2)
    ids = insert_assets(database_url, vectors, model=model)

    as_sql = run_cli("embed-text", "red circle", "--format", "sql")
    assert as_sql.exit_code == 0, as_sql.output
    literal = as_sql.output.strip().splitlines()[-1]
    assert re.fullmatch(r"'\[[-0-9.e,]+\]'::vector", literal), literal
    expected = encoder.encode_texts(["red circle"])[0]
    values = np.array(json.loads(literal[1:literal.index("'", 1)]), dtype=np.float32)
    assert np.array_equal(values, expected)  # float32 round-trips exactly

    pasted = run_cli("sql", f"SELECT asset_id FROM assetdb_nearest({literal}, 5)",
                     "--format", "json")
    assert pasted.exit_code == 0, pasted.output
    exact = [ids[i] for i in np.argsort(-(vectors @ expected))[:5]]
    assert [r["asset_id"] for r in json.loads(pasted.output)] == exact

    as_json = run_cli("embed-text", "cat", "--format", "json", "-t", "a photo of a {}")
    assert as_json.exit_code == 0
    data = json.loads(as_json.output[as_json.output.index("{"):])
    assert data["model"] == model and data["dimension"] == dim
    assert np.allclose(data["vector"], concept_vector(encoder, "cat", ["a photo of a {}"]),
                       atol=1e-6)

    bad = run_cli("embed-text", "cat", "-t", "no placeholder")
    assert bad.exit_code == 1 and "has no {}" in bad.output
