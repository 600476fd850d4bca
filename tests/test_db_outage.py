"""A database that goes away mid-command gives one clear line, and workers wait out a
short restart (issue 13, finding 13); a CLI search that follows the database's model
follows a switch that lands while it runs (finding 15)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from assetdb.db import embedded
from assetdb.db.engine import user_message
from tests.conftest import run_cli, server_dir
from tests.images import noise

CLI = [sys.executable, "-m", "assetdb"]


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM assets WHERE status = 'ready'").fetchone()[0]


def _wait_for(predicate, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_server_killed_mid_ingest_then_a_worker_waits_out_the_restart(tiny_model_dir, tmp_path):
    home = server_dir()
    url = embedded.start(home)
    env = {**os.environ, "ASSETDB_DATABASE_URL": url, "ASSETDB_MODEL": str(tiny_model_dir),
           "ASSETDB_HOME": str(tmp_path / "home"), "ASSETDB_BATCH_SIZE": "2",
           "ASSETDB_DECODE_WORKERS": "1"}
    try:
        subprocess.run([*CLI, "init"], env=env, check=True, capture_output=True, timeout=120)
        for i in range(3):
            noise(tmp_path / "queued" / f"q{i}.png", seed=100 + i)
        subprocess.run([*CLI, "ingest", "--no-embed", str(tmp_path / "queued")], env=env,
                       check=True, capture_output=True, timeout=120)
        for i in range(400):
            noise(tmp_path / "many" / f"m{i:03d}.png", seed=i, size=(24, 24))

        ingest = subprocess.Popen([*CLI, "ingest", str(tmp_path / "many")], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(lambda: _count(url) > 0, timeout=120)  # the first batch is written
            pid = embedded._read_pidfile(embedded.pgdata_dir(home))[0]
            os.kill(pid, signal.SIGKILL)
            out, err = ingest.communicate(timeout=120)
        finally:
            if ingest.poll() is None:
                ingest.kill()
        assert ingest.returncode == 1, (out, err)
        errors = [line for line in err.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, err
        assert "Traceback" not in err and "[SQL" not in err and "INSERT" not in err, err
        assert "run this again" in errors[0] or "cannot connect" in errors[0], errors[0]
        assert len(errors[0]) < 400

        # A worker started while the server is down waits, then embeds once it is back.
        worker = subprocess.Popen([*CLI, "worker", "--once", "--json"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(2)
            assert worker.poll() is None, worker.communicate()
            embedded.start(home)
            out, err = worker.communicate(timeout=120)
        finally:
            if worker.poll() is None:
                worker.kill()
        assert worker.returncode == 0, err
        assert json.loads(out)["embedded"] >= 3
        assert "the database is unavailable; trying again" in err
    finally:
        embedded.stop(home)


def test_user_message_is_one_line_without_statement_or_password():
    secret = "s3cr3t-pw"
    dsn = f"postgresql://u:{secret}@db.example/x"
    orig = psycopg.OperationalError(
        f"consuming input failed: server closed the connection unexpectedly ({secret})\n"
        "\tThis probably means the server terminated abnormally")
    exc = OperationalError("INSERT INTO assets (uri) VALUES (%(uri)s)",
                           {"uri": "/secret/path.png"}, orig)
    message = user_message(exc, dsn)
    assert message is not None and "\n" not in message
    assert "server closed the connection" in message and "run this again" in message
    assert secret not in message and "INSERT" not in message and "/secret/path" not in message
    assert user_message(ValueError("x"), dsn) is None


def test_cli_search_follows_a_model_switch(initialised, database_url, tmp_path, encoder,
                                           tiny_model_dir_64, monkeypatch):
    """ASSETDB_MODEL unset: the search loads the database's model; a re-embed switches the
    database to another model right after. The search reads the model again and retries
    with it, and never advises a re-embed back to the old model."""
    from assetdb.cli import common
    from assetdb.embedding.encoder import load_encoder
    from assetdb.ingest.model_switch import reembed

    for i in range(4):
        noise(tmp_path / "imgs" / f"n{i}.png", seed=i)
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    monkeypatch.delenv("ASSETDB_MODEL")
    real_load = common.load_model
    loaded: list[str] = []

    def load_then_switch(settings, name=None, meta=None):  # noqa: ANN001, ANN202
        got = real_load(settings, name, meta)
        loaded.append(got.name)
        if len(loaded) == 1:  # the switch lands between loading and searching
            report = reembed(settings, load_encoder(str(tiny_model_dir_64)))
            assert report.switched
        return got

    monkeypatch.setattr(common, "load_model", load_then_switch)
    result = run_cli("search", "red", "--json")
    assert result.exit_code == 0, result.output
    assert loaded == [encoder.name, str(tiny_model_dir_64.resolve())]
    assert len(json.loads(result.stdout)) == 4
    assert "reembed --model" not in result.output

    # If it switches again during the retry, it says to run it again: no reembed advice.
    from assetdb.db.engine import connect

    with connect(initialised) as conn:
        model = conn.execute(text("SELECT value FROM assetdb_meta WHERE key = 'model'")
                             ).scalar_one()
    assert model == str(tiny_model_dir_64.resolve())
    from assetdb.db.schema import check_model
    from assetdb.errors import ModelSwitched

    with pytest.raises(ModelSwitched, match="run it again") as info:
        check_model({"model": model, "dimension": "64"}, encoder.name, 32, followed=True)
    assert "reembed" not in str(info.value)
