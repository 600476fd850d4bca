"""Real worker processes against the real server: four workers share 2,000 assets and each
asset goes to the model exactly once; a worker killed with SIGKILL mid-batch loses
nothing and causes no double write; SIGTERM finishes the batch and exits 0.

Each worker process logs (test hook ASSETDB_TEST_EMBED_LOG) the asset ids it gave to the
model ("encoded") and the ones whose results it committed ("committed").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_cli
from tests.images import noise

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 300  # generous: the machine is shared; nothing here asserts on time


def _spawn(log_dir: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    environ = dict(os.environ)
    environ.update(
        PYTHONPATH=os.pathsep.join([str(REPO), environ.get("PYTHONPATH", "")]),
        ASSETDB_TEST_EMBED_LOG=str(log_dir),
        ASSETDB_DECODE_WORKERS="1",
        OMP_NUM_THREADS="1",  # four processes on a small machine: no thread oversubscription
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "assetdb", "worker", "--poll-seconds", "0.2", *args],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _scalar(url: str, sql: str, *params):  # noqa: ANN202
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def _wait(what: str, cond, procs: list[subprocess.Popen[str]]) -> None:  # noqa: ANN001
    deadline = time.monotonic() + WAIT_S
    while not cond():
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"worker exited early ({p.returncode}) waiting for {what}:\n"
                            f"{p.stdout.read() if p.stdout else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stop(*procs: subprocess.Popen[str]) -> str:
    """SIGTERM all, then each must exit 0; returns their output."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=WAIT_S)
        assert proc.returncode == 0, out
        outputs.append(out)
    return "\n".join(outputs)


def _events(log_dir: Path) -> dict[int, dict[str, Counter[int]]]:
    """pid -> event -> Counter of asset ids."""
    out: dict[int, dict[str, Counter[int]]] = {}
    for log in log_dir.glob("*.log"):
        per = out.setdefault(int(log.stem), {"encoded": Counter(), "committed": Counter()})
        for line in log.read_text().splitlines():
            event, asset_id = line.split()
            per[event][int(asset_id)] += 1
    return out


def _total(events: dict[int, dict[str, Counter[int]]], event: str) -> Counter[int]:
    total: Counter[int] = Counter()
    for per in events.values():
        total.update(per[event])
    return total


def _make_images(folder: Path, n: int) -> None:
    for i in range(n):
        noise(folder / f"a{i:04d}.png", seed=i, size=(16, 16))


@pytest.fixture
def procs():  # noqa: ANN201
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:  # a failed test must not leave workers behind
        if p.poll() is None:
            p.kill()
            p.wait()


def test_four_workers_embed_2000_assets_exactly_once(initialised, database_url, tmp_path, procs):
    n = 2000
    _make_images(tmp_path / "imgs", n)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs.extend(_spawn(logs, "--batch-size", "16") for _ in range(4))
    # All four have loaded the model and wait on the empty queue before rows appear,
    # so they really compete for them.
    _wait("four running workers", lambda: _scalar(
        database_url, "SELECT count(*) FROM assetdb_workers WHERE state = 'running'") == 4, procs)
    result = run_cli("ingest", str(tmp_path / "imgs"), "--no-embed")
    assert result.exit_code == 0 and f"{n} registered" in result.output, result.output
    _wait("every asset ready", lambda: _scalar(
        database_url, "SELECT count(*) FROM assets WHERE status = 'ready'") == n, procs)
    _stop(*procs)

    ids = {r[0] for r in psycopg.connect(database_url).execute("SELECT id FROM assets")}
    events = _events(logs)
    encoded, committed = _total(events, "encoded"), _total(events, "committed")
    assert set(encoded) == ids and set(encoded.values()) == {1}  # one model call per asset
    assert set(committed) == ids and set(committed.values()) == {1}
    busy = [pid for pid, per in events.items() if per["committed"]]
    shares = [len(p["committed"]) for p in events.values()]
    assert len(busy) >= 2, f"the work was not shared: {shares}"
    assert _scalar(database_url, "SELECT count(*) FROM assets WHERE status = 'ready' AND "
                   "embedding IS NOT NULL AND attempts = 1 AND lease_owner IS NULL") == n
    assert _scalar(database_url, "SELECT count(*) FROM assetdb_workers WHERE state = 'stopped' "
                                 "AND embedded > 0") == len(busy)


