"""`assetdb reembed --abort` while another process runs the re-embed: the run stops
cleanly at its next transaction (its own message, exit status 3, no traceback), and the
catalogue keeps its model and searchable vectors. A killed run shows as dead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from assetdb.embedding.encoder import load_encoder
from assetdb.ingest.model_switch import abort, database_model, reembed
from assetdb.ingest.status import status
from tests.conftest import run_cli
from tests.images import large, noise

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 300


def _shadow_columns(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                            "'assets'::regclass AND attname LIKE 'embedding_next%%' "
                            "AND NOT attisdropped").fetchone()[0]


def _job_states(url: str) -> list[tuple[str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT state FROM assetdb_reembed_jobs").fetchall()


def _assert_intact(settings, url: str, old_model: str, n: int) -> None:  # noqa: ANN001
    assert database_model(settings) == old_model
    assert _shadow_columns(url) == 0
    assert _job_states(url) == [("aborted",)]
    result = run_cli("search", "a red circle", "-k", str(n), "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == n, result.output


@pytest.mark.parametrize("switch", [True, False], ids=["another-model", "same-model"])
def test_abort_during_a_run_stops_it_at_the_next_batch(
        initialised, database_url, tmp_path, encoder, tiny_model_dir_64, switch):
    for i in range(8):
        noise(tmp_path / "imgs" / f"n{i}.png", seed=i, size=(32, 32))
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    target = load_encoder(str(tiny_model_dir_64)) if switch else encoder
    aborts = []

    def abort_after_first_batch(n: int) -> None:
        if not aborts:
            aborts.append(abort(initialised))  # as if from another process

    report = reembed(initialised, target, batch_size=2, progress=abort_after_first_batch)
    assert report.aborted and report.embedded == 2 and not report.switched
    assert aborts[0]["dropped_shadow_columns"] == switch
    _assert_intact(initialised, database_url, encoder.name, 8)


def _spawn_reembed(*args: str) -> subprocess.Popen[str]:
    environ = dict(os.environ)
    environ.update(PYTHONPATH=os.pathsep.join([str(REPO), environ.get("PYTHONPATH", "")]),
                   ASSETDB_DECODE_WORKERS="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "assetdb", "reembed", *args], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_progress(url: str, proc: subprocess.Popen[str]) -> None:
    """Until the running job has written a few batches."""
    deadline = time.monotonic() + WAIT_S
    while True:
        with psycopg.connect(url) as conn:
            done = conn.execute("SELECT max(done) FROM assetdb_reembed_jobs").fetchone()[0]
        if done and done >= 4:
            return
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the re-embed made no progress"
        time.sleep(0.1)


@pytest.fixture
def slow_catalogue(initialised, tmp_path) -> int:  # noqa: ANN001
    """Thirty slow-to-decode images: a re-embed in batches of 2 takes several seconds."""
    n = 30
    for i in range(n):
        large(tmp_path / "imgs" / f"a{i:02d}.png", seed=i)
    assert run_cli("ingest", str(tmp_path / "imgs")).exit_code == 0
    return n


@pytest.fixture
def proc_guard():  # noqa: ANN201
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_abort_from_another_process_stops_a_running_reembed_cleanly(
        initialised, database_url, encoder, tiny_model_dir_64, slow_catalogue, proc_guard):
    runner = _spawn_reembed("--model", str(tiny_model_dir_64), "--batch-size", "2", "--json")
    proc_guard.append(runner)
    _wait_for_progress(database_url, runner)
    result = run_cli("reembed", "--abort", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["aborted_job"], result.output
    out, err = runner.communicate(timeout=WAIT_S)
    assert runner.returncode == 3, err
    assert "the re-embed was aborted by another process" in err
    assert "Traceback" not in err and "embedding_next" not in err
    report = json.loads(out)
    assert report["aborted"] and not report["switched"] and report["embedded"] < slow_catalogue
    _assert_intact(initialised, database_url, encoder.name, slow_catalogue)


def test_a_killed_reembed_shows_as_dead_and_resumes(
        initialised, database_url, tiny_model_dir_64, slow_catalogue, proc_guard):
    runner = _spawn_reembed("--model", str(tiny_model_dir_64), "--batch-size", "2")
    proc_guard.append(runner)
    _wait_for_progress(database_url, runner)
    assert status(initialised)["reembed"]["state"] == "running"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    job = json.loads(run_cli("status", "--json").stdout)["reembed"]
    assert job["state"] == "dead" and job["pid"] == runner.pid
    assert "its process is gone" in run_cli("status").output
    # The same command resumes it, in this process; nothing is refused.
    stop = threading.Event()
    report = reembed(initialised, load_encoder(str(tiny_model_dir_64)), batch_size=2,
                     stop=stop, progress=lambda n: stop.set())
    assert report.interrupted and report.resumed_from >= 4
    assert status(initialised)["reembed"]["state"] == "interrupted"
