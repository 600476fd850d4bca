"""One asset: detail, edits (token), thumbnail and original file (by id only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from assetdb.api.deps import SettingsDep, require_token
from assetdb.api.file_responses import (
    FILE_HEADERS,
    OpenFileResponse,
    RangeNotSatisfiable,
    content_disposition,
    parse_range,
    serving_type,
)
from assetdb.catalog import thumbnails
from assetdb.catalog.assets import AssetDetail, get_asset, open_original, update_asset

router = APIRouter(prefix="/api/assets", tags=["assets"])

# Thumbnail URLs do not change with the content, so browsers revalidate after an hour
# (cheap: the ETag is the content hash); originals likewise.
CACHE_CONTROL = "public, max-age=3600"
# Assets hidden by a moderation policy are not found unless asked for, as in search.
Hidden = Annotated[bool, Query(description="show an asset hidden by moderation")]


@dataclass
class AssetOut(AssetDetail):
    """The catalogue's asset detail plus the API's links to its files and neighbours."""

    thumbnail_url: str
    original_url: str
    similar_url: str


class AssetEdit(BaseModel):
    """Fields to change; a missing field is left as it is, "" clears it."""

    title: str | None = Field(default=None, max_length=500)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = Field(default=None, max_length=100)


def _out(a: AssetDetail) -> AssetOut:
    return AssetOut(**a.as_dict(), thumbnail_url=f"/api/assets/{a.id}/thumbnail",
                    original_url=f"/api/assets/{a.id}/original",
                    similar_url=f"/api/assets/{a.id}/similar")


def _etag(value: str) -> str:
    return f'"{value}"'


def _not_modified(request: Request, etag: str) -> bool:
    tags = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
    return etag in tags or "*" in tags


@router.get("/{asset_id}", response_model=AssetOut, summary="Asset detail")
def detail(settings: SettingsDep, asset_id: int, include_hidden: Hidden = False) -> AssetOut:
    """Everything about one asset except its vector: metadata, description, tags, state."""
    return _out(get_asset(settings, asset_id, include_hidden=include_hidden))


@router.patch("/{asset_id}", response_model=AssetOut, summary="Edit title, description, tags",
              dependencies=[Depends(require_token)])
def edit(settings: SettingsDep, asset_id: int, body: AssetEdit) -> AssetOut:
    """A write endpoint: needs `Authorization: Bearer $ASSETDB_API_TOKEN` when that is set."""
    return _out(update_asset(settings, asset_id, title=body.title,
                             description=body.description, tags=body.tags))


@router.get("/{asset_id}/thumbnail", summary="Thumbnail (JPEG)",
            response_class=FileResponse, responses={304: {"description": "not modified"}})
def thumbnail(
    settings: SettingsDep, request: Request, asset_id: int,
    size: Annotated[int, Query(description="longest side: 256 or 512")] = thumbnails.DEFAULT_SIZE,
    include_hidden: Hidden = False,
) -> Response:
    """Made on first request, then cached on disk by content hash; ETag + Cache-Control.
    Always a re-encoded JPEG, and only while the original still checks out (see original)."""
    path, asset = thumbnails.thumbnail(settings, asset_id, size,
                                       include_hidden=include_hidden)
    etag = _etag(f"{asset.sha256}-{size}")
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, **FILE_HEADERS}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="image/jpeg", headers=headers)


@router.get("/{asset_id}/original", summary="The original file",
            response_class=FileResponse, responses={304: {"description": "not modified"}})
def original(
    settings: SettingsDep, request: Request, asset_id: int, include_hidden: Hidden = False
) -> Response:
    """Served only from the asset's stored location, looked up by id, and only while that
    path is a regular file, reached without symlinks, holding the bytes that were ingested
    (else 404). Raster image types are shown inline; anything else is a download."""
    fd, asset = open_original(settings, asset_id, include_hidden=include_hidden)
    headers = _original_headers(asset)
    if _not_modified(request, headers["ETag"]):
        os.close(fd)
        return Response(status_code=304, headers=headers)
    media_type, _ = serving_type(asset.mime, probed=asset.kind is not None)
    size = asset.bytes or 0
    try:  # one byte range: what a <video> element asks for when it seeks
        byte_range = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        os.close(fd)
        return Response(status_code=416, headers={**headers,
                                                  "Content-Range": f"bytes */{size}"})
    return OpenFileResponse(fd, size, media_type=media_type, headers=headers,
                            byte_range=byte_range)


def _original_headers(asset: AssetDetail) -> dict[str, str]:
    _, disposition = serving_type(asset.mime, probed=asset.kind is not None)
    return {"ETag": _etag(asset.sha256 or ""), "Cache-Control": CACHE_CONTROL, **FILE_HEADERS,
            "Content-Disposition": content_disposition(disposition, asset.name)}


# HEAD for caches and link checkers (both responses send the headers only).
router.add_api_route("/{asset_id}/thumbnail", thumbnail, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/{asset_id}/original", original, methods=["HEAD"], include_in_schema=False)
