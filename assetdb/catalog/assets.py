"""Asset detail, browsing without a query, descriptive edits, and an asset's original file.

Originals are served only from the `uri` stored on the asset's row, looked up by id:
no caller-supplied path ever reaches the file system, and the file is opened without
following symlinks and checked against the row (assetdb.files).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, update

from assetdb.config import Settings
from assetdb.db import schema
from assetdb.db.duplicate_models import AssetDuplicateOf
from assetdb.db.engine import connect, connect_read
from assetdb.db.models import Asset
from assetdb.errors import AssetdbError, FilterError
from assetdb.files import open_verified
from assetdb.search.filters import Filters
from assetdb.search.query import where_clauses

A = Asset.__table__.c
DuplicateOf = AssetDuplicateOf.__table__.c
log = logging.getLogger(__name__)
MAX_TITLE = 500
MAX_DESCRIPTION = 10_000
MAX_TAGS = 100


class AssetNotFound(AssetdbError):
    """No asset with that id (or its file is gone)."""


@dataclass
class AssetDetail:
    id: int
    uri: str
    name: str
    sha256: str | None
    kind: str | None
    mime: str | None
    width: int | None
    height: int | None
    bytes: int | None
    title: str | None
    description: str | None
    tags: list[str]
    metadata: dict[str, Any]
    captured_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    status: str
    error: str | None
    embedding_model: str | None
    embedded_at: datetime | None
    hidden: bool
    # The older asset this one near-duplicates, as ingest found it (assetdb duplicates).
    duplicate_of: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_DETAIL_COLUMNS = (
    A.id, A.uri, A.sha256, A.kind, A.mime, A.width, A.height, A.bytes, A.title, A.description,
    A.tags, A.metadata, A.captured_at, A.created_at, A.updated_at, A.status, A.error,
    A.embedding_model, A.embedded_at, A.hidden,
    select(DuplicateOf.duplicate_of).where(DuplicateOf.asset_id == A.id)
    .scalar_subquery().label("duplicate_of"),
)


def _detail(row: Any) -> AssetDetail:
    return AssetDetail(
        id=row.id, uri=row.uri, name=Path(row.uri).name, sha256=row.sha256, kind=row.kind,
        mime=row.mime, width=row.width, height=row.height, bytes=row.bytes, title=row.title,
        description=row.description, tags=list(row.tags or []), metadata=dict(row.metadata or {}),
        captured_at=row.captured_at, created_at=row.created_at, updated_at=row.updated_at,
        status=row.status, error=row.error, embedding_model=row.embedding_model,
        embedded_at=row.embedded_at, hidden=bool(row.hidden), duplicate_of=row.duplicate_of,
    )


def _fetch(conn: Connection, asset_id: int) -> AssetDetail:
    row = conn.execute(select(*_DETAIL_COLUMNS).where(A.id == asset_id)).first()
    if row is None:
        raise AssetNotFound(f"no asset with id {asset_id}")
    return _detail(row)


def get_asset(settings: Settings, asset_id: int, *, include_hidden: bool = True) -> AssetDetail:
    """One asset; with include_hidden=False one hidden by moderation counts as not found."""
    with connect_read(settings) as conn:
        schema.require_meta(conn)
        asset = _fetch(conn, asset_id)
    if asset.hidden and not include_hidden:
        raise AssetNotFound(f"asset {asset_id} is hidden by a moderation policy "
                            "(include_hidden=true shows it)")
    return asset


def browse(
    settings: Settings, *, filters: Filters | None = None, offset: int = 0, limit: int = 50
) -> list[AssetDetail]:
    """Searchable assets that pass the filters, newest first (the page before a query)."""
    if offset < 0 or not 1 <= limit <= 1000:
        raise FilterError("offset must be >= 0 and limit between 1 and 1000")
    with connect_read(settings) as conn:
        meta = schema.require_meta(conn)
        rows = conn.execute(
            select(*_DETAIL_COLUMNS)
            .where(*where_clauses(filters or Filters(), meta["model"]))
            .order_by(A.created_at.desc(), A.id.desc())
            .offset(offset)
            .limit(limit)
        ).all()
    return [_detail(r) for r in rows]


def _clean_tags(tags: list[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        tag = str(tag).strip()
        if tag and tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise FilterError(f"at most {MAX_TAGS} tags")
    return out


def update_asset(
    settings: Settings,
    asset_id: int,
    *,
    title: str | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
) -> AssetDetail:
    """Edit the descriptive fields; None leaves a field as it is, '' clears it."""
    values: dict[str, Any] = {}
    if title is not None:
        if len(title) > MAX_TITLE:
            raise FilterError(f"the title is longer than {MAX_TITLE} characters")
        values["title"] = title.strip() or None
    if description is not None:
        if len(description) > MAX_DESCRIPTION:
            raise FilterError(f"the description is longer than {MAX_DESCRIPTION} characters")
        values["description"] = description.strip() or None
    if tags is not None:
        values["tags"] = _clean_tags(tags)
    with connect(settings) as conn:
        schema.require_meta(conn)
        if values:
            done = conn.execute(
                update(Asset.__table__).where(A.id == asset_id)
                .values(**values, updated_at=func.now())
            )
            if done.rowcount == 0:
                raise AssetNotFound(f"no asset with id {asset_id}")
        return _fetch(conn, asset_id)


def open_original(
    settings: Settings, asset_id: int, *, include_hidden: bool = True
) -> tuple[int, AssetDetail]:
    """An open fd for the asset's own file and the asset; the caller closes the fd.

    The file is opened from the stored uri with no symlink at any step, must be a regular
    file and must still hold the bytes that were ingested (size and sha256): a file
    replaced or redirected since then is AssetNotFound, never served.
    """
    asset = get_asset(settings, asset_id, include_hidden=include_hidden)
    if "://" in asset.uri or not Path(asset.uri).is_absolute():
        raise AssetNotFound(f"asset {asset_id} is not stored as a local file")
    try:
        fd = open_verified(asset.uri, asset.sha256, asset.bytes)
    except FileNotFoundError:
        raise AssetNotFound(f"the file of asset {asset_id} is missing") from None
    except OSError as exc:  # UnsafeFile included: why goes to the log, not to the client
        log.warning("refusing the file of asset %s (%s): %s", asset_id, asset.uri, exc)
        raise AssetNotFound(f"the file of asset {asset_id} is missing or has changed since "
                            "it was ingested (run ingest again)") from None
    return fd, asset
