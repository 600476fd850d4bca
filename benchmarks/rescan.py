"""A re-scan of N unchanged files: wall time, bytes read and rows written.

Generates N small PNGs (32x32 noise, about 3 KB each, 1,000 per folder; one in 1,000 is
not an image and fails) and a CSV sidecar with a title, tags and a field for every file,
once, into --dir. Then, in a fresh database on a throw-away embedded server:

1. the first scan: `ingest --no-embed` through the Catalog (hash, probe, register; the
   product path), with the sidecar;
2. the rows are made 'ready' with random unit vectors of --dim (no model: what the rows
   cost the database is what real vectors cost), and the HNSW index is built;
3. the re-scans, each through `Catalog.ingest(recursive=True, metadata_file=sidecar)`,
   the path `assetdb ingest DIR -r -m SIDECAR` takes, with a model loader that refuses
   (an unchanged folder needs no model): `cold` after evicting the files' pages from the
   page cache (posix_fadvise DONTNEED, these files only), `warm` right after, and, where
   the code has it, `rehash` (cold, rehash=True).

Each re-scan reports wall and CPU seconds, the bytes this process read (/proc/self/io:
rchar counts read()/pread() calls, read_bytes what came from the disk), and the rows
inserted, updated and deleted in every table (pg_stat_user_tables, flushed by closing the
pooled connections).

It runs against whichever `assetdb` is imported, and says which (path and git commit):
for the code before issue 15's re-scan work, run it from a checkout of that commit, e.g.

    git worktree add /tmp/rescan-before 8cab2dd
    cp benchmarks/rescan.py /tmp/rescan-before/benchmarks/
    cd /tmp/rescan-before && python -m benchmarks.rescan --dir /tmp/rescan-files \\
        --out /tmp/rescan-before.json
    cd - && python -m benchmarks.rescan --dir /tmp/rescan-files --out docs/results/rescan.json
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import machine, report

MODEL, DIM = "bench-rescan", 512
PER_FOLDER = 1000
FAIL_EVERY = 1000


def generate(root: Path, n: int) -> tuple[list[Path], Path]:
    """N files under root (reused when already there) and the sidecar naming each."""
    import numpy as np
    from PIL import Image

    marker = root / f".complete-{n}"
    files = [root / f"d{i // PER_FOLDER:03d}" / f"f{i:06d}.png" for i in range(n)]
    sidecar = root / "meta.csv"
    if marker.exists():
        return files, sidecar
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    for i, path in enumerate(files):
        path.parent.mkdir(parents=True, exist_ok=True)
        out = io.BytesIO()
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(out, "PNG", compress_level=1)
        data = out.getvalue()
        failing = i % FAIL_EVERY == FAIL_EVERY - 1
        path.write_bytes(b"not an image: " + bytes(len(data)) if failing else data)
    with open(sidecar, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_path", "title", "tags", "sku"])
        for i, path in enumerate(files):
            writer.writerow([path.relative_to(root), f"Item {i}", f"bench,batch{i % 50}", i])
    os.sync()
    marker.touch()
    time.sleep(2.5)  # past the racy window: every file's status can be trusted
    return files, sidecar


def evict(files: list[Path]) -> None:
    """Drop these files' pages from the page cache (theirs only: the machine is shared)."""
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def io_counters() -> dict[str, int]:
    with open("/proc/self/io") as fh:
        pairs = (line.split(":") for line in fh)
        return {k: int(v) for k, v in pairs if k in ("rchar", "read_bytes", "syscr")}


