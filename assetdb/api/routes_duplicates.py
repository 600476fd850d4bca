"""Near-duplicate groups (read) and keeper marks (write, token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from assetdb.api.deps import FiltersDep, SettingsDep, require_token
from assetdb.catalog.assets import get_asset
from assetdb.catalog.catalogue import Catalog

router = APIRouter(prefix="/api/duplicates", tags=["duplicates"])

Threshold = Annotated[float | None, Query(
    ge=0.0, le=1.0, description="similarity 0..1 (hashes: default 0.8; semantic: 0.92)")]
Groups = Annotated[int, Query(ge=1, le=500, description="at most this many groups")]


@router.get("", summary="Groups of near-duplicate assets")
def duplicates(settings: SettingsDep, filters: FiltersDep, threshold: Threshold = None,
               semantic: bool = False, max_groups: Groups = 100) -> dict[str, Any]:
    """Groups among the assets that pass the filters (hidden ones included, marked), each
    with its keeper first and every member's similarity to it. A request looks no
    further than what `assetdb duplicates` stored (vector neighbours, older assets'
    hashes) plus the hash bands: `unscanned` and `unhashed` count what it could not see.
    Nothing is written."""
    report = Catalog(settings).duplicates(filters=filters, threshold=threshold,
                                          semantic=semantic, backfill_hashes=False,
                                          scan=False, save=False)
    out = report.as_dict()
    out["groups"] = out["groups"][:max_groups]
    for group in out["groups"]:
        for m in group["members"]:
            m["thumbnail_url"] = f"/api/assets/{m['id']}/thumbnail?include_hidden=true"
    return out


@router.put("/keeper/{asset_id}", summary="Mark an asset as its group's keeper",
            dependencies=[Depends(require_token)])
def mark_keeper(settings: SettingsDep, asset_id: int) -> dict[str, Any]:
    """A write endpoint (the API token when one is set). The mark wins over size and age
    in every later grouping; the asset is shown again if --hide hid it."""
    get_asset(settings, asset_id)  # 404 for an unknown id
    return Catalog(settings).mark_keeper(asset_id, True)


@router.delete("/keeper/{asset_id}", summary="Take a keeper mark away",
               dependencies=[Depends(require_token)])
def unmark_keeper(settings: SettingsDep, asset_id: int) -> dict[str, Any]:
    get_asset(settings, asset_id)
    return Catalog(settings).mark_keeper(asset_id, False)
