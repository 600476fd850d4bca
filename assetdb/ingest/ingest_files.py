"""The ingest service: scan, hash and probe files, apply sidecar metadata, embed what is
new or changed, and upsert rows. One bad file never stops the batch: its error is stored
on its row (status 'failed').

Before its model work, an ingest claims the rows it will embed, a chunk at a time, with a
lease like a worker's (renewed by a heartbeat while it runs): a second ingest of the same
files, or a worker, skips rows held by another process, so each file goes to the model
once however many ingests run at the same time."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Row, text

from assetdb.classify.auto import apply_to_upserted
from assetdb.config import Settings, env_float
from assetdb.db import schema
from assetdb.db.engine import connect
from assetdb.duplicates.hashing import HASH_EDGE, HashCollector, ImageHashes, collector_or_none
from assetdb.duplicates.tells import record_near_duplicates
from assetdb.embedding.batches import Expected, embed_paths
from assetdb.embedding.encoder import Encoder
from assetdb.errors import ImageError
from assetdb.files import open_no_symlinks, sha256_fd
from assetdb.ingest.heartbeat import Heartbeat, interval_for, renew_leases
from assetdb.ingest.scan import scan
from assetdb.ingest.sidecar import SidecarEntry, load_sidecar
from assetdb.ingest.worker import CLAIM_BATCHES, new_worker_id
from assetdb.kinds.raster import now_utc
from assetdb.kinds.registry import Probe, kind_for_file

Progress = Callable[[int], None]  # called with the number of files just finished
T = TypeVar("T")


@dataclass
class IngestReport:
    ingested: int = 0  # embedded (or registered, with embed=False) in this run
    unchanged: int = 0  # same content and model as stored: no model work
    deduplicated: int = 0  # of `ingested`, vectors copied from identical content
    embedded: int = 0  # of `ingested`, files given to the model by this run
    done_elsewhere: int = 0  # held or finished meanwhile by another ingest or a worker
    failed: int = 0
    # Not images, symlinks out of the roots, hidden, FIFOs, duplicates, non-UTF-8 names,
    # sub-folders without recursive: never registered (scan.py has the rules).
    skipped: int = 0
    metadata_unmatched: int = 0  # sidecar entries that name no ingested file
    # New assets that near-duplicate an older one (pHash, assetdb.duplicates): uri, id,
    # duplicate_of, duplicate_of_uri, similarity; recorded as the asset's duplicate_of.
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)  # uri, reason

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _File:
    path: Path
    sha256: str | None = None
    size: int | None = None
    probe: Probe | None = None
    error: str | None = None
    sidecar: SidecarEntry | None = None


def _inspect(path: Path) -> _File:
    """Hash and probe one file, from one descriptor opened without following symlinks
    (the path is a real path: a symlink here was swapped in after the scan). A file whose
    first bytes start no supported format is refused before it is hashed: a 2 GiB file of
    zeros named .png costs one small read, not a full one."""
    item = _File(path)
    try:
        with os.fdopen(open_no_symlinks(str(path)), "rb") as fh:
            item.size = os.fstat(fh.fileno()).st_size
            kind = kind_for_file(path)
            if not kind.sniff(os.pread(fh.fileno(), kind.magic_bytes, 0)):
                item.error = ("empty file" if item.size == 0
                              else "not an image, or an unsupported image format")
                return item
            item.sha256 = sha256_fd(fh.fileno())
            item.probe = kind.probe(fh)
    except ImageError as exc:
        item.error = str(exc)
    except FileNotFoundError:
        item.error = "file not found"
    except OSError as exc:
        item.error = f"cannot read file: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - one odd file must not cost the batch
        item.error = f"cannot read image: {type(exc).__name__}: {exc}"
    return item


# What a sidecar entry sets on a row (a field it leaves out keeps the stored value): one
# fragment for the upsert, the metadata-only update and the claimed write.
_SIDECAR_SET = """
        title = COALESCE(CAST(:title AS text), a.title),
        description = COALESCE(CAST(:description AS text), a.description),
        tags = COALESCE(CAST(:tags AS text[]), a.tags),
        metadata = a.metadata || COALESCE(CAST(:metadata AS jsonb), '{}'),"""

_UPSERT = text(
    """
    INSERT INTO assets AS a (uri, sha256, kind, mime, width, height, bytes, title, description,
        tags, metadata, captured_at, embedding, embedding_model, embedded_at, status, error,
        attempts)
    VALUES (:uri, :sha256, :kind, :mime, :width, :height, :bytes,
        COALESCE(:title, :default_title), :description, COALESCE(CAST(:tags AS text[]), '{}'),
        COALESCE(CAST(:metadata AS jsonb), '{}'),
        COALESCE(CAST(:captured_at AS timestamptz), :exif_captured_at),
        CAST(:embedding AS vector), :model, :embedded_at, :status, :error,
        CASE WHEN :status = 'failed' THEN 1 ELSE 0 END)
    ON CONFLICT (uri) DO UPDATE SET
        sha256 = EXCLUDED.sha256, kind = EXCLUDED.kind, mime = EXCLUDED.mime,
        width = EXCLUDED.width, height = EXCLUDED.height, bytes = EXCLUDED.bytes,
