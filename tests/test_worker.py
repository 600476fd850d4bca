"""`assetdb worker`, `status` and `retry` in-process against the real server: claims,
leases, failures with attempt counts, expired leases, give-up."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.conftest import run_cli
from tests.images import noise


def _register(tmp_path, n: int) -> list:
    paths = [noise(tmp_path / "imgs" / f"n{i:03d}.png", seed=i, size=(16, 16)) for i in range(n)]
    result = run_cli("ingest", str(tmp_path / "imgs"), "--no-embed")
    assert result.exit_code == 0, result.output
    assert f"{n} registered" in result.output
    return paths


def _rows(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _exec(url: str, sql: str, *params) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)


def test_worker_once_embeds_pending_rows(initialised, database_url, tmp_path, encoder):
    _register(tmp_path, 7)
    assert _rows(database_url, "SELECT count(*) FROM assets WHERE status = 'pending'") == [(7,)]
    result = run_cli("worker", "--once", "--batch-size", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embedded"] == 7 and report["batches"] == 3
    rows = _rows(database_url, "SELECT status, embedding IS NOT NULL, embedding_model, attempts, "
                               "lease_owner FROM assets")
    assert rows == [("ready", True, encoder.name, 1, None)] * 7
    # The worker embeds like ingest does: same vector for the same file.
    result = run_cli("search", "a red circle", "-k", "7", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 7
    # Nothing left: a second run claims nothing.
    result = run_cli("worker", "--once", "--json")
    assert json.loads(result.stdout)["embedded"] == 0


def test_failure_is_retried_then_stays_failed_and_retry_requeues(
        initialised, database_url, tmp_path):
    paths = _register(tmp_path, 3)
    paths[1].unlink()  # registered, then gone before a worker reads it
    result = run_cli("worker", "--once", "--max-attempts", "2", "--retry-delay", "0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embedded"] == 2 and report["requeued"] == 1 and report["failed"] == 1
    (status, attempts, error), = _rows(
        database_url, "SELECT status, attempts, error FROM assets WHERE uri = %s", str(paths[1]))
    assert status == "failed" and attempts == 2 and "not found" in error.lower()

    result = run_cli("status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by_status"] == {"pending": 0, "ready": 2, "failed": 1}
    assert data["recent_failures"][0]["uri"] == str(paths[1])
    assert data["workers"] and data["workers"][0]["state"] == "stopped"
    human = run_cli("status")
    assert "recent failures" in human.output and "not found" in human.output.lower()

    noise(paths[1], seed=1, size=(16, 16))  # the file is back
    result = run_cli("retry", "--failed")
    assert result.exit_code == 0 and "1 failed rows queued again" in result.output
    assert _rows(database_url, "SELECT status, attempts, error FROM assets WHERE uri = %s",
                 str(paths[1])) == [("pending", 0, None)]
    assert run_cli("worker", "--once").exit_code == 0
    assert _rows(database_url, "SELECT count(*) FROM assets WHERE status = 'ready'") == [(3,)]


def test_expired_lease_is_claimed_again_and_gives_up_after_max_attempts(
        initialised, database_url, tmp_path):
    paths = _register(tmp_path, 3)
    # A live lease of another worker, an expired one, and an expired one with no attempts left.
    _exec(database_url, "UPDATE assets SET lease_owner = 'ghost', attempts = 1, "
                        "lease_expires_at = now() + interval '1 hour' WHERE uri = %s",
          str(paths[0]))
    _exec(database_url, "UPDATE assets SET lease_owner = 'ghost', attempts = 1, "
                        "lease_expires_at = now() - interval '1 second' WHERE uri = %s",
          str(paths[1]))
    _exec(database_url, "UPDATE assets SET lease_owner = 'ghost', attempts = 3, "
                        "lease_expires_at = now() - interval '1 second' WHERE uri = %s",
          str(paths[2]))
    status = json.loads(run_cli("status", "--json").stdout)
    assert status["pending"]["leased"] == 1 and status["pending"]["expired_leases"] == 2
    assert status["leases"] == [
        {"worker": "ghost", "rows": 3, "expires_at": status["leases"][0]["expires_at"],
         "expired": True}]

    result = run_cli("worker", "--once", "--max-attempts", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embedded"] == 1 and report["gave_up"] == 1
    got = dict((uri, (s, a, e)) for uri, s, a, e in _rows(
        database_url, "SELECT uri, status, attempts, error FROM assets"))
    assert got[str(paths[0])] == ("pending", 1, None)  # still leased to its live holder
    assert got[str(paths[1])] == ("ready", 2, None)
    assert got[str(paths[2])][:2] == ("failed", 3)
    assert "gave up after 3 attempts" in got[str(paths[2])][2]


def test_worker_refuses_bad_options(initialised):
    result = run_cli("worker", "--batch-size", "0")
    assert result.exit_code == 2 and "batch-size" in result.output


@pytest.mark.parametrize("cmd", ["worker", "status", "retry", "reembed"])
def test_help_has_an_example(cmd):
    result = run_cli(cmd, "--help")
    assert result.exit_code == 0 and "Example" in result.output


def test_new_commands_help_loads_no_model_stack():
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from assetdb.cli.main import cli\n"
        "for cmd in ('worker', 'status', 'retry', 'reembed'):\n"
        "    assert CliRunner().invoke(cli, [cmd, '--help']).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
