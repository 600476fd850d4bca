"""Leases live as long as their worker: a heartbeat renews them however slow a batch is,
so a second live worker never takes rows over (nothing is encoded twice); and a killed
worker shows as dead in `assetdb status` within a few heartbeats."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from assetdb.ingest.heartbeat import DEAD_AFTER_S
from tests.conftest import run_cli
from tests.images import large

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 300  # generous: the machine is shared; only the liveness test bounds a time


def spawn_worker(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = dict(os.environ)
    environ.update(
        PYTHONPATH=os.pathsep.join([str(REPO), environ.get("PYTHONPATH", "")]),
        ASSETDB_DECODE_WORKERS="1",
        OMP_NUM_THREADS="1",  # several processes on a small machine: no oversubscription
        **(env or {}),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "assetdb", "worker", "--poll-seconds", "0.2", *args],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _scalar(url: str, sql: str, *params):  # noqa: ANN202
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def _wait(what: str, cond, procs: list[subprocess.Popen[str]]) -> None:  # noqa: ANN001
    deadline = time.monotonic() + WAIT_S
    while not cond():
        assert all(p.poll() is None for p in procs), f"a worker exited waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_short_lease_and_slow_batches_never_hand_rows_to_a_second_worker(
        initialised, database_url, tmp_path, procs):
    n = 40
    for i in range(n):
        large(tmp_path / "imgs" / f"a{i:02d}.png", seed=i)
    # One claim is 4 batches of 4 slow images: seconds, several times the 1 s lease.
    procs.extend(spawn_worker("--json", "--batch-size", "4", "--lease-seconds", "1")
                 for _ in range(2))
    _wait("two waiting workers", lambda: _scalar(
        database_url, "SELECT count(*) FROM assetdb_workers WHERE state = 'running'") == 2, procs)
    assert run_cli("ingest", str(tmp_path / "imgs"), "--no-embed").exit_code == 0
    _wait("every asset ready", lambda: _scalar(
        database_url, "SELECT count(*) FROM assets WHERE status = 'ready'") == n, procs)
    reports = []
    for p in procs:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=WAIT_S)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    # Each row went to the model once, and no write was fenced off.
    assert sum(r["encoded"] for r in reports) == n, reports
    assert sum(r["embedded"] for r in reports) == n and not any(r["lost"] for r in reports)
    assert all(r["embedded"] > 0 for r in reports), "the work was not shared"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status, attempts, count(*) FROM assets GROUP BY 1, 2"
                            ).fetchall() == [("ready", 1, n)]  # each row claimed once


def _worker_states() -> dict[int, str]:
    result = run_cli("status", "--json")
    assert result.exit_code == 0, result.output
    return {w["pid"]: w["state"] for w in json.loads(result.stdout)["workers"]}


def test_a_killed_worker_shows_as_dead_within_a_few_heartbeats(
        initialised, database_url, procs):
    worker = spawn_worker()
    procs.append(worker)
    deadline = time.monotonic() + WAIT_S
    # Alive: registered, and its heartbeat moves last_seen on while it waits for work.
    while not _scalar(database_url, "SELECT count(*) FROM assetdb_workers "
                                    "WHERE last_seen > started_at"):
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    assert _worker_states() == {worker.pid: "running"}
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed = time.monotonic()
    while _worker_states()[worker.pid] != "dead":
        assert time.monotonic() - killed < DEAD_AFTER_S + 5, "still shown as running"
        time.sleep(0.2)


def test_a_worker_on_another_host_is_dead_when_its_heartbeat_is_late(initialised, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO assetdb_workers (id, hostname, pid, last_seen) VALUES "
                     "('far:1:aa', 'far-away-host', 1, now()), "
                     "('far:2:bb', 'far-away-host', 2, now() - make_interval(secs => %s))",
                     (DEAD_AFTER_S + 1,))
    assert _worker_states() == {1: "running", 2: "dead"}


def spawn_ingest(*args: str) -> subprocess.Popen[str]:
    environ = dict(os.environ)
    environ.update(PYTHONPATH=os.pathsep.join([str(REPO), environ.get("PYTHONPATH", "")]),
                   ASSETDB_DECODE_WORKERS="1", OMP_NUM_THREADS="1", ASSETDB_BATCH_SIZE="4")
    return subprocess.Popen([sys.executable, "-m", "assetdb", "ingest", *args], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_ingests_of_one_folder_at_once_embed_each_file_once(
        initialised, database_url, tmp_path, procs):
    n = 48
    for i in range(n):
        large(tmp_path / "imgs" / f"a{i:02d}.png", seed=i)  # seconds of model work
    procs.extend(spawn_ingest(str(tmp_path / "imgs"), "--json") for _ in range(2))
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=WAIT_S)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    # Each file went to the model once, by one ingest or the other; the other skipped it.
    assert sum(r["embedded"] for r in reports) == n, reports
    assert all(r["ingested"] + r["unchanged"] + r["done_elsewhere"] == n for r in reports)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status, attempts, lease_owner, count(*) FROM assets "
                            "GROUP BY 1, 2, 3").fetchall() == [("ready", 0, None, n)]
