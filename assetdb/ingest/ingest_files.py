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
import time
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
from assetdb.db.frames import ids_by_uri, replace_moments
from assetdb.duplicates.hashing import HASH_EDGE, HashCollector, ImageHashes, collector_or_none
from assetdb.duplicates.tells import record_near_duplicates
from assetdb.embedding.batches import Embedded, Expected, embed_assets
from assetdb.embedding.encoder import Encoder
from assetdb.errors import ImageError
from assetdb.files import open_no_symlinks, sha256_fd
from assetdb.ingest import bulk, file_status
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
    # Of `unchanged` and `failed`: files not read at all, their size, mtime, ctime and
    # inode being those recorded when they were last read (--rehash reads them).
    not_read: int = 0
    deduplicated: int = 0  # of `ingested`, vectors copied from identical content
    embedded: int = 0  # of `ingested`, files given to the model by this run
    done_elsewhere: int = 0  # held or finished meanwhile by another ingest or a worker
    failed: int = 0
    # Not images, symlinks out of the roots, hidden, FIFOs, duplicates, non-UTF-8 names,
    # sub-folders without recursive: never registered (scan.py has the rules).
    skipped: int = 0
    metadata_unmatched: int = 0  # sidecar entries that name no ingested file
    index_built_after_load: bool = False  # a bulk load (assetdb.ingest.bulk)
    index_build_seconds: float = 0.0
    # New assets that near-duplicate an older one (pHash, assetdb.duplicates): uri, id,
    # duplicate_of, duplicate_of_uri, similarity; recorded as the asset's duplicate_of.
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped_files: list[dict[str, str]] = field(default_factory=list)  # uri, reason
    ocr: dict[str, Any] | None = None  # with ocr=True: assetdb.ocr.service.OcrReport, or error

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
    # The file's status before it was read and when reading began; set only when what
    # was read decides the outcome (a read error might not happen again).
    stat: os.stat_result | None = None
    read_at: int = 0


def _inspect(path: Path) -> _File:
    """Hash and probe one file, from one descriptor opened without following symlinks
    (the path is a real path: a symlink here was swapped in after the scan). A file whose
    first bytes start no supported format is refused before it is hashed: a 2 GiB file of
    zeros named .png costs one small read, not a full one."""
    item = _File(path)
    try:
        with os.fdopen(open_no_symlinks(str(path)), "rb") as fh:
            st = os.fstat(fh.fileno())
            item.size, item.read_at = st.st_size, time.time_ns()
            kind = kind_for_file(path)
            if not kind.sniff(os.pread(fh.fileno(), kind.magic_bytes, 0)):
                item.error = ("empty file" if item.size == 0
                              else "not an image, or an unsupported image format")
                item.stat = st
                return item
            item.sha256 = sha256_fd(fh.fileno())
            item.stat = st
            item.probe = kind.probe(fh)
    except ImageError as exc:
        item.error = str(exc)
    except FileNotFoundError:
        item.error, item.stat = "file not found", None
    except OSError as exc:
        item.error, item.stat = f"cannot read file: {exc.strerror or exc}", None
    except Exception as exc:  # noqa: BLE001 - one odd file must not cost the batch
        item.error = f"cannot read image: {type(exc).__name__}: {exc}"
    return item


# What a sidecar entry sets on a row (a field it leaves out keeps the stored value): one
# rule for the upsert, the metadata-only update and the claimed write. `src` is where the
# entry's values come from: ":" for bind parameters, "s." for a record set.
_SIDECAR_COLUMNS = ("title", "description", "tags", "metadata")


def _sidecar_values(src: str) -> tuple[str, ...]:
    return (f"COALESCE(CAST({src}title AS text), a.title)",
            f"COALESCE(CAST({src}description AS text), a.description)",
            f"COALESCE(CAST({src}tags AS text[]), a.tags)",
            f"a.metadata || COALESCE(CAST({src}metadata AS jsonb), '{{}}')")


def _sidecar_set(src: str) -> str:
    return "".join(f"\n        {column} = {value},"
                   for column, value in zip(_SIDECAR_COLUMNS, _sidecar_values(src), strict=True))


_SIDECAR_SET = _sidecar_set(":")

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

# The sidecar entries of rows that stay, in one statement (a JSON array of entries): a row
# is written only where its entry changes something, so a re-run with the same sidecar
# writes nothing.
_UPDATE_METADATA = text(
    """
    UPDATE assets AS a SET"""
    + _sidecar_set("s.")
    + """
        captured_at = COALESCE(s.captured_at, a.captured_at),
        updated_at = now()
    FROM jsonb_to_recordset(CAST(:entries AS jsonb)) AS s(uri text, title text,
        description text, tags text[], metadata jsonb, captured_at timestamptz)
    WHERE a.uri = s.uri
      AND (a.title, a.description, a.tags, a.metadata, a.captured_at) IS DISTINCT FROM ("""
    + ", ".join(_sidecar_values("s."))
    + """, COALESCE(s.captured_at, a.captured_at))
    """
)