"""
    + _SIDECAR_SET
    + """
        captured_at = COALESCE(CAST(:captured_at AS timestamptz), :exif_captured_at,
                              a.captured_at),
        embedding = EXCLUDED.embedding, embedding_model = EXCLUDED.embedding_model,
        embedded_at = EXCLUDED.embedded_at, status = EXCLUDED.status, error = EXCLUDED.error,
        attempts = CASE WHEN EXCLUDED.status = 'failed' THEN a.attempts + 1 ELSE 0 END,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    """
)

_UPDATE_METADATA = text(
    """
    UPDATE assets AS a SET
"""
    + _SIDECAR_SET
    + """
        captured_at = COALESCE(CAST(:captured_at AS timestamptz), a.captured_at),
        updated_at = now()
    WHERE uri = :uri
    """
)


# Claim a file's row for this run's model work: insert it as pending, or lease the existing
# row, unless another live process holds it or it became ready with this content meanwhile.
_CLAIM = text(
    """
    INSERT INTO assets AS a (uri, sha256, kind, mime, width, height, bytes, title, status,
        lease_owner, lease_expires_at)
    VALUES (:uri, :sha256, :kind, :mime, :width, :height, :bytes,
        COALESCE(:title, :default_title), 'pending', :owner,
        now() + make_interval(secs => :lease))
    ON CONFLICT (uri) DO UPDATE SET lease_owner = :owner,
        lease_expires_at = now() + make_interval(secs => :lease), updated_at = now()
    WHERE (a.lease_owner IS NULL OR a.lease_owner = :owner OR a.lease_expires_at < now())
      AND NOT (a.status = 'ready' AND a.sha256 = :sha256 AND a.embedding_model = :db_model)
    """
)

# The result of a claimed row; lands only while the claim is still this run's.
_WRITE_CLAIMED = text(
    """
    UPDATE assets AS a SET
        sha256 = :sha256, kind = :kind, mime = :mime, width = :width, height = :height,
        bytes = :bytes,
