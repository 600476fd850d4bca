"""Ingestion workers: claim pending rows in batches (FOR UPDATE SKIP LOCKED plus a lease on
the row: who holds it, until when), embed them, mark each ready or failed.

Any number of workers, on any machines, share the queue through the database alone.
While a worker lives, a heartbeat thread renews the leases of the rows it holds (and its
`last_seen`), however slow a batch is. A worker that dies leaves leases that expire; the
next claim takes those rows again, counting an attempt per claim, and after
`max_attempts` a row stays 'failed'. A write
only lands while the writer still holds the row's lease, so a worker that lost its lease
(it stalled past the expiry and another worker took over) cannot overwrite the new result.

The worker embeds with the model the database names (assetdb_meta), so a remote worker
needs only the database URL and read access to the files; when `assetdb reembed`
switches the database to another model, running workers release their batch, load the new
model and go on.
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from assetdb.classify.auto import apply_auto_classification
from assetdb.config import Settings, env_float, env_int
from assetdb.db import schema
from assetdb.db.engine import connect, retry_database
from assetdb.db.frames import replace_moments
from assetdb.duplicates.hashing import HASH_EDGE, HashCollector, collector_or_none
from assetdb.duplicates.store import store_hashes
from assetdb.embedding.batches import Embedded, embed_assets
from assetdb.embedding.encoder import Encoder
from assetdb.errors import ConfigError
from assetdb.ingest.heartbeat import Heartbeat, interval_for, renew_leases

EncoderLoader = Callable[[str], Encoder]  # model name -> encoder

# Model batches per claim: decoding of each batch after the first overlaps inference of
# the one before; small enough that the tail of a queue still spreads over workers.
CLAIM_BATCHES = 4


@dataclass(frozen=True)
class WorkerOptions:
    batch_size: int = 32
    # How long a claim outlives its worker: renewed while the worker lives, so it need
    # not cover a batch, only a few missed heartbeats (a database restart, say).
    lease_seconds: float = 600.0
    max_attempts: int = 3  # claims (including crashed ones) before a row stays failed
    retry_delay: float = 30.0  # wait before a row whose embedding failed is tried again
    poll_seconds: float = 2.0  # sleep between claims when the queue is empty
    once: bool = False  # exit when nothing is claimable instead of waiting for more

    @classmethod
    def from_env(cls, settings: Settings, **overrides: Any) -> WorkerOptions:
        values: dict[str, Any] = {
            "batch_size": settings.batch_size,
            "lease_seconds": env_float("ASSETDB_LEASE_SECONDS", 600.0, 0.1),
            "max_attempts": env_int("ASSETDB_MAX_ATTEMPTS", 3, minimum=1),
            "retry_delay": env_float("ASSETDB_RETRY_DELAY", 30.0, 0.0),
            "poll_seconds": env_float("ASSETDB_POLL_SECONDS", 2.0, 0.01),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        opts = cls(**values)
        if opts.batch_size < 1 or opts.max_attempts < 1 or opts.lease_seconds <= 0:
            raise ConfigError("batch size, attempts and lease seconds must be positive")
        return opts


@dataclass
class WorkerReport:
    worker_id: str
    batches: int = 0
    encoded: int = 0  # rows given to the model (a row taken over from a dead worker counts)
    embedded: int = 0
    failed: int = 0  # rows that stayed failed (attempts used up)
    requeued: int = 0  # rows whose embedding failed and will be tried again
    gave_up: int = 0  # rows whose last lease expired with no attempts left
    lost: int = 0  # results dropped because the lease had passed to another worker
    model_switches: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


# Rows with no attempts left and no live lease (their worker died, or a later worker runs
# with a lower --max-attempts) stay failed.
_GIVE_UP = text(
    """
    UPDATE assets SET status = 'failed',
        error = 'gave up after ' || attempts || ' attempts: '
                || COALESCE(error, 'the lease of ' || lease_owner
                            || ' expired before it finished (worker killed?)',
                            'no attempts left'),
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    WHERE status = 'pending' AND attempts >= :max_attempts
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    RETURNING id
    """
)

_CLAIM = text(
    """
    WITH picked AS (
        SELECT id FROM assets
        WHERE status = 'pending' AND attempts < :max_attempts
          AND (lease_expires_at IS NULL OR lease_expires_at < now())
        ORDER BY id
        LIMIT :n
        FOR UPDATE SKIP LOCKED
    )
    UPDATE assets AS a SET lease_owner = :owner,
        lease_expires_at = now() + make_interval(secs => :lease),
        attempts = a.attempts + 1, updated_at = now()
    FROM picked WHERE a.id = picked.id
    RETURNING a.id, a.uri, a.sha256, a.bytes
    """
)

_READY = text(
    """
    UPDATE assets SET embedding = :embedding, embedding_model = :model, embedded_at = now(),
        status = 'ready', error = NULL, lease_owner = NULL, lease_expires_at = NULL,
        updated_at = now()
    WHERE id = :id AND status = 'pending' AND lease_owner = :owner
    RETURNING id
    """
)

_FAILED = text(
    """
    UPDATE assets SET
        status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
        error = :error, lease_owner = NULL,
        lease_expires_at = CASE WHEN attempts >= :max_attempts THEN NULL
                                ELSE now() + make_interval(secs => :delay) END,
        updated_at = now()
    WHERE id = :id AND status = 'pending' AND lease_owner = :owner
    RETURNING status
    """
)

# Give a batch back untouched (stop requested before it was written, or the model
# changed): the claim does not count as an attempt.
_RELEASE = text(
    """
    UPDATE assets SET lease_owner = NULL, lease_expires_at = NULL,
        attempts = GREATEST(attempts - 1, 0), updated_at = now()
    WHERE id = ANY(:ids) AND status = 'pending' AND lease_owner = :owner
    """
)


def _register(conn: Connection, worker_id: str, model: str) -> None:
    host, pid = socket.gethostname(), os.getpid()
    conn.execute(
        text("INSERT INTO assetdb_workers (id, hostname, pid, model) VALUES (:i, :h, :p, :m)"),
        {"i": worker_id, "h": host, "p": pid, "m": model},
    )


def _heartbeat(conn: Connection, report: WorkerReport, model: str, state: str) -> None:
    conn.execute(
        text(
            "UPDATE assetdb_workers SET last_seen = now(), state = :s, model = :m, "
            "embedded = :e, failed = :f WHERE id = :i"
        ),
        {"s": state, "m": model, "e": report.embedded, "f": report.failed,
         "i": report.worker_id},
    )


def _database_model(conn: Connection) -> str:
    return schema.require_meta(conn)["model"]


class Worker:
    """One worker loop. `stop` (set by SIGINT/SIGTERM in the CLI) ends it after the
    current batch is written."""

    def __init__(
        self,
        settings: Settings,
        load: EncoderLoader,
        options: WorkerOptions,
        *,
        stop: threading.Event | None = None,
        worker_id: str | None = None,
        on_batch: Callable[[WorkerReport], None] | None = None,
    ) -> None:
        self.settings = settings
        self.load = load
        self.options = options
        self.stop = stop or threading.Event()
        self.report = WorkerReport(worker_id or new_worker_id())
        self.on_batch = on_batch
        self.encoder: Encoder | None = None
        from assetdb.config import read_setting

        self.ocr: bool = read_setting("ASSETDB_OCR")  # read the text of what it embeds

    @property
    def owner(self) -> str:
        return self.report.worker_id

    def _encoder_for(self, model: str) -> Encoder:
        if self.encoder is None or self.encoder.name != model:
            if self.encoder is not None:
                self.report.model_switches += 1
            self.encoder = self.load(model)
            if self.encoder.name != model:
                raise ConfigError(
                    f"the database's model is {model!r} but loading it gave {self.encoder.name!r}"
                )
        return self.encoder

    def _db(self, fn: Callable[..., Any], *args: Any) -> Any:  # noqa: ANN401
        """fn(*args) (one transaction), tried again while the database restarts; a try
        that failed leaves no count in the report."""
        saved = copy.deepcopy(self.report.__dict__)

        def attempt() -> Any:  # noqa: ANN401
            self.report.__dict__.update(copy.deepcopy(saved))
            return fn(*args)

        def waiting(pause: float) -> None:
            logging.getLogger("assetdb.worker").warning(
                "the database is unavailable; trying again in %.1f s", pause)

        return retry_database(attempt, on_retry=waiting)

    def _read_model(self) -> str:
        with connect(self.settings) as conn:
            return _database_model(conn)

    def _register(self, model: str) -> None:
        with connect(self.settings) as conn:
            _register(conn, self.owner, model)

    def run(self) -> WorkerReport:
        encoder = self._encoder_for(self._db(self._read_model))
        self._db(self._register, encoder.name)
        heartbeat = Heartbeat(self.settings, self._beat, interval_for(self.options.lease_seconds))
        try:
            with heartbeat:
                self._loop()
        finally:
            with connect(self.settings) as conn:
                _heartbeat(conn, self.report, self.encoder.name if self.encoder else "",
                           "stopped")
        return self.report

    def _beat(self, conn: Connection) -> None:
        """From the heartbeat thread: keep this worker's leases and show it is alive."""
        renew_leases(conn, self.owner, self.options.lease_seconds)
        conn.execute(text("UPDATE assetdb_workers SET last_seen = now() WHERE id = :i"),
                     {"i": self.owner})

    def _loop(self) -> None:
        while not self.stop.is_set():
            claimed = self._db(self._claim)
            if claimed is None:  # the database switched model: load the new one
                continue
            if not claimed:
                if self.options.once:
                    break
                self.stop.wait(self.options.poll_seconds)
                continue
            self._process(claimed)

    def _claim(self) -> list[tuple[int, str, str | None, int | None]] | None:
        opts = self.options
        assert self.encoder is not None
        with connect(self.settings) as conn:
            model = _database_model(conn)
            if model != self.encoder.name:
                self._encoder_for(model)
                return None
            self.report.gave_up += len(
                conn.execute(_GIVE_UP, {"max_attempts": opts.max_attempts}).all()
            )
            rows = conn.execute(
                _CLAIM,
                {"max_attempts": opts.max_attempts, "n": opts.batch_size * CLAIM_BATCHES,
                 "owner": self.owner,
                 "lease": float(opts.lease_seconds)},
            ).all()
            _heartbeat(conn, self.report, model, "running")
        return sorted((r.id, r.uri, r.sha256, r.bytes) for r in rows)

    def _process(self, claimed: list[tuple[int, str, str | None, int | None]]) -> None:
        """Embed a claim batch by batch: embed_paths decodes the next batch while the model
        runs on this one, and each batch is written as soon as it is done. On stop, the
        batch in hand is finished and the rest of the claim is given back."""
        encoder = self.encoder
        assert encoder is not None
        by_path = {Path(uri): i for i, uri, _, _ in claimed}
        # The file must still hold the content registered on its row (sha256, size).
        expected = {Path(uri): (sha, size) for _, uri, sha, size in claimed}
        unwritten = {i for i, _, _, _ in claimed}
        # Perceptual hashes from the same decode (assetdb duplicates); none without imagehash.
        hashes = collector_or_none()
        try:
            for batch in embed_assets(encoder, list(by_path), batch_size=self.options.batch_size,
                                      workers=self.settings.decode_workers, expected=expected,
                                      on_decoded=hashes,
                                      min_decode_size=HASH_EDGE if hashes else 0):
                results = [(by_path[d.path], d.vector, d.error) for d in batch]
                timed = {by_path[d.path]: d for d in batch if d.timed}
                self.report.encoded += sum(v is not None for _, v, _ in results)
                if not self._db(self._write, encoder, results, timed):
                    break
                if isinstance(hashes, HashCollector):
                    done = [(str(d.path), expected[d.path][0], hashes.hashes.pop(d.path))
                            for d in batch if d.vector is not None
                            and d.path in hashes.hashes and expected[d.path][0]]
                    with connect(self.settings) as conn:
                        store_hashes(conn, done)  # type: ignore[arg-type]
                unwritten -= {i for i, _, _ in results}
                if self.ocr:
                    self._read_text([i for i, v, _ in results if v is not None])
                if self.on_batch:
                    self.on_batch(self.report)
                if self.stop.is_set():
                    break
        finally:
            if unwritten:
                with connect(self.settings) as conn:
                    conn.execute(_RELEASE, {"ids": sorted(unwritten), "owner": self.owner})

    def _read_text(self, ids: list[int]) -> None:
        """OCR of a written batch (ASSETDB_OCR): after its embeddings are stored, so that
        OCR can never fail them. A model that cannot load turns OCR off for this worker,
        with one warning; `assetdb ocr` catches up later."""
        from assetdb.ocr import service
        from assetdb.ocr.engine import OcrUnavailable

        try:
            service.run_for_ids(self.settings, service.shared_engine(), ids)
        except OcrUnavailable as exc:
            logging.getLogger("assetdb.worker").warning("OCR turned off: %s", exc)
            self.ocr = False

    def _write(self, encoder: Encoder, results: list[tuple[int, Any, str | None]],
               timed: dict[int, Embedded] | None = None) -> bool:
        """Store a batch's results in one transaction; False if the model changed."""
        opts = self.options
        timed = timed or {}
        embedded: list[tuple[int, Any]] = []
        with connect(self.settings) as conn:
            # Reading assetdb_meta here holds off a model switch until this commits, and
            # after a switch these vectors belong to the old model: give the batch back.
            if _database_model(conn) != encoder.name:
                return False
            for asset_id, vector, error in results:
                if vector is not None:
                    row = conn.execute(_READY, {"embedding": vector, "model": encoder.name,
                                                "id": asset_id, "owner": self.owner}).first()
                    if row is None:
                        self.report.lost += 1
                        continue
                    embedded.append((asset_id, vector))
                    self.report.embedded += 1
                    if asset_id in timed:  # a video's frames, a document's pages
                        d = timed[asset_id]
                        replace_moments(conn, encoder.name,
                                        [(asset_id, d.moments, d.note, d.facts)])
                    continue
                row = conn.execute(_FAILED, {"error": error or "unknown error", "id": asset_id,
                                             "owner": self.owner, "delay": opts.retry_delay,
                                             "max_attempts": opts.max_attempts}).first()
                if row is None:
                    self.report.lost += 1
                elif row.status == "failed":
                    self.report.failed += 1
                    self.report.errors.append({"id": str(asset_id), "error": error or ""})
                else:
                    self.report.requeued += 1
            # Enabled label sets and stored moderation policies, as at ingest.
            apply_auto_classification(conn, embedded, encoder)
            self.report.batches += 1
            _heartbeat(conn, self.report, encoder.name, "running")
        return True


def run_worker(
    settings: Settings,
    load: EncoderLoader,
    options: WorkerOptions,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[WorkerReport], None] | None = None,
) -> WorkerReport:
    """Run one worker until `stop` is set (or, with options.once, the queue is empty)."""
    return Worker(settings, load, options, stop=stop, on_batch=on_batch).run()


def retry(
    settings: Settings, *, failed: bool = True, release_leases: bool = False
) -> dict[str, int]:
    """Queue rows again: failed rows (attempts reset), and optionally release every live
    lease (only when the admin knows those workers are gone)."""
    out = {"requeued": 0, "released": 0}
    with connect(settings) as conn:
        schema.require_meta(conn)
        if failed:
            out["requeued"] = len(conn.execute(text(
                "UPDATE assets SET status = 'pending', attempts = 0, error = NULL, "
                "lease_owner = NULL, lease_expires_at = NULL, updated_at = now() "
                "WHERE status = 'failed' RETURNING id"
            )).all())
        if release_leases:
            out["released"] = len(conn.execute(text(
                "UPDATE assets SET lease_owner = NULL, lease_expires_at = NULL, "
                "updated_at = now() WHERE status = 'pending' AND lease_owner IS NOT NULL "
                "RETURNING id"
            )).all())
    return out
