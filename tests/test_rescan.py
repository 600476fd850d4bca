"""Issue 15, item 7: a re-scan of an unchanged folder writes no row and reads no file
contents. Real files, the real database, real byte counts (/proc/self/io): no mocks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from assetdb.db.engine import connect, reset_engines
from assetdb.ingest.ingest_files import ingest
from tests.bad_files import broken_chunk_png
from tests.conftest import run_cli
from tests.images import noise

HOUR_AGO = time.time() - 3600


def age(*paths: Path) -> None:
    """Set mtimes an hour back: a file changed just before it is hashed is 'racy' (its
    stat is not trusted next time), and these tests are about files that are not."""
    for path in paths:
        os.utime(path, (HOUR_AGO, HOUR_AGO))


def rows(settings) -> dict[str, tuple]:
    """uri -> (id, xmin, ctid, updated_at, status, error): xmin and ctid change with every
    write of a row, even one that sets the same values."""
    with connect(settings) as conn:
        return {r.uri: tuple(r[1:]) for r in conn.execute(text(
            "SELECT uri, id, xmin::text, ctid::text, updated_at, status, error FROM assets"))}


def writes(database_url: str) -> dict[str, int]:
    """Rows inserted, updated and deleted so far, per table, as the statistics system
    counts them. The pooled connections are closed first: a backend flushes its pending
    counts when it exits, so none is still held back."""
    reset_engines()
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):  # the closed backends take a moment to exit
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()").fetchone()[0]
            if others == 0:
                break
            time.sleep(0.02)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return {r[0]: r[1] for r in conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables")}


def read_bytes() -> int:
    """Bytes this process (all its threads) has passed through read() and pread()."""
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])


def mixed_folder(folder: Path, sidecar_format: str) -> tuple[list[Path], Path]:
    """Good images, files that fail in each stage (sniff, probe, decode), and a sidecar
    with an entry for every one of them."""
    good = [noise(folder / f"good{i}.png", seed=i) for i in range(3)]
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_bytes(b"not an image at all")
    (folder / "truncated.png").write_bytes(good[0].read_bytes()[:60])
    broken_chunk_png(folder / "broken.png")
    files = sorted(p for p in folder.iterdir())
    age(*files)
    if sidecar_format == "json":
        sidecar = folder.parent / "meta.json"
        sidecar.write_text(json.dumps([
            {"image_path": str(p), "title": f"T {p.stem}", "tags": ["x", p.stem],
             "sku": i, "captured_at": "2024-05-01T10:00:00Z"}
            for i, p in enumerate(files)]))
    else:
        sidecar = folder.parent / "meta.csv"
        sidecar.write_text("image_path,title,tags,sku\n" + "".join(
            f"{p},T {p.stem},\"x,{p.stem}\",{i}\n" for i, p in enumerate(files)))
    return files, sidecar


@pytest.mark.parametrize("sidecar_format", ["json", "csv"])
def test_rescan_of_unchanged_folder_writes_no_row(initialised, database_url, tmp_path,
                                                  sidecar_format):
    folder = tmp_path / "shoot"
    folder.mkdir()
    files, sidecar = mixed_folder(folder, sidecar_format)
    first = run_cli("ingest", str(folder), "--metadata", str(sidecar), "--json")
    report = json.loads(first.stdout)
    assert (report["ingested"], report["failed"]) == (3, 4), first.output
    before, counted = rows(initialised), writes(database_url)
    assert {Path(u).name for u, r in before.items() if r[4] == "failed"} == {
        "empty.png", "text.png", "truncated.png", "broken.png"}

    again = run_cli("ingest", str(folder), "--metadata", str(sidecar), "--json")
    report = json.loads(again.stdout)
    assert again.exit_code == 1  # the failures are still reported
    assert (report["ingested"], report["unchanged"], report["failed"]) == (0, 3, 4)
    assert rows(initialised) == before  # same xmin, ctid, updated_at: not rewritten
    assert writes(database_url) == counted  # not one row in any table
    assert report["not_read"] == len(files)

    # A sidecar that changes one field writes that row, and only it.
    changed = sidecar.read_text().replace("T good1", "Renamed")
    sidecar.write_text(changed)
    run_cli("ingest", str(folder), "--metadata", str(sidecar))
    after = rows(initialised)
    rewritten = {Path(u).name for u in after if after[u][1:4] != before[u][1:4]}
    assert rewritten == {"good1.png"}


def test_unchanged_file_is_not_read_and_rehash_reads_it(initialised, encoder, tmp_path):
    folder = tmp_path / "big"
    files = [noise(folder / f"f{i}.png", seed=i, size=(300, 300)) for i in range(8)]
    age(*files)
    total = sum(p.stat().st_size for p in files)
    assert total > 1_000_000
    ingest(initialised, [str(folder)], encoder=encoder)

    start = read_bytes()
    report = ingest(initialised, [str(folder)], encoder=encoder)
    assert (report.unchanged, report.not_read) == (8, 8)
    assert read_bytes() - start < total / 20  # the database replies, not the files

    start = read_bytes()
    report = ingest(initialised, [str(folder)], encoder=encoder, rehash=True)
    assert (report.unchanged, report.not_read) == (8, 0)
    assert read_bytes() - start >= total  # every byte hashed again


def _rewrite_keeping_stat(path: Path, data: bytes) -> None:
    """New bytes of the same size in the same inode, with mtime put back."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def sha(settings, path: Path) -> str:
    with connect(settings) as conn:
        return conn.execute(text("SELECT sha256 FROM assets WHERE uri = :u"),
                            {"u": str(path)}).scalar_one()


