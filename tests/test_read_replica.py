"""ASSETDB_READ_DATABASE_URL against a real streaming replica (two embedded servers, the
second a hot standby made with the wheel's pg_basebackup): searches, browsing, asset
detail, `assetdb sql` and the API read there; init, ingest and edits write to the
primary; a replica whose replay is paused shows what a lagging replica does, and reading
from the primary again is one empty variable away."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from assetdb.config import Settings
from assetdb.db import embedded
from assetdb.db.engine import reset_engines
from assetdb.db.replica import replica_state, wait_for_replica
from tests.conftest import run_cli, server_dir
from tests.images import noise
from tests.replica import Replica, allow_replication, start_replica


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[str, Replica]]:
    primary_home, replica_home = server_dir(), server_dir()
    primary_url = embedded.start(primary_home)
    replica = start_replica(primary_home, replica_home, allow_replication(primary_home,
                                                                          primary_url))
    yield primary_url, replica
    reset_engines()
    replica.stop()
    embedded.stop(primary_home)
    shutil.rmtree(primary_home, ignore_errors=True)
    shutil.rmtree(replica_home, ignore_errors=True)


@pytest.fixture
def replica_env(replicated: tuple[str, Replica], monkeypatch: pytest.MonkeyPatch,
                tiny_model_dir: Path, tmp_path: Path) -> tuple[str, Replica]:
    primary_url, replica = replicated
    monkeypatch.setenv("ASSETDB_DATABASE_URL", primary_url)
    monkeypatch.setenv("ASSETDB_READ_DATABASE_URL", replica.url)
    monkeypatch.setenv("ASSETDB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("ASSETDB_HOME", str(tmp_path / "home"))
    return primary_url, replica


def _ok(*args: str) -> str:
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _search_ids() -> set[int]:
    return {h["id"] for h in json.loads(_ok("search", "a photo of a cat", "-k", "100",
                                            "--json"))}


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM assets").fetchone()[0]


def test_reads_go_to_the_replica_and_writes_to_the_primary(replica_env, tmp_path,
                                                           monkeypatch):
    primary_url, replica = replica_env
    _ok("init")  # DDL, the reader role: on a standby each would fail (read-only)
    settings = Settings.from_env()
    wait_for_replica(settings)
    for i in range(4):
        noise(tmp_path / "first" / f"{i}.png", seed=i)
    _ok("ingest", str(tmp_path / "first"))
    wait_for_replica(settings)
    first = _search_ids()
    assert len(first) == 4
    assert replica_state(settings).lag_bytes == 0

    # Replay paused: the replica stands still, as a lagging one would.
    with psycopg.connect(replica.url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        for i in range(4, 7):
            noise(tmp_path / "second" / f"{i}.png", seed=i)
        _ok("ingest", str(tmp_path / "second"))  # writes reach the primary regardless
        assert _count(primary_url) == 7
        assert _count(replica.url) == 4
        stats = json.loads(_ok("stats", "--json"))
        assert stats["total"] == 7  # stats count on the primary ...
        assert stats["read_database"] and stats["read_replica_lag_bytes"] > 0  # ... and say
        assert _search_ids() == first  # the search read the replica: no new rows yet
        sql = json.loads(_ok("sql", "SELECT pg_is_in_recovery() AS standby, "
                                    "(SELECT count(*) FROM assets) AS n", "-f", "json"))
        assert sql == [{"standby": True, "n": 4}]
        assert str(replica.socket_dir) in _ok("db", "url", "--read-only")  # for psql too
        _ok("export", "--format", "csv", "--out", str(tmp_path / "out.csv"))
        assert len((tmp_path / "out.csv").read_text().splitlines()) == 1 + 4  # header + rows
        some = min(first)
        similar = json.loads(_ok("sql", f"SELECT asset_id FROM assetdb_similar({some}, 10)",
                                 "-f", "json"))
        assert {r["asset_id"] for r in similar} == first - {some}
        with psycopg.connect(primary_url) as conn:
            new = {r[0] for r in conn.execute("SELECT id FROM assets")} - first
        _api_reads_the_replica(first, new)

        # Reading from the primary is one empty variable away (read-your-writes).
        monkeypatch.setenv("ASSETDB_READ_DATABASE_URL", "")
        assert len(_search_ids()) == 7
        monkeypatch.setenv("ASSETDB_READ_DATABASE_URL", replica.url)
    finally:
        with psycopg.connect(replica.url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    wait_for_replica(settings)
    assert len(_search_ids()) == 7
    assert replica_state(settings).lag_bytes == 0


def _api_reads_the_replica(visible: set[int], new: set[int]) -> None:
    from fastapi.testclient import TestClient

    from assetdb.api.app import create_app

    with TestClient(create_app(), base_url="http://127.0.0.1:8000") as client:
        page = client.get("/api/search", params={"q": "a photo of a cat", "limit": 100})
        assert page.status_code == 200, page.text
        assert {h["id"] for h in page.json()["results"]} == visible
        browse = client.get("/api/assets", params={"limit": 100}).json()["results"]
        assert {h["id"] for h in browse} == visible
        for asset_id in new:  # on the primary, not yet on the replica
            assert client.get(f"/api/assets/{asset_id}").status_code == 404
            assert client.get(f"/api/assets/{asset_id}/similar").status_code == 404


def test_wait_for_a_paused_replica_times_out_clearly(replica_env):
    _ok("init")
    settings = Settings.from_env()
    wait_for_replica(settings)
    _, replica = replica_env
    with psycopg.connect(replica.url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        with psycopg.connect(replica_env[0], autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS wal_probe (x int)")  # WAL to wait for
            conn.execute("INSERT INTO wal_probe VALUES (1)")
        with pytest.raises(Exception, match="did not catch up"):
            wait_for_replica(settings, timeout_s=0.5)
    finally:
        with psycopg.connect(replica.url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


def test_an_unreachable_replica_is_a_clear_error_and_writes_still_work(
        initialised, monkeypatch, tmp_path):
    monkeypatch.setenv("ASSETDB_READ_DATABASE_URL",
                       "postgresql://reader:s3cret-pw@/assetdb?host=/nonexistent-assetdb")
    noise(tmp_path / "a.png", seed=1)
    assert run_cli("ingest", str(tmp_path / "a.png")).exit_code == 0
    result = run_cli("search", "a cat")
    assert result.exit_code != 0
    assert "ASSETDB_READ_DATABASE_URL" in result.output
    assert "s3cret-pw" not in result.output
    stats = run_cli("stats", "--json")  # the primary's counts, and why the replica is not
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert data["total"] == 1 and data["read_replica_lag_bytes"] is None
    assert "cannot connect" in data["read_replica_error"]
    assert "s3cret-pw" not in stats.stdout
