"""Re-embed the catalogue, with zero search downtime.

Another model (any dimension): the new vectors go to shadow columns (embedding_next,
embedding_next_model, embedding_next_at) that searches never read. They are filled in
batches; a row whose shadow already holds the target model is skipped, so an interrupted
run resumes where it stopped. Then the shadow HNSW index is built CONCURRENTLY (writes go
on), and ONE transaction swaps: it locks assetdb_meta and assets (waiting for running
searches, which hold them, to finish), checks that every ready row has its new vector
(rows embedded meanwhile by old-model workers are filled first), drops the old columns,
renames the shadow columns and indexes into place, records the new model in
assetdb_meta and runs MODEL_SWITCH_HOOKS. A search sees either the old model with the old
vectors or the new model with the new ones, never a mix.

Same model (a preprocessing fix, a subset by filters): vectors are replaced in place;
old and new vectors of one model are comparable, so searches are unaffected. Rows
re-embedded since the job started are skipped on resume.

`reembed --abort` from another process marks the job aborted, then drops the shadow
columns. Every transaction of a run starts by reading its job's row FOR SHARE: an abort
waits for that transaction to end, and the run's next transaction sees the abort and
stops (ReembedAborted) before it touches a shadow column. A heartbeat keeps the job's
last_seen fresh, so `assetdb status` tells a live run from a killed one.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import OperationalError

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect, get_engine
from assetdb.db.frames import replace_moments
from assetdb.db.indexes import (
    EMBEDDING_INDEX,
    FRAMES_INDEX,
    MODEL_INDEX,
    apply_build_settings,
    build_plan,
    hnsw_index_sql,
    vector_index_sql,
)
from assetdb.db.models import Asset
from assetdb.db.roles import READER
from assetdb.embedding.batches import Embedded, embed_assets
from assetdb.embedding.encoder import Encoder
from assetdb.errors import AssetdbError, FilterError
from assetdb.hooks import run_model_switch_hooks
from assetdb.ingest.heartbeat import DEAD_AFTER_S, HEARTBEAT_S, Heartbeat, pid_alive
from assetdb.search.filters import Filters
from assetdb.search.query import where_clauses

Progress = Callable[[int], None]
Row = tuple[int, str, str | None, int | None]  # id, uri, sha256, bytes

SHADOW_INDEX = "assets_embedding_next_hnsw"
SHADOW_MODEL_INDEX = "assets_embedding_next_model_idx"
# The moments of the new model (videos' frames, documents' pages): a shadow table with
# its own index, swapped in with the columns.
SHADOW_FRAMES = "asset_frames_next"
SHADOW_FRAMES_INDEX = "asset_frames_next_embedding_hnsw"
LOCK_TIMEOUT = "5s"  # DDL waits at most this long for running queries, then retries
SWAP_TRIES = 20


class ReembedError(AssetdbError):
    pass


class ReembedAborted(ReembedError):
    """The job was aborted (`assetdb reembed --abort`) while this process ran it."""

    def __init__(self) -> None:
        super().__init__("the re-embed was aborted by another process")


@dataclass
class ReembedReport:
    job_id: int
    model: str
    dimension: int
    switch: bool  # True: the catalogue moves to another model
    total: int = 0  # rows this run had to do
    embedded: int = 0
    failed: int = 0
    resumed_from: int = 0  # rows already done by an earlier, interrupted run
    switched: bool = False
    interrupted: bool = False
    aborted: bool = False  # by `assetdb reembed --abort` in another process

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _filters_json(f: Filters) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in f.as_dict().items() if v not in (None, [], {}, False)}


def running_job(conn: Connection) -> Any:
    return conn.execute(text(
        "SELECT * FROM assetdb_reembed_jobs WHERE state = 'running'"
    )).first()


def shadow_type(conn: Connection) -> str | None:
    """The SQL type of embedding_next, or None when there is no shadow column."""
    return conn.execute(text(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'assets'::regclass AND attname = 'embedding_next' "
        "AND NOT attisdropped"
    )).scalar()


def _lock_timeout(conn: Connection) -> None:
    conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": LOCK_TIMEOUT})


def _drop_shadow(conn: Connection) -> None:
    _lock_timeout(conn)
    conn.execute(text(
        "ALTER TABLE assets DROP COLUMN IF EXISTS embedding_next, "
        "DROP COLUMN IF EXISTS embedding_next_model, DROP COLUMN IF EXISTS embedding_next_at"
    ))
    conn.execute(text(f"DROP TABLE IF EXISTS {SHADOW_FRAMES}"))


def check_job(conn: Connection, job_id: int) -> None:
    """First statement of every transaction of a run: the row lock holds off an abort until
    the transaction ends, and an abort already committed stops the run here."""
    state = conn.execute(text("SELECT state FROM assetdb_reembed_jobs WHERE id = :i FOR SHARE"),
                         {"i": job_id}).scalar()
    if state == "aborted":
        raise ReembedAborted()
    if state != "running":
        raise ReembedError(f"re-embed job {job_id} was finished by another process")


def runner_alive(conn: Connection, job: Any) -> bool:
    """Whether the process recorded as running `job` still beats (False: none, or dead)."""
    if job.pid is None or job.last_seen is None:
        return False
    late = conn.execute(text("SELECT :t < now() - make_interval(secs => :d)"),
                        {"t": job.last_seen, "d": DEAD_AFTER_S}).scalar_one()
    return not late and pid_alive(job.hostname, job.pid) is not False


def _claim_job(conn: Connection, job: Any) -> None:
    """Record this process as the job's runner; refuse a job another live process runs."""
    if runner_alive(conn, job) and (job.hostname, job.pid) != (socket.gethostname(),
                                                               os.getpid()):
        raise ReembedError(
            f"re-embed job {job.id} is being run by process {job.pid} on {job.hostname}: "
            "wait for it, or stop it (Ctrl-C there, or `assetdb reembed --abort`)"
        )
    conn.execute(text("UPDATE assetdb_reembed_jobs SET hostname = :h, pid = :p, "
                      "last_seen = now() WHERE id = :i"),
                 {"h": socket.gethostname(), "p": os.getpid(), "i": job.id})


