"""assetdb concept add|list|rm, and refresh_concepts (the model-switch hook)."""

from __future__ import annotations

import json

import numpy as np
import psycopg

from assetdb.db.engine import connect
from assetdb.embedding.encoder import load_encoder
from assetdb.sqlsurface.concepts import concept_vector, list_concepts, refresh_concepts
from tests.conftest import run_cli
from tests.images import noise


def _concepts(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT name, text, templates, model, vector::text "
                            "FROM assetdb_concepts ORDER BY name").fetchall()


def test_concept_add_list_rm_and_search_in_sql(initialised, database_url, encoder, tmp_path):
    for i in range(6):
        noise(tmp_path / "imgs" / f"n{i}.png", seed=i)
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0

    result = run_cli("concept", "add", "red-circle", "red circle", "-t", "a photo of {}",
                     "-t", "a {}", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output[result.output.index("{"):])
    assert info["name"] == "red-circle" and info["templates"] == ["a photo of {}", "a {}"]
    assert info["model"] == encoder.name and info["current"] is True
    # the stored vector is the prompt ensemble, made with the database's model
    (name, text, templates, model, vector), = _concepts(database_url)
    expected = concept_vector(encoder, "red circle", ["a photo of {}", "a {}"])
    assert np.allclose(np.array(json.loads(vector)), expected, atol=1e-6)
    prompts = encoder.encode_texts(["a photo of red circle", "a red circle"])
    assert not np.allclose(expected, prompts[0], atol=1e-4)  # really an ensemble

    # without templates the text is embedded as it is; it ranks like `assetdb search`
    assert run_cli("concept", "add", "blue", "blue square").exit_code == 0
    sql = run_cli("sql", "SELECT asset_id, similarity FROM assetdb_concept_search('blue', 4)",
                  "--format", "json")
    assert sql.exit_code == 0, sql.output
    searched = run_cli("search", "blue square", "-k", "4", "--json")
    by_sql = json.loads(sql.output)
    by_search = json.loads(searched.output[searched.output.index("["):])
    assert [r["asset_id"] for r in by_sql] == [r["id"] for r in by_search]
    assert np.allclose([r["similarity"] for r in by_sql],
                       [r["similarity"] for r in by_search], atol=1e-5)

    listed = run_cli("concept", "list")
    assert listed.exit_code == 0 and "red-circle" in listed.output and "blue" in listed.output

    # bad input: a clear error, nothing changed
    before = _concepts(database_url)
    for args, message in (
        (("concept", "add", "blue", "green"), "exists already"),
        (("concept", "add", "bad name", "green"), "concept name"),
        (("concept", "add", "green", "  "), "empty"),
        (("concept", "add", "green", "green", "-t", "no placeholder"), "has no {}"),
        (("concept", "rm", "missing"), "no concept named"),
    ):
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, result.output
    assert _concepts(database_url) == before

    replaced = run_cli("concept", "add", "blue", "green circle", "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert [c[1] for c in _concepts(database_url) if c[0] == "blue"] == ["green circle"]
    assert run_cli("concept", "rm", "blue").exit_code == 0
    assert [c[0] for c in _concepts(database_url)] == ["red-circle"]


def test_refresh_concepts_re_embeds_with_the_new_model(initialised, database_url, settings,
                                                       encoder, tiny_model_dir_64):
    assert run_cli("concept", "add", "cat", "cat", "-t", "a photo of a {}").exit_code == 0
    assert run_cli("concept", "add", "dog", "dog").exit_code == 0
    new = load_encoder(str(tiny_model_dir_64))
    with connect(settings) as conn:
        assert refresh_concepts(conn, new) == 2
    rows = {r[0]: r for r in _concepts(database_url)}
    for name, templates in (("cat", ["a photo of a {}"]), ("dog", [])):
        _, _, stored_templates, model, vector = rows[name]
        assert model == new.name and stored_templates == templates
        assert np.allclose(np.array(json.loads(vector)),
                           concept_vector(new, name, templates), atol=1e-6)
    # until the database itself moves to the new model, SQL ignores them
    assert [c.current for c in list_concepts(settings)] == [False, False]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT assetdb_concept_vector('cat')").fetchone()[0] is None
        conn.execute("UPDATE assetdb_meta SET value = %s WHERE key = 'model'", (new.name,))
        conn.execute("UPDATE assetdb_meta SET value = '64' WHERE key = 'dimension'")
        conn.commit()
    assert [c.current for c in list_concepts(settings)] == [True, True]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT vector_dims(assetdb_concept_vector('cat'))"
                            ).fetchone()[0] == 64
    # and concept add now refuses the old model: vectors of two models never mix
    result = run_cli("concept", "add", "car", "car")
    assert result.exit_code == 1 and "makes 32-d vectors" in result.output, result.output