def test_ctime_catches_a_rewrite_that_restores_mtime(initialised, encoder, tmp_path):
    a = noise(tmp_path / "a.png", seed=1)
    b = noise(tmp_path / "b.png", seed=2)
    age(a, b)
    ingest(initialised, [str(a)], encoder=encoder)
    old = sha(initialised, a)
    _rewrite_keeping_stat(a, b.read_bytes())  # same size: same generator, same shape
    report = ingest(initialised, [str(a)], encoder=encoder)
    assert (report.ingested, report.not_read) == (1, 0)
    assert sha(initialised, a) != old


def test_stat_is_trusted_until_rehash(initialised, encoder, tmp_path):
    """A file system that keeps size, mtime, ctime and inode through a rewrite (simulated
    by recording the new ctime) is trusted; --rehash reads the file and re-embeds it."""
    a = noise(tmp_path / "a.png", seed=1)
    b = noise(tmp_path / "b.png", seed=2)
    age(a, b)
    ingest(initialised, [str(a)], encoder=encoder)
    old = sha(initialised, a)
    _rewrite_keeping_stat(a, b.read_bytes())
    with connect(initialised) as conn:  # as if ctime had not moved
        conn.execute(text("UPDATE asset_files SET ctime_ns = :c"),
                     {"c": a.stat().st_ctime_ns})
    report = ingest(initialised, [str(a)], encoder=encoder)
    assert (report.unchanged, report.not_read) == (1, 1)
    assert sha(initialised, a) == old

    result = run_cli("ingest", str(a), "--rehash", "--json")
    report = json.loads(result.stdout)
    assert (report["ingested"], report["not_read"]) == (1, 0), result.output
    assert sha(initialised, a) == sha_of(b)


def sha_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_changed_size_mtime_or_inode_is_read_again(initialised, encoder, tmp_path):
    files = [noise(tmp_path / f"{n}.png", seed=i) for i, n in enumerate("abcd")]
    spare = noise(tmp_path / "spare" / "x.png", seed=9)
    age(*files, spare)
    ingest(initialised, [str(tmp_path)], encoder=encoder)
    a, b, c, d = files
    os.utime(b, (HOUR_AGO - 60, HOUR_AGO - 60))  # mtime only: same bytes, read, no write
    c.write_bytes(c.read_bytes() + b"\0")  # size
    os.replace(spare, d)  # another inode (a file replaced by rename)
    age(c, d)
    before = rows(initialised)
    report = ingest(initialised, [str(tmp_path)], encoder=encoder)
    assert (report.not_read, report.unchanged, report.ingested) == (1, 2, 2)
    after = rows(initialised)
    assert after[str(a)] == before[str(a)] and after[str(b)] == before[str(b)]
    assert sha(initialised, d) == sha_of(d)
    # Their new status is recorded: the next re-scan reads nothing, and says so.
    result = run_cli("ingest", str(tmp_path))
    assert "0 ingested, 4 unchanged, 0 failed; 4 not read (unchanged since last read; " \
        "--rehash reads them)" in result.stdout, result.output


def test_racy_file_is_read_again_next_time(initialised, encoder, tmp_path):
    """A file modified within the racy window of its hashing (here: just now) may change
    again without its mtime moving, on a file system with coarse times: it is re-read."""
    a = noise(tmp_path / "a.png", seed=1)
    ingest(initialised, [str(a)], encoder=encoder)
    assert ingest(initialised, [str(a)], encoder=encoder).not_read == 0
    age(a)
    ingest(initialised, [str(a)], encoder=encoder)  # records the now settled stat
    assert ingest(initialised, [str(a)], encoder=encoder).not_read == 1