def _job_beat(job_id: int) -> Callable[[Connection], None]:
    def beat(conn: Connection) -> None:
        conn.execute(text("UPDATE assetdb_reembed_jobs SET last_seen = now() "
                          "WHERE id = :i AND state = 'running'"), {"i": job_id})
    return beat


def _release_job(settings: Settings, job_id: int) -> None:
    """The run ends (done, stopped, aborted or failed): nobody runs the job now."""
    with connect(settings) as conn:
        conn.execute(text("UPDATE assetdb_reembed_jobs SET pid = NULL, last_seen = now() "
                          "WHERE id = :i"), {"i": job_id})


def _start_job(conn: Connection, encoder: Encoder, switch: bool, filters: Filters) -> Any:
    job = running_job(conn)
    fjson = _filters_json(filters)
    if job is not None:
        same = (job.target_model == encoder.name and job.switch == switch
                and job.dimension == encoder.dimension and job.filters == fjson)
        if not same:
            raise ReembedError(
                f"re-embed job {job.id} (to {job.target_model!r}) is unfinished: resume it "
                f"with the same model and filters, or cancel it with `assetdb reembed --abort`"
            )
        _claim_job(conn, job)
        return running_job(conn)
    if switch and shadow_type(conn) is not None:  # left over from a crash: start clean
        _drop_shadow(conn)
    conn.execute(
        text("INSERT INTO assetdb_reembed_jobs (target_model, dimension, switch, filters) "
             "VALUES (:m, :d, :s, :f)"),
        {"m": encoder.name, "d": encoder.dimension, "s": switch, "f": Jsonb(fjson)},
    )
    job = running_job(conn)
    _claim_job(conn, job)
    return running_job(conn)