def _sidecar_entry(uri: str, entry: SidecarEntry) -> dict[str, Any]:
    """An entry as a JSON object for _UPDATE_METADATA."""
    return {"uri": uri, "title": entry.title, "description": entry.description,
            "tags": entry.tags, "metadata": entry.metadata or None,
            "captured_at": entry.captured_at.isoformat() if entry.captured_at else None}


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
    """The rows of these uris, with the file status recorded when each was last read."""
    rows = conn.execute(
        text("SELECT a.uri, a.sha256, a.status, a.embedding_model, a.error, a.bytes, "
             f"{file_status.JOIN_COLUMNS} FROM assets AS a {file_status.JOIN} "
             "WHERE a.uri = ANY(:uris)"),
        {"uris": list(uris)},
    ).all()
    return {r.uri: r for r in rows}


def _same_failure(old: Row[Any] | None, item: _File, error: str | None) -> bool:
    """The row already records this failure of these bytes: writing it again would only
    bump attempts and updated_at, and a re-run of an unchanged folder writes nothing
    (its sidecar, if any, goes through _UPDATE_METADATA, which writes only a change)."""
    return (old is not None and old.status == "failed" and old.error == error
            and old.sha256 == item.sha256 and old.bytes == item.size)


def _settled(old: Row[Any] | None, model: str, embed: bool) -> bool:
    """The row needs nothing from its file's content: embedded with the current model,
    registered (when only registering), or failed on these bytes."""
    return old is not None and (old.status == "ready" and old.embedding_model == model
                                or old.status == "pending" and not embed
                                or old.status == "failed")


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
    rehash: bool = False,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    say: Callable[[str], None] | None = None,
    ocr: bool = False,
    ocr_progress: Any = None,  # assetdb.ocr.service.OcrProgress
) -> IngestReport:
    """Ingest files. With embed=False rows are registered as 'pending' for workers.
    Non-images, symlinks out of the roots given (unless follow_symlinks) and the other
    paths scan() skips are reported with their reason; no row is written for them. A
    failure already stored for the same bytes is counted but not written again.

    A file whose status (size, mtime, ctime, inode, device) is the one recorded when it
    was last read, and whose row needs nothing from its content, is not read at all
    (assetdb.ingest.file_status); rehash=True reads every file. A re-run over unchanged
    files writes no row.

    The sidecar is parsed before anything is written: a malformed one raises SidecarError.
    `load_encoder` (instead of `encoder`) is called only if something needs the model.
    A bulk load (many new files, a small catalogue: assetdb.ingest.bulk) builds the vector
    index once after loading; `say` receives a line about it.
    ocr=True: then read the text in the files that have none yet (assetdb.ocr); a failure
    there is reported in `ocr` and never undoes an embedding.
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
    existing: dict[str, Row[Any]] = {}
    with connect(settings) as conn:
        for i in range(0, len(found.files), 5000):
            existing.update(_existing(conn, [str(p) for p in found.files[i : i + 5000]]))
    # Files unchanged since they were last read keep the content their row records.
    trusted = set() if rehash else {
        p for p in found.files
        if _settled(old := existing.get(str(p)), model, embed)
        and file_status.unchanged_since_read(old, found.stats.get(p))}
    with ThreadPoolExecutor(max_workers=settings.decode_workers) as pool:
        read = iter(list(pool.map(_inspect, [p for p in found.files if p not in trusted])))
    items = [_File(p) if p in trusted else next(read) for p in found.files]
    matched = 0
    for item in items:
        item.sidecar = sidecar.get(item.path)
        matched += item.sidecar is not None
    report.metadata_unmatched = len(sidecar) - matched

    to_embed: list[_File] = []
    # What a sidecar sets on rows that stay (written only where it changes something), and
    # new failures and registrations: a few statements for many rows, not one per row.
    keep: list[dict[str, Any]] = []
    upserts: list[dict[str, Any]] = []
    with connect(settings) as conn:
        for item in items:
            old = existing.get(str(item.path))
            sets = _sidecar_entry(str(item.path), item.sidecar) if item.sidecar else {}
            if item.path in trusted:
                assert old is not None
                report.not_read += 1
                if old.status == "failed":
                    _failed(report, item, old.error or "unknown error")
                else:
                    report.unchanged += 1
                if item.sidecar:
                    keep.append(sets)
            elif item.error:
                if not _same_failure(old, item, item.error):
                    upserts.append(_row(item, None, None, "failed", item.error))
                elif item.sidecar:
                    keep.append(sets)
                _failed(report, item, item.error)
            elif (old is not None and old.sha256 == item.sha256 and old.status != "failed"
                  and _settled(old, model, embed)):
                if item.sidecar:
                    keep.append(sets)
                report.unchanged += 1
            elif not embed:
                upserts.append(_row(item, None, None, "pending", None))
                report.ingested += 1
            else:
                if item.sidecar and _known_failure(old, item):  # retried without a claim
                    keep.append(sets)
                to_embed.append(item)
        for i in range(0, len(upserts), 1000):
            conn.execute(_UPSERT, upserts[i : i + 1000])
        for i in range(0, len(keep), 5000):
            conn.execute(_UPDATE_METADATA, {"entries": Jsonb(keep[i : i + 5000])})
        if progress:
            progress(len(items) - len(to_embed))

    if to_embed:
        assert lazy is not None
        encoder = lazy.get()
        with connect(settings) as conn:
            indexed = conn.execute(text(
                "SELECT count(*) FROM assets WHERE embedding IS NOT NULL")).scalar_one()
        if bulk.wanted(settings, len(to_embed), indexed):
            with bulk.index_dropped(settings, int(meta["dimension"]), say) as state:
                _embed_claimed(settings, encoder, model, to_embed, existing, report, progress)
            report.index_built_after_load = True
            report.index_build_seconds = state.build_seconds
        else:
            _embed_claimed(settings, encoder, model, to_embed, existing, report, progress)
    # Last, once every row read is written: a status vouches only for what its row holds.
    with connect(settings) as conn:
        file_status.record(conn, [(x.path, x.sha256, x.stat, x.read_at) for x in items
                                  if x.stat is not None])
    if ocr:  # after the embeddings are written: OCR can fail, they stand
        from assetdb.ocr.service import after_ingest

        report.ocr = after_ingest(settings, [str(x.path) for x in items if not x.error],
                                  ocr_progress)
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

    def write(self, rows: list[dict[str, Any]], encoder: Encoder,
              timed: dict[str, Embedded] | None = None) -> None:
        # One executemany: psycopg pipelines it, one round trip instead of one per row.
        with connect(self.settings) as conn:
            mine = set(conn.execute(
                text("SELECT uri FROM assets WHERE uri = ANY(:uris) AND lease_owner = :o"),
                {"uris": [r["uri"] for r in rows], "o": self.owner}).scalars()) if timed else set()
            conn.execute(_WRITE_CLAIMED, [{**r, "owner": self.owner} for r in rows])
            # Moments land with their row, and only where the claim was still this run's.
            write_moments(conn, encoder.name, {u: e for u, e in (timed or {}).items()
                                               if u in mine})
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
    # sha256 -> the result of a kind with moments, for copies of the same content
    timed: dict[str, Embedded] = field(default_factory=dict)
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

    def write(self, claimed: list[dict[str, Any]], free: list[dict[str, Any]],
              timed: dict[str, Embedded] | None = None) -> None:
        timed = timed or {}
        if claimed:
            uris = {r["uri"] for r in claimed}
            self.claims.write(claimed, self.encoder,
                              {u: e for u, e in timed.items() if u in uris})
        if free:  # known failures retried without a claim: written only when they change
            uris = {r["uri"] for r in free}
            with connect(self.claims.settings) as conn:
                conn.execute(_UPSERT, free)
                write_moments(conn, self.encoder.name,
                              {u: e for u, e in timed.items() if u in uris})
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
    """A failure stored for these bytes (its sidecar is applied before the retry)."""
    return (old is not None and old.status == "failed" and old.sha256 == item.sha256
            and old.bytes == item.size)


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
    for batch in embed_assets(run.encoder, list(by_path), settings.batch_size,
                              settings.decode_workers, expected, on_decoded=run.hashes,
                              min_decode_size=HASH_EDGE if run.hashes else 0):
        rows: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        timed: dict[str, Embedded] = {}
        for done in batch:
            path, vector, error = done.result()
            item = by_path[path]
            if vector is not None:
                run.known[item.sha256 or ""] = vector
            else:
                run.errors[item.sha256 or ""] = error or "unknown error"
            if done.timed:
                run.timed[item.sha256 or ""] = done
                timed[str(path)] = done
            row = run.outcome(item, vector, error)
            if row is not None:
                rows[path in retry_paths].append(row)
        run.write(*rows, timed)
        if run.progress:
            run.progress(len(batch))
    # Copies: content that was already embedded, here or in an earlier run.
    rows = ([], [])
    copied: dict[str, Embedded] = {}
    for item in work:
        if item.path in by_path:
            continue
        vector = run.known.get(item.sha256 or "")
        if item.sha256 in run.timed:
            copied[str(item.path)] = run.timed[item.sha256]
        # Its twin failed: fail the same way, without more model work.
        error = None if vector is not None else run.errors.get(
            item.sha256 or "", "identical content failed to embed")
        row = run.outcome(item, vector, error, copy=True)
        if row is not None:
            rows[item.path in retry_paths].append(row)
    run.write(*rows, copied)
    if run.progress:
        run.progress(len(chunk) - len(by_path))


def write_moments(conn: Connection, model: str, timed: dict[str, Embedded]) -> None:
    """The moments (frames, pages) of the files just written, found by their uri."""
    if not timed:
        return
    ids = ids_by_uri(conn, list(timed))
    replace_moments(conn, model, [(ids[u], e.moments, e.note, e.facts)
                                  for u, e in timed.items() if u in ids])


def _chunks(seq: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
