"""One asset: detail, edits (token), thumbnail and original file (by id only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from assetdb.api.deps import SettingsDep, require_token
from assetdb.catalog import thumbnails
from assetdb.catalog.assets import AssetDetail, get_asset, original_file, update_asset

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
    """Made on first request, then cached on disk by content hash; ETag + Cache-Control."""
    path, asset = thumbnails.thumbnail(settings, asset_id, size,
                                       include_hidden=include_hidden)
    etag = _etag(f"{asset.sha256}-{size}")
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="image/jpeg", headers=headers)


@router.get("/{asset_id}/original", summary="The original file",
            response_class=FileResponse, responses={304: {"description": "not modified"}})
def original(
    settings: SettingsDep, request: Request, asset_id: int, include_hidden: Hidden = False
) -> Response:
    """Served only from the asset's stored location, looked up by id."""
    path, asset = original_file(settings, asset_id, include_hidden=include_hidden)
    etag = _etag(asset.sha256 or f"{asset.id}-{asset.updated_at}")
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL,
               "X-Content-Type-Options": "nosniff"}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=asset.mime or "application/octet-stream",
                        filename=asset.name, content_disposition_type="inline", headers=headers)


# HEAD for caches and link checkers (FileResponse sends the headers only).
router.add_api_route("/{asset_id}/thumbnail", thumbnail, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/{asset_id}/original", original, methods=["HEAD"], include_in_schema=False)