def abort(settings: Settings) -> dict[str, Any]:
    """Cancel the unfinished job and drop its shadow columns; searches are unaffected.
    A process running the job stops at its next transaction (ReembedAborted)."""
    with connect(settings) as conn:
        # Committed first: a running job sees it before it touches the shadow again.
        job_id = conn.execute(text(
            "UPDATE assetdb_reembed_jobs SET state = 'aborted', finished_at = now(), "
            "updated_at = now() WHERE state = 'running' RETURNING id"
        )).scalar()
    return {"aborted_job": job_id, "dropped_shadow_columns": drop_unused_shadow(settings)}


def drop_unused_shadow(settings: Settings) -> bool:
    """Drop shadow columns no running job owns. False when there were none, or when a
    running shadow index build held the table past the lock timeout (the run that built
    it drops them when it sees the abort)."""
    try:
        with connect(settings) as conn:
            if running_job(conn) is not None or shadow_type(conn) is None:
                return False
            _drop_shadow(conn)
        return True
    except OperationalError as exc:
        if "lock timeout" not in str(exc):
            raise
        return False


class _Run:
    def __init__(self, settings: Settings, encoder: Encoder, batch_size: int, job_id: int,
                 stop: threading.Event | None, progress: Progress | None) -> None:
        self.settings = settings
        self.job_id = job_id
        self.encoder = encoder
        self.batch_size = batch_size
        self.stop = stop or threading.Event()
        self.progress = progress
        self.timed: dict[int, Embedded] = {}  # the last batch's results with moments

    def embed(self, rows: list[Row]) -> list[tuple[int, Any, str | None]]:
        by_path = {Path(uri): i for i, uri, _, _ in rows}
        # A file changed since it was ingested fails rather than give its vector to the row.
        expected = {Path(uri): (sha, size) for _, uri, sha, size in rows}
        out: list[tuple[int, Any, str | None]] = []
        self.timed = {}
        for batch in embed_assets(self.encoder, list(by_path), batch_size=len(by_path),
                                  workers=self.settings.decode_workers, expected=expected):
            out.extend((by_path[d.path], d.vector, d.error) for d in batch)
            self.timed.update({by_path[d.path]: d for d in batch if d.timed})
        return out

    def store_moments(self, conn: Connection, ids: list[int], table: str) -> None:
        """The new moments of the rows just given a new vector."""
        items = [(i, d.moments, d.note, d.facts) for i in ids
                 if (d := self.timed.get(i)) is not None and d.vector is not None]
        replace_moments(conn, self.encoder.name, items, table)

    def loop(self, fetch: Callable[[Connection, int], list[Row]],
             store: Callable[[Connection, list[tuple[int, Any, str | None]]], None],
             report: ReembedReport) -> bool:
        """Fetch, embed and store batches until none is left; False if stopped."""
        last_id = 0
        while True:
            if self.stop.is_set():
                return False
            with connect(self.settings) as conn:
                check_job(conn, self.job_id)
                rows = fetch(conn, last_id)
            if not rows:
                return True
            last_id = rows[-1][0]
            results = self.embed(rows)
            with connect(self.settings) as conn:
                check_job(conn, self.job_id)
                store(conn, results)
                ok = sum(v is not None for _, v, _ in results)
                report.embedded += ok
                report.failed += len(results) - ok
                conn.execute(text(
                    "UPDATE assetdb_reembed_jobs SET done = done + :d, failed = failed + :f, "
                    "updated_at = now() WHERE id = :i"
                ), {"d": ok, "f": len(results) - ok, "i": report.job_id})
            if self.progress:
                self.progress(len(results))


# -- another model: shadow columns, concurrent index, one atomic swap ---------------------

# Ready rows without a new vector, or whose old vector was rewritten (a changed file
# ingested again) after their new one was made.
_TODO_SWITCH = (
    "FROM assets WHERE status = 'ready' AND (embedding_next_model IS DISTINCT FROM :m "
    "OR embedding_next_at < embedded_at)"
)