def test_sigkill_mid_batch_loses_nothing_and_embeds_nothing_twice(
        initialised, database_url, tmp_path, procs):
    n = 40
    _make_images(tmp_path / "imgs", n)
    assert run_cli("ingest", str(tmp_path / "imgs"), "--no-embed").exit_code == 0
    logs = tmp_path / "logs"
    logs.mkdir()
    # Worker A encodes its first batch, then stalls before writing: killed right there.
    victim = _spawn(logs, "--batch-size", "8", "--lease-seconds", "3",
                    ASSETDB_TEST_STALL_SECONDS="600")
    procs.append(victim)
    victim_log = logs / f"{victim.pid}.log"
    _wait("the victim's encoded batch",
          lambda: victim_log.exists() and victim_log.read_text().count("encoded") == 8, procs)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # It claimed four batches (32 rows) and gave the first 8 to the model.
    held = {int(line.split()[1]) for line in victim_log.read_text().splitlines()}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, status, attempts, lease_owner FROM assets "
                            "WHERE lease_owner IS NOT NULL").fetchall()
    leased = {r[0] for r in rows}
    assert len(leased) == 32 and held <= leased
    assert {(r[1], r[2]) for r in rows} == {("pending", 1)}

    rescuer = _spawn(logs, "--batch-size", "8")
    procs.append(rescuer)
    _wait("every asset ready", lambda: _scalar(
        database_url, "SELECT count(*) FROM assets WHERE status = 'ready'") == n, [rescuer])
    _stop(rescuer)

    events = _events(logs)
    assert not events[victim.pid]["committed"]
    committed = _total(events, "committed")
    assert len(committed) == n and set(committed.values()) == {1}  # each written once
    assert set(events[rescuer.pid]["committed"]) >= leased  # taken over once the lease expired
    encoded = _total(events, "encoded")
    assert {i for i, c in encoded.items() if c == 2} == held and max(encoded.values()) == 2
    with psycopg.connect(database_url) as conn:
        attempts = dict(conn.execute("SELECT id, attempts FROM assets").fetchall())
        assert conn.execute("SELECT count(*) FROM assets WHERE lease_owner IS NOT NULL "
                            "OR embedding IS NULL").fetchone()[0] == 0
    assert {i for i, a in attempts.items() if a == 2} == leased
    assert {a for i, a in attempts.items() if i not in leased} == {1}


def test_sigterm_finishes_the_batch_and_exits_0(initialised, database_url, tmp_path, procs):
    _make_images(tmp_path / "imgs", 12)
    assert run_cli("ingest", str(tmp_path / "imgs"), "--no-embed").exit_code == 0
    logs = tmp_path / "logs"
    logs.mkdir()
    # Like a worker on another machine: only the database URL. ASSETDB_MODEL unset means
    # the default hub model, which cannot load offline: the model comes from the database.
    worker = _spawn(logs, "--batch-size", "5", ASSETDB_TEST_STALL_SECONDS="3",
                    ASSETDB_MODEL="", ASSETDB_HOME="")
    procs.append(worker)
    log = logs / f"{worker.pid}.log"
    _wait("an encoded batch", lambda: log.exists() and "encoded" in log.read_text(), procs)
    out = _stop(worker)  # arrives during the stall, between encoding and writing
    assert "SIGTERM" in out
    events = _events(logs)[worker.pid]
    assert set(events["committed"]) == set(events["encoded"])  # the batch was written
    assert len(events["committed"]) == 5
    with psycopg.connect(database_url) as conn:
        # The batch in hand was written; the rest of the claim was given back untouched.
        assert conn.execute("SELECT status, attempts, count(*) FROM assets GROUP BY 1, 2 "
                            "ORDER BY 1").fetchall() == [("pending", 0, 7), ("ready", 1, 5)]
        assert conn.execute("SELECT count(*) FROM assets WHERE lease_owner IS NOT NULL"
                            ).fetchone()[0] == 0
        assert conn.execute("SELECT state FROM assetdb_workers").fetchall() == [("stopped",)]
