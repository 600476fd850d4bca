"""The read-only SQL boundary (issue 12, finding 1), attacked through `assetdb sql` and
through the read-only URL analysts give psql. Each probe must fail with a clear error and
change nothing; for `COPY ... TO PROGRAM` the program must not have run."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psycopg
import pytest

from assetdb.config import Settings
from assetdb.db.roles import DANGEROUS_ROLES, READER, reader_conninfo, reader_passfile
from tests.conftest import run_cli
from tests.sql_seed import db_model, insert_assets, unit_vectors


@pytest.fixture
def seeded(initialised: Settings, database_url: str) -> Settings:
    model, dim = db_model(database_url)
    insert_assets(database_url, unit_vectors(3, dim), model=model)
    return initialised


def _state(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return (conn.execute("SELECT id, title, tags, status FROM assets ORDER BY id").fetchall(),
                conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall(),
                conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone())


def _refused(*args: str) -> str:
    result = run_cli("sql", *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def test_the_role_init_creates_has_no_power_beyond_reading(seeded, database_url):
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolreplication, rolcreaterole, rolcreatedb, rolbypassrls, "
            "rolcanlogin FROM pg_roles WHERE rolname = %s", (READER,)).fetchone()
        assert row == (False, False, False, False, False, True)
        for role in DANGEROUS_ROLES:
            member = conn.execute("SELECT to_regrole(%s) IS NOT NULL AND "
                                  "pg_has_role(%s, %s, 'USAGE')", (role, READER, role))
            assert member.fetchone()[0] is False, role
    passfile = reader_passfile(seeded.home)
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600


PROBES = [
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_read_binary_file('/etc/hostname')",
    "SELECT pg_ls_dir('.')",
    "SELECT pg_stat_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT pg_create_physical_replication_slot('keep_wal_forever')",
    "SELECT pg_reload_conf()",
    "SELECT pg_stat_reset()",
    "CHECKPOINT",
    "REINDEX TABLE assets",
    "DO $$ BEGIN LOCK TABLE assets IN ACCESS EXCLUSIVE MODE; END $$",
    "UPDATE assets SET title = 'pwned'",
    "DELETE FROM assets",
    "CREATE TABLE evil (v int)",
    "ALTER ROLE assetdb_reader SUPERUSER",
    "SET ROLE postgres",
]


@pytest.mark.parametrize("probe", PROBES)
def test_sql_probes_fail_and_change_nothing(seeded, database_url, probe):
    before = _state(database_url)
    output = _refused(probe)
    assert "permission denied" in output or "read-only" in output or "must be" in output, output
    assert _state(database_url) == before


def test_copy_to_program_and_to_file_do_not_run(seeded, database_url, tmp_path):
    marker = tmp_path / "ran"
    os.chmod(tmp_path, 0o777)  # so that the server's own user could write it, were it asked
    target = tmp_path / "written"
    for probe in (f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
                  f"COPY (SELECT 1) TO '{target}'"):
        _refused(probe)
    # The same statements through the read-only URL an analyst gives psql.
    with psycopg.connect(reader_conninfo(seeded), autocommit=True) as conn:
        for probe in (f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
                      f"COPY (SELECT 1) TO '{target}'",
                      f"COPY assets FROM PROGRAM 'touch {marker}'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(probe)
    assert not marker.exists() and not target.exists()


def test_reader_cannot_signal_other_sessions(seeded, database_url):
    with psycopg.connect(database_url) as victim:
        pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
        with psycopg.connect(reader_conninfo(seeded), autocommit=True) as conn:
            for fn in ("pg_terminate_backend", "pg_cancel_backend"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT {fn}(%s)", (pid,))  # noqa: S608 - fixed names
        assert victim.execute("SELECT 1").fetchone() == (1,)


def test_sql_refuses_a_login_with_powers(seeded, database_url, monkeypatch):
    monkeypatch.setenv("ASSETDB_READONLY_DATABASE_URL", database_url)  # the superuser
    output = _refused("SELECT 1")
    assert "refuses to run as 'postgres'" in output and "SUPERUSER" in output
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS assetdb_test_writer")
        conn.execute("CREATE ROLE assetdb_test_writer LOGIN PASSWORD 'pw-of-writer'")
        conn.execute("GRANT SELECT, UPDATE ON assets TO assetdb_test_writer")
    try:
        writer = reader_conninfo(seeded).replace(f"user={READER}", "user=assetdb_test_writer")
        writer = writer.replace(f"passfile={reader_passfile(seeded.home)}", "password=pw-of-writer")
        monkeypatch.setenv("ASSETDB_READONLY_DATABASE_URL", writer)
        output = _refused("SELECT 1")
        assert "may write assets" in output and "pw-of-writer" not in output
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("REVOKE ALL ON assets FROM assetdb_test_writer")
            conn.execute("DROP ROLE assetdb_test_writer")


def test_read_only_url_reads_and_holds_no_secret(seeded, database_url):
    result = run_cli("db", "url", "--read-only")
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    secret = reader_passfile(seeded.home).read_text().strip().rsplit(":", 1)[1]
    assert secret not in url and f"{READER}@" in url and "passfile=" in url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (READER,)
        assert conn.execute("SELECT count(*) FROM assets").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM assetdb_similar(1, 2)").fetchone() == (2,)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


def test_existing_catalogue_upgrades_with_init(seeded, database_url):
    """A catalogue made before the role existed: sql says what to do; init adds the role
    and changes nothing else."""
    reader_passfile(seeded.home).unlink()
    output = _refused("SELECT count(*) FROM assets")
    assert "run `assetdb init`" in output
    before = _state(database_url)
    result = run_cli("init", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["read_only_role_ready"] is True
    assert _state(database_url) == before
    ok = run_cli("sql", "SELECT count(*) AS n FROM assets", "--format", "json")
    assert ok.exit_code == 0 and json.loads(ok.output) == [{"n": 3}]


def test_init_without_role_powers_prints_the_grants(seeded, database_url, monkeypatch, tmp_path):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS assetdb_test_owner")
        conn.execute("CREATE ROLE assetdb_test_owner LOGIN PASSWORD 'pw-of-owner'")
        conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO assetdb_test_owner")
        conn.execute("GRANT ALL ON SCHEMA public TO assetdb_test_owner")
    try:
        base, _, query = database_url.partition("?")
        plain = base.replace("postgres@", "assetdb_test_owner:pw-of-owner@", 1)
        query = "&".join(p for p in query.split("&") if not p.startswith("passfile="))
        monkeypatch.setenv("ASSETDB_DATABASE_URL", plain + "?" + query)
        monkeypatch.setenv("ASSETDB_HOME", str(tmp_path / "other-home"))
        result = run_cli("init")
        assert result.exit_code == 0, result.output
        assert "an admin runs" in result.output
        assert f"CREATE ROLE {READER} LOGIN" in result.output
        assert f'GRANT SELECT ON TABLE "assets" TO "{READER}"' in result.output
        assert "pw-of-owner" not in result.output
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM assetdb_test_owner")
            conn.execute("REVOKE ALL ON SCHEMA public FROM assetdb_test_owner")
            conn.execute("DROP ROLE assetdb_test_owner")


def test_sql_timeout_must_be_a_finite_positive_number(seeded):
    for bad in ("nan", "inf", "-1", "0"):
        result = run_cli("sql", "SELECT 1", "--timeout", bad)
        assert result.exit_code != 0 and "Traceback" not in result.output, (bad, result.output)
        assert "timeout" in result.output.lower()


def test_passfiles_are_private(seeded):
    path = Path(reader_passfile(seeded.home))
    assert path.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