def _fill_shadow(run: _Run, report: ReembedReport) -> bool:
    model = run.encoder.name

    def fetch(conn: Connection, last_id: int) -> list[Row]:
        rows = conn.execute(text(
            f"SELECT id, uri, sha256, bytes {_TODO_SWITCH} AND id > :last "  # noqa: S608
            "ORDER BY id LIMIT :n"
        ), {"m": model, "last": last_id, "n": run.batch_size}).all()
        return [(r.id, r.uri, r.sha256, r.bytes) for r in rows]

    def store(conn: Connection, results: list[tuple[int, Any, str | None]]) -> None:
        for asset_id, vector, error in results:
            # A row the new model cannot embed keeps its old vector until the switch,
            # which marks it failed (its error is kept on the row).
            conn.execute(text(
                "UPDATE assets SET embedding_next = :v, embedding_next_model = :m, "
                "embedding_next_at = now(), error = :e WHERE id = :i"
            ), {"v": vector, "m": model, "i": asset_id,
                "e": None if vector is not None else f"re-embed with {model}: {error}"})
        run.store_moments(conn, [i for i, v, _ in results if v is not None], SHADOW_FRAMES)

    return run.loop(fetch, store, report)


def _index_valid(conn: Connection, name: str) -> bool | None:
    return conn.execute(text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :n"
    ), {"n": name}).scalar()


def _build_shadow_indexes(settings: Settings, job_id: int, dimension: int) -> None:
    """CREATE INDEX CONCURRENTLY (needs autocommit): writes and searches go on meanwhile.
    An interrupted build leaves an invalid index; it is dropped and built again. An abort
    meanwhile waits for the build (or times out) and is seen right after it."""
    with connect(settings) as conn:
        check_job(conn, job_id)
    statements = {
        SHADOW_INDEX: vector_index_sql(dimension, SHADOW_INDEX, column="embedding_next",
                                       concurrently=True),
        SHADOW_MODEL_INDEX: f"CREATE INDEX CONCURRENTLY {SHADOW_MODEL_INDEX} ON assets "
                            "(embedding_next_model)",
        SHADOW_FRAMES_INDEX: hnsw_index_sql(SHADOW_FRAMES_INDEX, table=SHADOW_FRAMES,
                                            concurrently=True),
    }
    engine = get_engine(settings)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        rows = conn.execute(text("SELECT count(*) FROM assets WHERE embedding_next IS NOT NULL"
                                 )).scalar_one()
        apply_build_settings(conn, build_plan(rows, dimension))  # the graph fits in memory
        for name, ddl in statements.items():
            valid = _index_valid(conn, name)
            if valid is False:
                conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
            if valid is not True:
                conn.execute(text(ddl))
    with connect(settings) as conn:
        check_job(conn, job_id)


def _swap(settings: Settings, encoder: Encoder, job_id: int) -> bool:
    """The one atomic step. False if ready rows still lack a new vector (fill again)."""
    with connect(settings) as conn:
        check_job(conn, job_id)
        _lock_timeout(conn)
        conn.execute(text("LOCK TABLE assetdb_meta IN ACCESS EXCLUSIVE MODE"))
        conn.execute(text("LOCK TABLE assets IN ACCESS EXCLUSIVE MODE"))
        conn.execute(text("LOCK TABLE asset_frames IN ACCESS EXCLUSIVE MODE"))
        missing = conn.execute(text(f"SELECT count(*) {_TODO_SWITCH}"),  # noqa: S608
                               {"m": encoder.name}).scalar_one()
        if missing:
            return False
        conn.execute(text(
            "ALTER TABLE assets DROP COLUMN embedding, DROP COLUMN embedding_model, "
            "DROP COLUMN embedded_at"
        ))
        for old, new in (("embedding_next", "embedding"),
                         ("embedding_next_model", "embedding_model"),
                         ("embedding_next_at", "embedded_at")):
            conn.execute(text(f"ALTER TABLE assets RENAME COLUMN {old} TO {new}"))
        conn.execute(text(f"ALTER INDEX {SHADOW_INDEX} RENAME TO {EMBEDDING_INDEX}"))
        conn.execute(text(f"ALTER INDEX {SHADOW_MODEL_INDEX} RENAME TO {MODEL_INDEX}"))
        _swap_frames(conn)
        conn.execute(text(
            "UPDATE assets SET status = 'failed', attempts = attempts + 1, updated_at = now() "
            "WHERE status = 'ready' AND embedding IS NULL"
        ))
        conn.execute(text("UPDATE assetdb_meta SET value = :v WHERE key = 'model'"),
                     {"v": encoder.name})
        conn.execute(text("UPDATE assetdb_meta SET value = :v WHERE key = 'dimension'"),
                     {"v": str(encoder.dimension)})
        run_model_switch_hooks(conn, encoder)
        conn.execute(text("UPDATE assetdb_reembed_jobs SET state = 'done', finished_at = now(), "
                          "updated_at = now() WHERE id = :i"), {"i": job_id})
    return True