"""
    + _SIDECAR_SET
    + """
        captured_at = COALESCE(CAST(:captured_at AS timestamptz), :exif_captured_at,
                               a.captured_at),
        embedding = CAST(:embedding AS vector), embedding_model = :model,
        embedded_at = :embedded_at, status = :status, error = :error,
        attempts = CASE WHEN :status = 'failed' THEN a.attempts + 1 ELSE 0 END,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    WHERE uri = :uri AND lease_owner = :owner
    """
)


def _sidecar_params(entry: SidecarEntry | None) -> dict[str, Any]:
    if entry is None:
        return {"title": None, "description": None, "tags": None, "metadata": None,
                "captured_at": None}
    return {
        "title": entry.title,
        "description": entry.description,
        "tags": entry.tags,
        "metadata": Jsonb(entry.metadata) if entry.metadata else None,
        "captured_at": entry.captured_at,
    }


def _row(
    item: _File, model: str | None, vector: np.ndarray | None, status: str, error: str | None
) -> dict[str, Any]:
    p = item.probe
    return {
        "uri": str(item.path),
        "sha256": item.sha256,
        "kind": p.kind if p else None,
        "mime": p.mime if p else mimetypes.guess_type(item.path.name)[0],
        "width": p.width if p else None,
        "height": p.height if p else None,
        "bytes": item.size,
        "default_title": item.path.stem,
        "exif_captured_at": p.captured_at if p else None,
        "embedding": vector,
        "model": model if vector is not None else None,
        "embedded_at": now_utc() if vector is not None else None,
        "status": status,
        "error": error,
        **_sidecar_params(item.sidecar),
    }


def _existing(conn: Connection, uris: Sequence[str]) -> dict[str, Row[Any]]:
    rows = conn.execute(
        text("SELECT uri, sha256, status, embedding_model, error, bytes FROM assets "
             "WHERE uri = ANY(:uris)"),
        {"uris": list(uris)},
    ).all()
    return {r.uri: r for r in rows}


def _same_failure(old: Row[Any] | None, item: _File, error: str | None) -> bool:
    """The row already records this failure of these bytes: writing it again would only
    bump attempts and updated_at, and a re-run of an unchanged folder writes nothing."""
    return (old is not None and old.status == "failed" and old.error == error
            and old.sha256 == item.sha256 and old.bytes == item.size and item.sidecar is None)


def _failed(report: IngestReport, item: _File, error: str) -> None:
    report.failed += 1
    report.failures.append({"uri": str(item.path), "error": error})


def _stored_vectors(conn: Connection, shas: Iterable[str], model: str) -> dict[str, np.ndarray]:
    rows = conn.execute(
        text(
            "SELECT DISTINCT ON (sha256) sha256, embedding FROM assets "
            "WHERE sha256 = ANY(:shas) AND status = 'ready' AND embedding_model = :model"
        ),
        {"shas": list(shas), "model": model},
    ).all()
    return {r.sha256: np.asarray(r.embedding, dtype=np.float32) for r in rows}


def ingest(
    settings: Settings,
    paths: Sequence[str],
    *,
    recursive: bool = False,
    follow_symlinks: bool = False,
    metadata_file: Path | None = None,
    encoder: Encoder | None = None,
    load_encoder: Callable[[], Encoder] | None = None,
    embed: bool = True,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest files. With embed=False rows are registered as 'pending' for workers.
    Non-images, symlinks out of the roots given (unless follow_symlinks) and the other
    paths scan() skips are reported with their reason; no row is written for them. A
    failure already stored for the same bytes is counted but not written again.

    The sidecar is parsed before anything is written: a malformed one raises SidecarError.
    `load_encoder` (instead of `encoder`) is called only if something needs the model.
    """
    sidecar = load_sidecar(metadata_file) if metadata_file else {}
    found = scan(paths, recursive=recursive, follow_symlinks=follow_symlinks)
    report = IngestReport(skipped=len(found.skipped),
                          skipped_files=[s.as_dict() for s in found.skipped])
    for arg in found.missing:
        report.failed += 1
        report.failures.append({"uri": arg, "error": "no such file or folder"})

    with connect(settings) as conn:
        meta = schema.require_meta(conn)
    model = meta["model"]
    lazy = _Model(meta, encoder, load_encoder) if embed else None

    if on_total:
        on_total(len(found.files))
    with ThreadPoolExecutor(max_workers=settings.decode_workers) as pool:
        items = list(pool.map(_inspect, found.files))
    matched = 0
    for item in items:
        item.sidecar = sidecar.get(item.path)
        matched += item.sidecar is not None
    report.metadata_unmatched = len(sidecar) - matched

    to_embed: list[_File] = []
    with connect(settings) as conn:
        existing: dict[str, Row[Any]] = {}
        for i in range(0, len(items), 1000):
            existing.update(_existing(conn, [str(x.path) for x in items[i : i + 1000]]))
        for item in items:
            old = existing.get(str(item.path))
            if item.error:
                if not _same_failure(old, item, item.error):
                    conn.execute(_UPSERT, _row(item, None, None, "failed", item.error))
                _failed(report, item, item.error)
                continue
            same = old is not None and old.sha256 == item.sha256
            # Unchanged: embedded with the current model, or (registering only) already queued.
            if same and (old.status == "ready" and old.embedding_model == model
                         or old.status == "pending" and not embed):
                if item.sidecar:
                    conn.execute(_UPDATE_METADATA, {"uri": str(item.path),
                                                    **_sidecar_params(item.sidecar)})
                report.unchanged += 1
            elif not embed:
                conn.execute(_UPSERT, _row(item, None, None, "pending", None))
                report.ingested += 1
            else:
                to_embed.append(item)
        if progress:
            progress(len(items) - len(to_embed))

    if not to_embed:
        return report
    assert lazy is not None
    _embed_claimed(settings, lazy.get(), model, to_embed, existing, report, progress)
    return report


