"""Real worker processes against the real server: four workers share 2,000 assets and each
asset goes to the model exactly once; a worker killed with SIGKILL mid-claim loses nothing
and causes no double write; SIGTERM finishes the batch and exits 0.

What each worker did is read from its own `--json` report (rows encoded, embedded, writes
lost to another worker) and from the rows: no test hook inside the worker.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import psycopg
import pytest

from tests.conftest import run_cli
from tests.images import large, noise
from tests.test_worker_leases import WAIT_S, spawn_worker


def _spawn(*args: str) -> subprocess.Popen[str]:
    return spawn_worker("--json", *args)


def _scalar(url: str, sql: str, *params):  # noqa: ANN202
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def _wait(what: str, cond, procs: list[subprocess.Popen[str]]) -> None:  # noqa: ANN001
    deadline = time.monotonic() + WAIT_S
    while not cond():
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"worker exited early ({p.returncode}) waiting for {what}:\n"
                            f"{p.stderr.read() if p.stderr else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stop(*procs: subprocess.Popen[str]) -> list[tuple[dict, str]]:
    """SIGTERM all, then each must exit 0; returns their reports and stderr."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=WAIT_S)
        assert proc.returncode == 0, stderr
        out.append((json.loads(stdout), stderr))
    return out


def _make_images(folder, n: int) -> None:  # noqa: ANN001
    for i in range(n):
        noise(folder / f"a{i:04d}.png", seed=i, size=(16, 16))


def test_four_workers_embed_2000_assets_exactly_once(initialised, database_url, tmp_path, procs):
    n = 2000
    _make_images(tmp_path / "imgs", n)
    procs.extend(_spawn("--batch-size", "16") for _ in range(4))
    # All four have loaded the model and wait on the empty queue before rows appear,
    # so they really compete for them.
    _wait("four running workers", lambda: _scalar(
        database_url, "SELECT count(*) FROM assetdb_workers WHERE state = 'running'") == 4, procs)
    result = run_cli("ingest", str(tmp_path / "imgs"), "--no-embed")
    assert result.exit_code == 0 and f"{n} registered" in result.output, result.output
    _wait("every asset ready", lambda: _scalar(
        database_url, "SELECT count(*) FROM assets WHERE status = 'ready'") == n, procs)
    reports = [r for r, _ in _stop(*procs)]

    # One model call per asset, one write per asset, none fenced off.
    assert sum(r["encoded"] for r in reports) == n, reports
    assert sum(r["embedded"] for r in reports) == n and not any(r["lost"] for r in reports)
    busy = [r for r in reports if r["embedded"]]
    assert len(busy) >= 2, f"the work was not shared: {[r['embedded'] for r in reports]}"
    assert _scalar(database_url, "SELECT count(*) FROM assets WHERE status = 'ready' AND "
                   "embedding IS NOT NULL AND attempts = 1 AND lease_owner IS NULL") == n
    assert _scalar(database_url, "SELECT count(*) FROM assetdb_workers WHERE state = 'stopped' "
                                 "AND embedded > 0") == len(busy)


def _leased(url: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM assets WHERE lease_owner IS NOT NULL")}


def test_sigkill_mid_claim_loses_nothing_and_writes_nothing_twice(
        initialised, database_url, tmp_path, procs):
    n = 24
    for i in range(n):
        large(tmp_path / "imgs" / f"a{i:02d}.png", seed=i)  # slow batches: a wide window
    assert run_cli("ingest", str(tmp_path / "imgs"), "--no-embed").exit_code == 0
    victim = _spawn("--batch-size", "4", "--lease-seconds", "3")
    procs.append(victim)
    # Killed while it holds a claim of 16 rows (4 batches), some perhaps written already.
    _wait("the victim's claim", lambda: len(_leased(database_url)) > 0, procs)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, status, attempts FROM assets "
                            "WHERE lease_owner IS NOT NULL").fetchall()
        written = conn.execute("SELECT count(*) FROM assets WHERE status = 'ready'").fetchone()[0]
    held = {r[0] for r in rows}
    assert held and written + len(held) in (16, n)  # its first claim, or its second
    assert {(r[1], r[2]) for r in rows} == {("pending", 1)}

    rescuer = _spawn("--batch-size", "4")
    procs.append(rescuer)
    _wait("every asset ready", lambda: _scalar(
        database_url, "SELECT count(*) FROM assets WHERE status = 'ready'") == n, [rescuer])
    (report, _), = _stop(rescuer)
    # The rescuer did everything the victim had not written, once: held rows after
    # their lease expired (without renewal from the dead victim), and the rest.
    assert report["encoded"] == report["embedded"] == n - written and report["lost"] == 0
    with psycopg.connect(database_url) as conn:
        attempts = dict(conn.execute("SELECT id, attempts FROM assets").fetchall())
        assert conn.execute("SELECT count(*) FROM assets WHERE lease_owner IS NOT NULL "
                            "OR embedding IS NULL").fetchone()[0] == 0
    assert {i for i, a in attempts.items() if a == 2} == held
    assert {a for i, a in attempts.items() if i not in held} == {1}


def test_sigterm_finishes_the_batch_and_exits_0(initialised, database_url, tmp_path, procs):
    for i in range(12):
        large(tmp_path / "imgs" / f"a{i:02d}.png", seed=i)
    assert run_cli("ingest", str(tmp_path / "imgs"), "--no-embed").exit_code == 0
    # Like a worker on another machine: only the database URL. ASSETDB_MODEL unset means
    # the default hub model, which cannot load offline: the model comes from the database.
    worker = spawn_worker("--json", "--batch-size", "5", env={"ASSETDB_MODEL": "",
                                                              "ASSETDB_HOME": ""})
    procs.append(worker)
    # One claim of all 12 rows, in batches of 5, 5 and 2: the signal comes mid-claim.
    _wait("the claim", lambda: len(_leased(database_url)) > 0, procs)
    (report, stderr), = _stop(worker)
    assert "SIGTERM" in stderr
    with psycopg.connect(database_url) as conn:
        counts = dict(conn.execute("SELECT status, count(*) FROM assets GROUP BY 1").fetchall())
        # The batch in hand was written; the rest of the claim was given back untouched.
        assert counts.get("ready") in (5, 10) and report["embedded"] == counts["ready"]
        assert conn.execute("SELECT DISTINCT attempts FROM assets WHERE status = 'pending'"
                            ).fetchall() == [(0,)]
        assert conn.execute("SELECT count(*) FROM assets WHERE lease_owner IS NOT NULL"
                            ).fetchone()[0] == 0
        assert conn.execute("SELECT state FROM assetdb_workers").fetchall() == [("stopped",)]