def table_writes(server_url: str, db: str) -> dict[str, int]:
    """Rows inserted + updated + deleted per table so far. The pooled connections are
    closed first: a backend flushes its statistics when it exits."""
    import psycopg

    from assetdb.db.engine import reset_engines

    reset_engines()
    with psycopg.connect(server_url, autocommit=True) as conn:
        for _ in range(500):
            busy = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                (db,)).fetchone()[0]
            if busy == 0:
                break
            time.sleep(0.02)
    with psycopg.connect(_with_db(server_url, db), autocommit=True) as conn:
        return {r[0]: r[1] for r in conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables")}


def _with_db(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")


def seed_vectors(url: str, dim: int) -> float:
    """Every registered row 'ready' with a random unit vector; the HNSW index rebuilt
    once (faster than 100,000 inserts into it). Returns the seconds it took."""
    import psycopg

    from assetdb.db.indexes import EMBEDDING_INDEX, vector_index_sql

    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP INDEX IF EXISTS {EMBEDDING_INDEX}")
        conn.execute(
            "UPDATE assets AS a SET status = 'ready', embedding_model = %s, embedded_at = now(),"
            " embedding = v.e FROM (SELECT id, l2_normalize((SELECT array_agg(random() - 0.5)"
            "   FROM generate_series(1, %s) WHERE b.id IS NOT NULL)::vector) AS e"
            "   FROM assets AS b WHERE status = 'pending') AS v WHERE v.id = a.id",
            (MODEL, dim))
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(vector_index_sql(dim))  # the product's index (migration 0006)
        conn.execute("VACUUM ANALYZE assets")
    return time.perf_counter() - start


def measure(name: str, catalog: Any, args: dict[str, Any], server: str, db: str,
            files: list[Path], cold: bool) -> dict[str, Any]:
    from assetdb.ingest.scan import scan

    if cold:
        evict(files)
    before_rows = table_writes(server, db)
    before_io = io_counters()
    cpu, start = time.process_time(), time.perf_counter()
    rep = catalog.ingest(**args)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    after_io = io_counters()
    after_rows = table_writes(server, db)
    counts = rep.as_dict()
    written = {t: after_rows.get(t, 0) - before_rows.get(t, 0) for t in after_rows}
    walk = time.perf_counter()
    scan(args["paths"], recursive=True)
    return {
        "run": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "rchar_MB": round((after_io["rchar"] - before_io["rchar"]) / 1e6, 2),
        "disk_read_MB": round((after_io["read_bytes"] - before_io["read_bytes"]) / 1e6, 2),
        "read_calls": after_io["syscr"] - before_io["syscr"],
        "rows_written": sum(written.values()),
        "rows_written_by_table": {t: v for t, v in written.items() if v},
        "unchanged": counts["unchanged"], "failed": counts["failed"],
        "ingested": counts["ingested"], "not_read": counts.get("not_read"),
        "walk_only_s": round(time.perf_counter() - walk, 2),
    }


def _code() -> dict[str, Any]:
    import assetdb

    root = Path(assetdb.__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "assetdb"], capture_output=True,
                           text=True).stdout.strip()
    return {"assetdb": str(root), "commit": commit, "uncommitted_changes": bool(dirty)}


def _refuse() -> Any:
    raise SystemExit("the re-scan asked for the model: something was not unchanged")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/assetdb-rescan-files"),
                    help="where the generated files are kept (reused between runs)")
    ap.add_argument("--dim", type=int, default=DIM)
    ap.add_argument("--runs", default="cold,warm,rehash",
                    help="re-scans to measure, in order (rehash: only where supported)")
    ap.add_argument("--out", type=Path)
    opts = ap.parse_args()

    import inspect

    from assetdb.catalog.catalogue import Catalog
    from assetdb.config import Settings
    from assetdb.db import embedded
    from assetdb.ingest.ingest_files import ingest
    from benchmarks._common import bench_database, init_database

    info = {"machine": machine(), "code": _code(), "files": opts.files, "dim": opts.dim}
    print(f"assetdb from {info['code']}", file=sys.stderr)
    start = time.perf_counter()
    files, sidecar = generate(opts.dir, opts.files)
    info["generate_s"] = round(time.perf_counter() - start, 1)
    info["bytes_on_disk_MB"] = round(sum(p.stat().st_size for p in files) / 1e6, 1)

    home = embedded.scratch_home("assetdb-bench-")
    os.environ["ASSETDB_HOME"] = str(home)
    db = "rescan"
    try:
        with bench_database(home, db) as url:
            server = embedded.running_url(home)
            init_database(url, MODEL, opts.dim)
            catalog = Catalog(Settings.from_env())
            base = {"paths": [str(opts.dir)], "recursive": True, "metadata_file": sidecar}
            first = time.perf_counter()
            rep = catalog.ingest(**base, embed=False)
            info["first_scan"] = {"wall_s": round(time.perf_counter() - first, 1),
                                  "registered": rep.ingested, "failed": rep.failed}
            info["seed_vectors_s"] = round(seed_vectors(_with_db(server, db), opts.dim), 1)
            rows = []
            rehash_ok = "rehash" in inspect.signature(ingest).parameters
            for run in opts.runs.split(","):
                args = {**base, "load_encoder": _refuse}
                if run == "rehash":
                    if not rehash_ok:
                        continue
                    args["rehash"] = True
                rows.append(measure(run, catalog, args, server, db, files,
                                    cold=run != "warm"))
                print(rows[-1], file=sys.stderr)
            info["rescans"] = rows
    finally:
        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    table = [{k: v for k, v in r.items() if k != "rows_written_by_table"} for r in rows]
    report(f"re-scan of {opts.files} unchanged files", info, {"rescans": table}, opts.out)


if __name__ == "__main__":
    main()
