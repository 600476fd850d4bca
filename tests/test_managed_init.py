"""`assetdb init` as a managed service's admin login: CREATEROLE, no superuser (RDS's
master user, Cloud SQL's `postgres`, ...), in a database it owns where an admin created
the `vector` extension first. Such a login may not name SUPERUSER, REPLICATION or
BYPASSRLS in ALTER ROLE at all, so init must only send the attributes that differ."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from assetdb.db import embedded
from assetdb.db.engine import reset_engines
from tests.conftest import run_cli, server_dir

PASSWORD = "app-pw-7c1e"


@pytest.fixture
def managed_like(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                 tmp_path: Path) -> Iterator[str]:
    home = server_dir()  # its own server: the reader role is cluster-wide
    url = embedded.start(home)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE app LOGIN CREATEROLE PASSWORD '{PASSWORD}'")
        conn.execute("CREATE DATABASE catalogue OWNER app")
    base, _, query = url.partition("?")
    with psycopg.connect(base.rsplit("/", 1)[0] + "/catalogue?" + query,
                         autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")  # the admin's one step
    app_url = f"postgresql://app:{PASSWORD}@/catalogue?host={embedded.socket_dir(home)}"
    monkeypatch.setenv("ASSETDB_DATABASE_URL", app_url)
    monkeypatch.setenv("ASSETDB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("ASSETDB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ASSETDB_READ_DATABASE_URL", raising=False)
    yield url
    reset_engines()
    embedded.stop(home)
    shutil.rmtree(home, ignore_errors=True)


def test_init_as_a_createrole_login_without_superuser(managed_like):
    with psycopg.connect(managed_like) as conn:
        assert conn.execute("SELECT rolsuper, rolcreaterole FROM pg_roles "
                            "WHERE rolname = 'app'").fetchone() == (False, True)
    for _ in range(2):  # creating the role, then finding it as it should be
        result = run_cli("init")
        assert result.exit_code == 0, result.output
    rows = json.loads(run_cli("sql", "SELECT current_user AS who", "-f", "json").stdout)
    assert rows == [{"who": "assetdb_reader"}]


def test_a_reader_role_another_admin_made_is_left_to_that_admin(managed_like):
    with psycopg.connect(managed_like, autocommit=True) as conn:
        conn.execute("CREATE ROLE assetdb_reader LOGIN")  # not administered by `app`
    result = run_cli("init", "--json")
    assert result.exit_code == 0, result.output  # the schema is ready all the same
    info = json.loads(result.stdout)
    assert info["read_only_role_ready"] is False
    assert info["admin_statements"].startswith("ALTER ROLE assetdb_reader LOGIN PASSWORD")
    assert PASSWORD not in result.output
    with psycopg.connect(managed_like.replace("/postgres?", "/catalogue?")) as conn:
        assert conn.execute("SELECT to_regclass('assets') IS NOT NULL").fetchone()[0]