class _Model:
    """The encoder, loaded when first needed: an unchanged folder, or one whose files all
    fail before decoding, costs no model load."""

    def __init__(self, meta: dict[str, str], encoder: Encoder | None,
                 load: Callable[[], Encoder] | None) -> None:
        if encoder is None and load is None:
            raise ValueError("embed=True needs an encoder or a way to load one")
        self.meta, self.encoder, self.load = meta, encoder, load
        if encoder is not None:
            schema.check_model(meta, encoder.name, encoder.dimension)

    def get(self) -> Encoder:
        if self.encoder is None:
            assert self.load is not None
            encoder = self.load()
            schema.check_model(self.meta, encoder.name, encoder.dimension)
            self.encoder = encoder
        return self.encoder


class _Claims:
    """This run's claims: rows it embeds, leased to `owner` and renewed by a heartbeat."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.owner = f"ingest:{new_worker_id()}"
        self.lease = env_float("ASSETDB_LEASE_SECONDS", 600.0, 0.1)

    def claim(self, conn: Connection, items: Sequence[_File], model: str) -> list[_File]:
        if not items:
            return []
        conn.execute(_CLAIM, [{**_row(x, None, None, "pending", None), "owner": self.owner,
                               "lease": self.lease, "db_model": model} for x in items])
        mine = set(conn.execute(
            text("SELECT uri FROM assets WHERE uri = ANY(:uris) AND lease_owner = :owner"),
            {"uris": [str(x.path) for x in items], "owner": self.owner},
        ).scalars())
        return [x for x in items if str(x.path) in mine]

    def write(self, rows: list[dict[str, Any]], encoder: Encoder) -> None:
        # One executemany: psycopg pipelines it, one round trip instead of one per row.
        with connect(self.settings) as conn:
            conn.execute(_WRITE_CLAIMED, [{**r, "owner": self.owner} for r in rows])
            apply_to_upserted(conn, rows, encoder)  # enabled label sets and policies

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.settings, lambda conn: renew_leases(conn, self.owner, self.lease),
                         interval_for(self.lease))

    def release(self) -> None:
        """Rows claimed but not written (an error, Ctrl-C) go back to the queue."""
        with connect(self.settings) as conn:
            conn.execute(text("UPDATE assets SET lease_owner = NULL, lease_expires_at = NULL "
                              "WHERE lease_owner = :owner"), {"owner": self.owner})


@dataclass
class _Run:
    """What one ingest's model work shares across its chunks."""

    claims: _Claims
    encoder: Encoder
    model: str
    existing: dict[str, Row[Any]]
    report: IngestReport
    progress: Progress | None
    known: dict[str, np.ndarray] = field(default_factory=dict)  # sha256 -> vector
    errors: dict[str, str] = field(default_factory=dict)  # sha256 -> why its first failed
    by_path_sha: dict[Path, str] = field(default_factory=dict)  # decoded path -> sha256
    # Perceptual hashes made from the decode for the model (None: imagehash missing).
    hashes: HashCollector | None = field(default_factory=collector_or_none)
    hash_of: dict[str, ImageHashes] = field(default_factory=dict)  # sha256 -> hashes

    def outcome(self, item: _File, vector: np.ndarray | None, error: str | None,
                copy: bool = False) -> dict[str, Any] | None:
        """The row to write for one file (None: the row already says so), and its count."""
        if vector is not None:
            self.report.ingested += 1
            self.report.deduplicated += copy
            self.report.embedded += not copy
            return _row(item, self.model, vector, "ready", None)
        error = error or "unknown error"
        _failed(self.report, item, error)
        if _same_failure(self.existing.get(str(item.path)), item, error):
            return None
        return _row(item, None, None, "failed", error)

    def write(self, claimed: list[dict[str, Any]], free: list[dict[str, Any]]) -> None:
        if claimed:
            self.claims.write(claimed, self.encoder)
        if free:  # known failures retried without a claim: written only when they change
            with connect(self.claims.settings) as conn:
                conn.execute(_UPSERT, free)
                apply_to_upserted(conn, free, self.encoder)
        self._tell(claimed + free)

    def _tell(self, rows: list[dict[str, Any]]) -> None:
        """Store the hashes of what became ready, and report near-duplicates of older
        assets among them."""
        if self.hashes is None:
            return
        for path in list(self.hashes.hashes):  # taken as they come: no rescans
            hashes = self.hashes.hashes.pop(path)
            sha = self.by_path_sha.get(path)
            if sha:
                self.hash_of[sha] = hashes
        hashed = [(r["uri"], r["sha256"], self.hash_of[r["sha256"]]) for r in rows
                  if r["status"] == "ready" and r["sha256"] in self.hash_of]
        if hashed:
            with connect(self.claims.settings) as conn:
                self.report.near_duplicates += record_near_duplicates(conn, hashed,
                                                                      self.model)