def _swap_frames(conn: Connection) -> None:
    """Inside the swap: the new model's moments replace the old ones, index and all, and
    stay readable by the read-only role."""
    conn.execute(text("DROP TABLE asset_frames"))
    conn.execute(text(f"ALTER TABLE {SHADOW_FRAMES} RENAME TO asset_frames"))
    conn.execute(text(f"ALTER TABLE asset_frames RENAME CONSTRAINT {SHADOW_FRAMES}_pkey "
                      "TO asset_frames_pkey"))
    conn.execute(text(f"ALTER INDEX {SHADOW_FRAMES_INDEX} RENAME TO {FRAMES_INDEX}"))
    reader = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                          {"r": READER}).first()
    if reader is not None:
        conn.execute(text(f'GRANT SELECT ON TABLE asset_frames TO "{READER}"'))


def _add_shadow_frames(conn: Connection, dimension: int) -> None:
    conn.execute(text(
        f"""
        CREATE TABLE IF NOT EXISTS {SHADOW_FRAMES} (
            asset_id bigint NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
            position integer NOT NULL,
            seconds double precision,
            page integer,
            embedding vector({int(dimension)}) NOT NULL,
            embedding_model text NOT NULL,
            PRIMARY KEY (asset_id, position)
        )
        """
    ))


def _add_shadow_columns(conn: Connection, dimension: int) -> None:
    current = shadow_type(conn)
    if current == f"vector({dimension})":
        _add_shadow_frames(conn, dimension)
        return
    if current is not None:
        _drop_shadow(conn)
    _add_shadow_frames(conn, dimension)
    _lock_timeout(conn)
    # Nullable columns without a default: a catalogue-only change, no table rewrite.
    conn.execute(text(
        f"ALTER TABLE assets ADD COLUMN embedding_next vector({int(dimension)}), "
        "ADD COLUMN embedding_next_model text, ADD COLUMN embedding_next_at timestamptz"
    ))
    # Kept in the row like `embedding` (migration 0006), which it becomes at the switch.
    conn.execute(text("ALTER TABLE assets ALTER COLUMN embedding_next SET STORAGE MAIN"))


def _switch(settings: Settings, run: _Run, report: ReembedReport, job: Any,
            on_total: Progress | None) -> None:
    with connect(settings) as conn:
        check_job(conn, job.id)
        _add_shadow_columns(conn, run.encoder.dimension)
    with connect(settings) as conn:
        remaining = conn.execute(text(f"SELECT count(*) {_TODO_SWITCH}"),  # noqa: S608
                                 {"m": run.encoder.name}).scalar_one()
        report.total = remaining
        report.resumed_from = int(job.done)
        conn.execute(text("UPDATE assetdb_reembed_jobs SET total = :t WHERE id = :i"),
                     {"t": remaining + int(job.done), "i": job.id})
    if on_total:
        on_total(remaining)
    for _ in range(SWAP_TRIES):
        if not _fill_shadow(run, report):
            report.interrupted = True
            return
        _build_shadow_indexes(settings, job.id, run.encoder.dimension)
        if run.stop.is_set():
            report.interrupted = True
            return
        try:
            if _swap(settings, run.encoder, job.id):
                report.switched = True
                return
        except OperationalError as exc:  # lock_timeout: long queries held the table
            if "lock timeout" not in str(exc):
                raise
    raise ReembedError(
        f"could not switch after {SWAP_TRIES} tries: new rows keep arriving, or long "
        "transactions hold the assets table. The new vectors are kept: stop the old-model "
        "ingests and run `assetdb reembed` again to resume"
    )


