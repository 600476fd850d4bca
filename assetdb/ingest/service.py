"""The ingest service: scan, hash and probe files, apply sidecar metadata, embed what is
new or changed, and upsert rows. One bad file never stops the batch: its error is stored
on its row (status 'failed')."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Row, text

from assetdb.classify.auto import apply_to_upserted
from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.engine import connect
from assetdb.embedding.encoder import Encoder
from assetdb.embedding.images import MAGIC_BYTES, Probe, looks_like_image, now_utc, probe
from assetdb.errors import ImageError
from assetdb.files import open_no_symlinks, sha256_fd
from assetdb.ingest.embedder import Expected, embed_paths
from assetdb.ingest.scan import scan
from assetdb.ingest.sidecar import SidecarEntry, load_sidecar

Progress = Callable[[int], None]  # called with the number of files just finished


@dataclass
class IngestReport:
    ingested: int = 0  # embedded (or registered, with embed=False) in this run
    unchanged: int = 0  # same content and model as stored: no model work
    deduplicated: int = 0  # of `ingested`, vectors copied from identical content
    failed: int = 0
    # Not images, symlinks out of the roots, hidden, FIFOs, duplicates, non-UTF-8 names,
    # sub-folders without recursive: never registered (scan.py has the rules).
    skipped: int = 0
    metadata_unmatched: int = 0  # sidecar entries that name no ingested file
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
            if not looks_like_image(os.pread(fh.fileno(), MAGIC_BYTES, 0)):
                item.error = ("empty file" if item.size == 0
                              else "not an image, or an unsupported image format")
                return item
            item.sha256 = sha256_fd(fh.fileno())
            item.probe = probe(fh)
    except ImageError as exc:
        item.error = str(exc)
    except FileNotFoundError:
        item.error = "file not found"
    except OSError as exc:
        item.error = f"cannot read file: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - one odd file must not cost the batch
        item.error = f"cannot read image: {type(exc).__name__}: {exc}"
    return item


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
        title = COALESCE(CAST(:title AS text), a.title),
        description = COALESCE(CAST(:description AS text), a.description),
        tags = COALESCE(CAST(:tags AS text[]), a.tags),
        metadata = a.metadata || COALESCE(CAST(:metadata AS jsonb), '{}'),
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
        title = COALESCE(CAST(:title AS text), a.title),
        description = COALESCE(CAST(:description AS text), a.description),
        tags = COALESCE(CAST(:tags AS text[]), a.tags),
        metadata = a.metadata || COALESCE(CAST(:metadata AS jsonb), '{}'),
        captured_at = COALESCE(CAST(:captured_at AS timestamptz), a.captured_at),
        updated_at = now()
    WHERE uri = :uri
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
    encoder = lazy.get()
    with connect(settings) as conn:
        known = {}
        shas = {x.sha256 for x in to_embed if x.sha256}
        for chunk in _chunks(sorted(shas), 1000):
            known.update(_stored_vectors(conn, chunk, model))
    # Identical content is embedded once: the first file of each sha256 goes to the model.
    first: dict[str, _File] = {}
    for item in to_embed:
        if item.sha256 not in known:
            first.setdefault(item.sha256 or str(item.path), item)
    by_path = {x.path: x for x in first.values()}
    expected: dict[Path, Expected] = {x.path: (x.sha256, x.size) for x in first.values()}
    errors: dict[str, str] = {}  # sha256 -> why its first file failed, for its copies
    for batch in embed_paths(encoder, [x.path for x in first.values()],
                             settings.batch_size, settings.decode_workers, expected):
        rows = []
        for path, vector, error in batch:
            item = by_path[path]
            if vector is not None:
                known[item.sha256 or ""] = vector
                rows.append(_row(item, model, vector, "ready", None))
                report.ingested += 1
            else:
                error = error or "unknown error"
                errors[item.sha256 or ""] = error
                if not _same_failure(existing.get(str(path)), item, error):
                    rows.append(_row(item, None, None, "failed", error))
                _failed(report, item, error)
        # One executemany per batch: psycopg pipelines it, one round trip instead of 32.
        if rows:
            with connect(settings) as conn:
                conn.execute(_UPSERT, rows)
                apply_to_upserted(conn, rows, encoder)  # enabled label sets and policies
        if progress:
            progress(len(batch))
    # Copies: content that was already embedded, here or in an earlier run.
    copies = [x for x in to_embed if x.path not in by_path]
    copy_rows = []
    for item in copies:
        vector = known.get(item.sha256 or "")
        if vector is None:  # its twin failed: fail the same way, without more model work
            error = errors.get(item.sha256 or "", "identical content failed to embed")
            if not _same_failure(existing.get(str(item.path)), item, error):
                copy_rows.append(_row(item, None, None, "failed", error))
            _failed(report, item, error)
            continue
        copy_rows.append(_row(item, model, vector, "ready", None))
        report.ingested += 1
        report.deduplicated += 1
    if copy_rows:
        with connect(settings) as conn:
            conn.execute(_UPSERT, copy_rows)
            apply_to_upserted(conn, copy_rows, encoder)
    if progress and copies:
        progress(len(copies))
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


def _chunks(seq: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
