"""The embedded server, `init`, the schema and connection errors, against real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from assetdb.db import embedded, schema
from assetdb.db.engine import connect
from assetdb.errors import DatabaseError, ModelError
from tests.conftest import run_cli, server_dir


def _cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETDB_")}
    env["ASSETDB_HOME"] = str(home)
    return env


def test_embedded_server_shared_by_concurrent_processes_and_survives_restart():
    home = server_dir() / "home"
    env = _cli_env(home)
    cmd = [sys.executable, "-m", "assetdb", "db", "url"]
    # Three CLI processes start the server at once: all get the same, working URL.
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    urls = {out.strip() for out, _ in outputs}
    assert len(urls) == 1
    url = urls.pop()
    assert f"host={home}/run&" in url  # the socket sits in a folder only its owner enters
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE keepme (v int)")
            conn.execute("INSERT INTO keepme VALUES (42)")
        # The server outlives the CLI processes, and its data survives a restart.
        assert embedded.running_url(home) == url
        assert embedded.stop(home) is True
        assert embedded.running_url(home) is None
        url2 = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              check=True).stdout.strip()
        with psycopg.connect(url2) as conn:
            assert conn.execute("SELECT v FROM keepme").fetchone() == (42,)
    finally:
        embedded.stop(home)


def test_db_url_prints_configured_url_password_only_on_request(monkeypatch):
    monkeypatch.setenv("ASSETDB_DATABASE_URL", "postgresql://u:secret@db.example:5433/assets")
    result = run_cli("db", "url")
    assert result.output.strip() == "postgresql://u:***@db.example:5433/assets"
    result = run_cli("db", "url", "--show-password")
    assert result.output.strip() == "postgresql://u:secret@db.example:5433/assets"


def test_init_twice_is_harmless_and_records_model(settings, tiny_model_dir):
    first = run_cli("init", "--json")
    assert first.exit_code == 0, first.output
    with connect(settings) as conn:
        conn.execute(text("INSERT INTO assets (uri) VALUES ('/x.jpg')"))
    second = run_cli("init", "--json")
    assert second.exit_code == 0, second.output
    assert first.stdout == second.stdout
    with connect(settings) as conn:
        meta = schema.read_meta(conn)
        assert conn.execute(text("SELECT count(*) FROM assets")).scalar_one() == 1
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert meta == {"model": str(tiny_model_dir), "dimension": "32", "hnsw_ef_search": "100",
                    "exact_search_max_rows": "10000"}
    from alembic.script import ScriptDirectory

    assert version == ScriptDirectory.from_config(schema.alembic_config()).get_current_head()


def test_schema_has_vector_column_and_indexes(initialised):
    with connect(initialised) as conn:
        coltype = conn.execute(text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'assets'::regclass AND attname = 'embedding'"
        )).scalar_one()
        indexes = dict(conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'assets'"
        )).all())
    assert coltype == "vector(32)"
    assert ("USING hnsw (((embedding)::halfvec(32)) halfvec_cosine_ops)"
            in indexes["assets_embedding_hnsw"])
    assert "USING gin (tags)" in indexes["assets_tags_gin"]
    assert "USING gin (metadata jsonb_path_ops)" in indexes["assets_metadata_gin"]
    for column in ("status", "kind", "captured_at", "created_at", "sha256"):
        assert f"assets_{column}_idx" in indexes
    assert "UNIQUE" in indexes["assets_uri_key"]


def test_model_of_another_dimension_is_refused(initialised, tiny_model_dir_64, tmp_path,
                                               monkeypatch):
    img = tmp_path / "a.png"
    from tests.images import solid

    solid(img, (1, 2, 3))
    monkeypatch.setenv("ASSETDB_MODEL", str(tiny_model_dir_64))
    for args in (["ingest", str(img)], ["search", "red"]):
        result = run_cli(*args)
        assert result.exit_code == 1
        assert "64-d vectors" in result.output and "32-d vectors" in result.output
        assert "assetdb reembed --model" in result.output
    with connect(initialised) as conn:
        assert conn.execute(text("SELECT count(*) FROM assets")).scalar_one() == 0


def test_check_model_names_both_models():
    with pytest.raises(ModelError, match="differs from the database's model"):
        schema.check_model({"model": "a", "dimension": "32"}, "b", 32)
    schema.check_model({"model": "a", "dimension": "32"}, "a", 32)


@pytest.mark.parametrize("url, message", [
    ("postgresql://nobody@127.0.0.1:1/nothing", "cannot connect to the database"),
    ("mysql://u@h/db", "must be a postgresql:// URL"),
])
def test_wrong_database_url_is_a_clear_error(monkeypatch, url, message):
    monkeypatch.setenv("ASSETDB_DATABASE_URL", url)
    result = run_cli("stats")
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_uninitialised_database_says_run_init(settings):
    result = run_cli("stats")
    assert result.exit_code == 1
    assert "assetdb init" in result.output


def test_stats_counts_by_status_kind_and_model(initialised, tmp_path):
    from tests.images import noise

    noise(tmp_path / "imgs" / "a.png", 1)
    noise(tmp_path / "imgs" / "b.png", 2)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG broken")
    run_cli("ingest", str(tmp_path / "imgs"))
    result = run_cli("stats", "--json")
    import json

    data = json.loads(result.stdout)
    assert data["total"] == 3
    assert data["by_status"] == {"ready": 2, "failed": 1}
    assert data["by_kind"] == {"image": 2, "(none)": 1}
    assert data["dimension"] == 32
    assert data["by_model"][data["model"]] == 2
    assert data["database"].startswith("postgresql://")
    human = run_cli("stats")
    assert "ready" in human.output and "dimension" in human.output


def test_unusable_home_is_a_clear_error(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(DatabaseError, match="cannot use ASSETDB_HOME"):
        embedded.start(not_a_dir / "home")
    monkeypatch.delenv("ASSETDB_DATABASE_URL", raising=False)
    monkeypatch.setenv("ASSETDB_HOME", str(not_a_dir / "home"))
    result = run_cli("db", "url")
    assert result.exit_code == 1 and "cannot use ASSETDB_HOME" in result.output


@pytest.mark.parametrize("name, value, args, message", [
    ("ASSETDB_BATCH_SIZE", "lots", ["stats"], "ASSETDB_BATCH_SIZE must be an integer"),
    ("ASSETDB_BATCH_SIZE", "0", ["stats"], "ASSETDB_BATCH_SIZE must be >= 1"),
    ("ASSETDB_LEASE_SECONDS", "soon", ["worker", "--once"],
     "ASSETDB_LEASE_SECONDS must be a number"),
])
def test_bad_settings_are_clear_errors(initialised, monkeypatch, name, value, args, message):
    monkeypatch.setenv(name, value)
    result = run_cli(*args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