# -- same model: replace vectors in place ---------------------------------------------------

def _in_place(run: _Run, report: ReembedReport, job: Any, filters: Filters,
              model: str, on_total: Progress | None) -> None:
    # Hidden rows are part of the catalogue: re-embed them too.
    clauses = where_clauses(filters.replace(include_hidden=True), model)
    A = Asset.__table__.c  # noqa: N806
    todo = [*clauses, (A.embedded_at < job.started_at) | A.embedded_at.is_(None)]
    with connect(run.settings) as conn:
        report.total = conn.execute(select(func.count()).where(*todo)).scalar_one()
        report.resumed_from = int(job.done)
        conn.execute(text("UPDATE assetdb_reembed_jobs SET total = :t WHERE id = :i"),
                     {"t": report.total + int(job.done), "i": job.id})
    if on_total:
        on_total(report.total)

    def fetch(conn: Connection, last_id: int) -> list[Row]:
        q = (select(A.id, A.uri, A.sha256, A.bytes).where(*todo, A.id > last_id)
             .order_by(A.id).limit(run.batch_size))
        return [(r.id, r.uri, r.sha256, r.bytes) for r in conn.execute(q).all()]

    def store(conn: Connection, results: list[tuple[int, Any, str | None]]) -> None:
        for asset_id, vector, error in results:
            if vector is None:  # keep the old vector: it is still the model's best
                conn.execute(text("UPDATE assets SET error = :e WHERE id = :i"),
                             {"e": f"re-embed: {error}", "i": asset_id})
                continue
            conn.execute(text(
                "UPDATE assets SET embedding = :v, embedded_at = now(), error = NULL, "
                "updated_at = now() WHERE id = :i AND embedding_model = :m"
            ), {"v": vector, "m": model, "i": asset_id})
        run.store_moments(conn, [i for i, v, _ in results if v is not None], "asset_frames")

    if not run.loop(fetch, store, report):
        report.interrupted = True
        return
    with connect(run.settings) as conn:
        check_job(conn, job.id)
        conn.execute(text("UPDATE assetdb_reembed_jobs SET state = 'done', finished_at = now(), "
                          "updated_at = now() WHERE id = :i"), {"i": job.id})


def reembed(
    settings: Settings,
    encoder: Encoder,
    *,
    filters: Filters | None = None,
    batch_size: int | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    on_total: Progress | None = None,
) -> ReembedReport:
    """Re-embed with `encoder`: the catalogue's own model (in place, filters allowed) or
    another one (all ready rows, then one atomic switch). Resumable; `stop` ends it after
    the current batch."""
    filters = filters or Filters()
    with connect(settings) as conn:
        meta = schema.require_meta(conn)
        switch = encoder.name != meta["model"]
        if not switch and encoder.dimension != int(meta["dimension"]):
            raise ReembedError("the model's dimension differs from the database's record")
        if switch and not filters.is_empty():
            raise FilterError(
                "filters apply only to re-embedding with the database's own model "
                f"({meta['model']}); a move to another model covers the whole catalogue, "
                "since searches can use only one model"
            )
        job = _start_job(conn, encoder, switch, filters)
    report = ReembedReport(job_id=job.id, model=encoder.name, dimension=encoder.dimension,
                           switch=switch)
    run = _Run(settings, encoder, batch_size or settings.batch_size, job.id, stop, progress)
    try:
        with Heartbeat(settings, _job_beat(job.id), HEARTBEAT_S):
            if switch:
                _switch(settings, run, report, job, on_total)
            else:
                _in_place(run, report, job, filters, meta["model"], on_total)
    except ReembedAborted:
        report.aborted = True
        drop_unused_shadow(settings)  # if the abort could not: our index build held them
    finally:
        _release_job(settings, job.id)
    return report


def database_model(settings: Settings) -> str:
    with connect(settings) as conn:
        return schema.require_meta(conn)["model"]