def _known_failure(old: Row[Any] | None, item: _File) -> bool:
    return (old is not None and old.status == "failed" and old.sha256 == item.sha256
            and old.bytes == item.size and item.sidecar is None)


def _embed_claimed(settings: Settings, encoder: Encoder, model: str, to_embed: list[_File],
                   existing: dict[str, Row[Any]], report: IngestReport,
                   progress: Progress | None) -> None:
    run = _Run(_Claims(settings), encoder, model, existing, report, progress)
    try:
        with run.claims.heartbeat():
            for chunk in _chunks(to_embed, settings.batch_size * CLAIM_BATCHES):
                _embed_chunk(run, chunk)
    finally:
        run.claims.release()


def _embed_chunk(run: _Run, chunk: Sequence[_File]) -> None:
    """Claim the chunk's rows (files that failed the same way before are retried without
    a claim, so that an unchanged failure writes nothing), embed each content once, write."""
    settings = run.claims.settings
    retry = [x for x in chunk if _known_failure(run.existing.get(str(x.path)), x)]
    retry_paths = {x.path for x in retry}
    fresh = [x for x in chunk if x.path not in retry_paths]
    with connect(settings) as conn:
        claimed = run.claims.claim(conn, fresh, run.model)
        work = claimed + retry
        shas = {x.sha256 for x in work if x.sha256 and x.sha256 not in run.known}
        run.known.update(_stored_vectors(conn, sorted(shas), run.model))
    run.report.done_elsewhere += len(fresh) - len(claimed)
    # Identical content is embedded once: the first file of each sha256 goes to the model.
    first: dict[str, _File] = {}
    for item in work:
        if item.sha256 not in run.known:
            first.setdefault(item.sha256 or str(item.path), item)
    by_path = {x.path: x for x in first.values()}
    expected: dict[Path, Expected] = {x.path: (x.sha256, x.size) for x in first.values()}
    run.by_path_sha.update({x.path: x.sha256 for x in first.values() if x.sha256})
    for batch in embed_paths(run.encoder, list(by_path), settings.batch_size,
                             settings.decode_workers, expected, on_decoded=run.hashes,
                             min_decode_size=HASH_EDGE if run.hashes else 0):
        rows: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        for path, vector, error in batch:
            item = by_path[path]
            if vector is not None:
                run.known[item.sha256 or ""] = vector
            else:
                run.errors[item.sha256 or ""] = error or "unknown error"
            row = run.outcome(item, vector, error)
            if row is not None:
                rows[path in retry_paths].append(row)
        run.write(*rows)
        if run.progress:
            run.progress(len(batch))
    # Copies: content that was already embedded, here or in an earlier run.
    rows = ([], [])
    for item in work:
        if item.path in by_path:
            continue
        vector = run.known.get(item.sha256 or "")
        # Its twin failed: fail the same way, without more model work.
        error = None if vector is not None else run.errors.get(
            item.sha256 or "", "identical content failed to embed")
        row = run.outcome(item, vector, error, copy=True)
        if row is not None:
            rows[item.path in retry_paths].append(row)
    run.write(*rows)
    if run.progress:
        run.progress(len(chunk) - len(by_path))


def _chunks(seq: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
