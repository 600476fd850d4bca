"""OCR of catalogued images: which assets still need it, reading them, storing the lines.

An asset needs OCR while `asset_ocr` holds no result for its current content (sha256):
a re-embed changes no content and so redoes no OCR; new content (a re-ingest of a changed
file) drops the old lines (a trigger of migration 0007) and needs OCR again. A failure
is stored on `asset_ocr` (status 'failed', its error) and is not retried for the same
content. Results are committed a chunk at a time, so an interrupted backfill resumes
where it stopped. OCR never touches `assets`: lines go to asset_ocr_lines, their text to
asset_text.ocr (what keyword search reads).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, exists, select, text

from assetdb.config import Settings
from assetdb.db.engine import connect
from assetdb.db.models import Asset
from assetdb.db.text_models import AssetOcr
from assetdb.errors import ImageError
from assetdb.files import open_no_symlinks
from assetdb.kinds.raster import decode_errors, open_image, to_rgb
from assetdb.ocr.engine import Line, OcrEngine
from assetdb.search.filters import Filters
from assetdb.search.filters import where as filter_clauses

A = Asset.__table__.c
O = AssetOcr.__table__.c  # noqa: E741
CHUNK = 16  # images per transaction: what an interruption can cost

Progress = Callable[[int], None]


@dataclass
class OcrReport:
    done: int = 0  # images read (some may hold no text)
    with_text: int = 0
    lines: int = 0
    failed: int = 0
    seconds: float = 0.0  # OCR time alone (decode and database not counted)
    model: str | None = None
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _needs_ocr() -> Any:  # noqa: ANN401 - a SQLAlchemy condition
    return ~exists().where(and_(O.asset_id == A.id, O.sha256 == A.sha256))


def pending(conn: Connection, filters: Filters | None = None,
            ids: Sequence[int] | None = None, limit: int | None = None) -> list[tuple[int, str]]:
    """(id, uri) of assets whose current content has no OCR result, oldest first. Only
    rows whose file was read (sha256 known) and that are not failed to decode."""
    clauses = [A.sha256.is_not(None), A.status != "failed", _needs_ocr()]
    if filters is not None:
        clauses.extend(filter_clauses(filters, A))
    if ids is not None:
        clauses.append(A.id.in_(list(ids)))
    stmt = select(A.id, A.uri).where(*clauses).order_by(A.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(r.id, r.uri) for r in conn.execute(stmt)]


def count_pending(conn: Connection, filters: Filters | None = None) -> int:
    from sqlalchemy import func

    clauses = [A.sha256.is_not(None), A.status != "failed", _needs_ocr()]
    if filters is not None:
        clauses.extend(filter_clauses(filters, A))
    return conn.execute(select(func.count()).select_from(Asset.__table__).where(*clauses)
                        ).scalar_one()


def _decode(uri: str) -> Any:  # noqa: ANN401 - a PIL image
    from PIL import ImageOps

    with os.fdopen(open_no_symlinks(uri), "rb") as fh, decode_errors():
        img = open_image(fh)
        if img.format == "JPEG":
            img.draft("RGB", (2000, 2000))  # a cheaper decode of large JPEGs
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)


def read_one(engine: OcrEngine, uri: str) -> tuple[list[Line] | None, str | None, float]:
    """(lines, error, seconds of OCR) of one file; never raises for a bad file."""
    try:
        img = _decode(uri)
    except ImageError as exc:
        return None, str(exc), 0.0
    except FileNotFoundError:
        return None, "file not found", 0.0
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}", 0.0
    start = time.perf_counter()
    try:
        lines = engine.read(img)
    except Exception as exc:  # noqa: BLE001 - one image must not stop the batch
        return None, f"OCR failed: {type(exc).__name__}: {exc}", time.perf_counter() - start
    return lines, None, time.perf_counter() - start


_CURRENT_SHA = text("SELECT sha256 FROM assets WHERE id = :id")
_DELETE_LINES = text("DELETE FROM asset_ocr_lines WHERE asset_id = :id")
_INSERT_LINE = text(
    "INSERT INTO asset_ocr_lines (asset_id, line_no, text, box, confidence, model) "
    "VALUES (:id, :n, :text, :box, :confidence, :model)")
_UPSERT_STATUS = text(
    """
    INSERT INTO asset_ocr (asset_id, sha256, status, error, model, lines, seconds, updated_at)
    VALUES (:id, :sha, :status, :error, :model, :lines, :seconds, now())
    ON CONFLICT (asset_id) DO UPDATE SET sha256 = EXCLUDED.sha256, status = EXCLUDED.status,
        error = EXCLUDED.error, model = EXCLUDED.model, lines = EXCLUDED.lines,
        seconds = EXCLUDED.seconds, updated_at = now()
    """)
_SET_TEXT = text(
    "INSERT INTO asset_text AS t (asset_id, ocr) VALUES (:id, :ocr) "
    "ON CONFLICT (asset_id) DO UPDATE SET ocr = EXCLUDED.ocr, updated_at = now() "
    "WHERE t.ocr IS DISTINCT FROM EXCLUDED.ocr")


def store(conn: Connection, asset_id: int, sha256: str | None, model: str,
          lines: list[Line] | None, error: str | None, seconds: float) -> bool:
    """Store one result, if the row still holds the content that was read."""
    if conn.execute(_CURRENT_SHA, {"id": asset_id}).scalar() != sha256:
        return False  # changed (or deleted) meanwhile: its new content needs its own OCR
    conn.execute(_DELETE_LINES, {"id": asset_id})
    if lines:
        conn.execute(_INSERT_LINE, [{"id": asset_id, "n": n, "text": ln.text, "box": ln.box,
                                     "confidence": ln.confidence, "model": model}
                                    for n, ln in enumerate(lines)])
    conn.execute(_UPSERT_STATUS, {"id": asset_id, "sha": sha256,
                                  "status": "failed" if error else "done", "error": error,
                                  "model": model, "lines": len(lines or []),
                                  "seconds": round(seconds, 4)})
    conn.execute(_SET_TEXT, {"id": asset_id, "ocr": "\n".join(ln.text for ln in lines or [])})
    return True


def run(settings: Settings, engine: OcrEngine, targets: Iterable[tuple[int, str]],
        progress: Progress | None = None, report: OcrReport | None = None) -> OcrReport:
    """OCR the (id, uri) targets, committing every CHUNK images."""
    report = report or OcrReport()
    report.model = engine.name
    targets = list(targets)
    for i in range(0, len(targets), CHUNK):
        chunk = targets[i : i + CHUNK]
        with connect(settings) as conn:
            shas = dict(conn.execute(text("SELECT id, sha256 FROM assets WHERE id = ANY(:ids)"),
                                     {"ids": [t[0] for t in chunk]}).all())
        results = [(asset_id, uri, *read_one(engine, uri)) for asset_id, uri in chunk]
        with connect(settings) as conn:
            for asset_id, uri, lines, error, seconds in results:
                if not store(conn, asset_id, shas.get(asset_id), engine.name, lines, error,
                             seconds):
                    continue
                report.seconds += seconds
                if error:
                    report.failed += 1
                    report.failures.append({"uri": uri, "error": error})
                else:
                    report.done += 1
                    report.with_text += bool(lines)
                    report.lines += len(lines or [])
        if progress:
            progress(len(chunk))
    report.seconds = round(report.seconds, 3)
    return report


def backfill(settings: Settings, engine: OcrEngine, filters: Filters | None = None,
             progress: Progress | None = None, limit: int | None = None) -> OcrReport:
    """OCR every asset (that passes the filters) whose content has no result yet."""
    with connect(settings) as conn:
        targets = pending(conn, filters, limit=limit)
    return run(settings, engine, targets, progress)


def run_for_ids(settings: Settings, engine: OcrEngine, ids: Sequence[int],
                progress: Progress | None = None) -> OcrReport:
    """OCR the given assets where their content has no result yet (ingest, workers)."""
    with connect(settings) as conn:
        targets = pending(conn, ids=ids) if ids else []
    return run(settings, engine, targets, progress)


def lines_of(conn: Connection, asset_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(text("SELECT line_no, text, box, confidence, model FROM asset_ocr_lines "
                             "WHERE asset_id = :id ORDER BY line_no"), {"id": asset_id}).all()
    return [dict(r._mapping) for r in rows]


@dataclass
class OcrProgress:
    """Progress callbacks: on_total(n) once, then update(k) as images finish."""

    on_total: Callable[[int], None]
    update: Progress


_engine: list[OcrEngine] = []  # loaded once per process (ingest, workers)


def shared_engine() -> OcrEngine:
    from assetdb.ocr.engine import load_engine

    if not _engine:
        _engine.append(load_engine())
    return _engine[0]


def after_ingest(settings: Settings, uris: Sequence[str],
                 progress: OcrProgress | None = None) -> dict[str, Any]:
    """OCR what an ingest just handled (files whose content has no OCR result yet). The
    model loads only if something needs it; a model that cannot load is reported (the
    `error` key), never raised: the ingest's embeddings are written already."""
    from assetdb.ocr.engine import OcrUnavailable

    with connect(settings) as conn:
        ids = list(conn.execute(text("SELECT id FROM assets WHERE uri = ANY(:u)"),
                                {"u": list(uris)}).scalars()) if uris else []
        targets = pending(conn, ids=ids) if ids else []
    if not targets:
        return OcrReport().as_dict()
    try:
        engine = shared_engine()
    except OcrUnavailable as exc:
        return {**OcrReport().as_dict(), "error": str(exc), "skipped": len(targets)}
    if progress:
        progress.on_total(len(targets))
    return run(settings, engine, targets, progress.update if progress else None).as_dict()
