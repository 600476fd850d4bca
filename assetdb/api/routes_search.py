"""Search endpoints: by text, by an uploaded image, similar to an asset; and browsing."""

from __future__ import annotations

import dataclasses
from pathlib import PurePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, Request, UploadFile
from pydantic import BaseModel

from assetdb.api.deps import (
    ConfigDep,
    EncoderDep,
    FiltersDep,
    MinSimilarityDep,
    SettingsDep,
    read_image_upload,
)
from assetdb.catalog.assets import browse, get_asset
from assetdb.catalog.catalogue import Catalog
from assetdb.errors import FilterError
from assetdb.search.filters import FILTERS
from assetdb.search.query import Hit

router = APIRouter(prefix="/api", tags=["search"])

Offset = Annotated[int, Query(ge=0, description="skip this many results (\"load more\")")]
Limit = Annotated[int, Query(ge=1, le=100, description="results on this page")]


class Moment(BaseModel):
    """Where in a video (seconds) or a document (page) the query matches best."""

    seconds: float | None
    page: int | None
    similarity: float


class SearchHit(BaseModel):
    id: int
    uri: str
    name: str
    title: str | None
    similarity: float | None
    kind: str | None
    tags: list[str]
    thumbnail_url: str
    # Text search (assetdb.search.hybrid): why it matched. The snippet is plain text with
    # the matched words in <mark>...</mark> (a page escapes it, then shows those marks).
    score: float | None = None
    semantic_rank: int | None = None
    keyword_rank: int | None = None
    snippet: str | None = None
    moments: list[Moment] = []  # the best moments of a video or document, best first


class SearchPage(BaseModel):
    results: list[SearchHit]
    offset: int
    limit: int
    has_more: bool
    cap: int  # no search returns more than this many results in all
    mode: str | None = None  # the text search mode that ran (hybrid may fall back)
    warnings: list[str] = []


def _hit(h: Hit) -> SearchHit:
    return SearchHit(id=h.id, uri=h.uri, name=PurePath(h.uri).name, title=h.title,
                     similarity=h.similarity, kind=h.kind, tags=h.tags,
                     thumbnail_url=f"/api/assets/{h.id}/thumbnail",
                     score=getattr(h, "score", None),
                     semantic_rank=getattr(h, "semantic_rank", None),
                     keyword_rank=getattr(h, "keyword_rank", None),
                     snippet=getattr(h, "snippet", None),
                     moments=[Moment(**m) for m in getattr(h, "moments", None) or []])


def _window(cap: int, offset: int, limit: int) -> tuple[int, int]:
    """How many hits to ask for (one extra says whether there is more), and the page end."""
    end = min(offset + limit, cap)
    return min(end + 1, cap), end


def _page(hits: list[Hit], cap: int, offset: int, limit: int) -> SearchPage:
    _, end = _window(cap, offset, limit)
    return SearchPage(results=[_hit(h) for h in hits[offset:end]], offset=offset, limit=limit,
                      has_more=len(hits) > end, cap=cap)


@router.get("/search", response_model=SearchPage, summary="Search by text")
def text_search(
    settings: SettingsDep, encoder: EncoderDep, config: ConfigDep, filters: FiltersDep,
    min_similarity: MinSimilarityDep,
    q: Annotated[str, Query(min_length=1, max_length=1000,
                            description="what the image shows, or words it carries")],
    mode: Annotated[Literal["hybrid", "semantic", "keyword"], Query(
        description="hybrid: words and meaning fused; semantic: CLIP only; keyword: "
                    "full-text over titles, tags, descriptions, metadata, file names, "
                    "OCR text")] = "hybrid",
    offset: Offset = 0, limit: Limit = 24,
) -> SearchPage:
    """Text search, narrowed by the filters; each hit says why it matched (similarity,
    keyword rank, snippet). Example:
    `GET /api/search?q=red+sneakers&mode=hybrid&tag=product&meta=brand=acme&limit=24`"""
    k, _ = _window(config.max_results, offset, limit)
    if offset >= config.max_results:
        return _page([], config.max_results, offset, limit)
    # Each side read as deep as the cap: every page is a slice of one fused ranking.
    result = Catalog(settings).search(q, mode=mode, encoder=encoder, k=k, filters=filters,
                                      min_similarity=min_similarity,
                                      depth=config.max_results)
    page = _page(result.hits, config.max_results, offset, limit)
    page.mode, page.warnings = result.mode, result.warnings
    return page


@router.post("/search/image", response_model=SearchPage, summary="Search by an uploaded image")
def image_search(
    request: Request, settings: SettingsDep, encoder: EncoderDep, config: ConfigDep,
    filters: FiltersDep, min_similarity: MinSimilarityDep,
    file: Annotated[UploadFile, File(description="an image: JPEG, PNG, WebP, GIF, BMP, TIFF")],
    offset: Offset = 0, limit: Limit = 24,
) -> SearchPage:
    """Multipart upload (field `file`); filters and paging as query parameters. Example:
    `curl -F file=@shoe.jpg 'http://127.0.0.1:8000/api/search/image?kind=image'`"""
    image = read_image_upload(request, file, encoder.image_size)
    if offset >= config.max_results:
        return _page([], config.max_results, offset, limit)
    k, _ = _window(config.max_results, offset, limit)
    hits = Catalog(settings).search_image(encoder, image, k=k, filters=filters,
                                          min_similarity=min_similarity)
    return _page(hits,
                 config.max_results, offset, limit)


@router.get("/assets/{asset_id}/similar", response_model=SearchPage,
            summary="Assets similar to an asset")
def similar(
    settings: SettingsDep, config: ConfigDep, filters: FiltersDep,
    min_similarity: MinSimilarityDep, asset_id: int, offset: Offset = 0, limit: Limit = 24,
) -> SearchPage:
    """\"More like this\": the stored vector is the query; the asset itself is left out."""
    get_asset(settings, asset_id, include_hidden=filters.include_hidden)  # 404: unknown id
    if offset >= config.max_results:
        return _page([], config.max_results, offset, limit)
    k, _ = _window(config.max_results, offset, limit)
    hits = Catalog(settings).similar(asset_id, k=k, filters=filters,
                                     min_similarity=min_similarity)
    return _page(hits,
                 config.max_results, offset, limit)


@router.get("/assets", response_model=SearchPage, summary="Browse assets, newest first")
def list_assets(
    request: Request, settings: SettingsDep, config: ConfigDep, filters: FiltersDep,
    offset: Offset = 0, limit: Limit = 24,
) -> SearchPage:
    """Searchable assets that pass the filters, newest first (no query, no similarity)."""
    if "min_similarity" in request.query_params:  # said, not silently ignored
        raise FilterError("min_similarity applies to searches only: browsing has no query "
                          "to be similar to")
    rows = browse(settings, filters=filters, offset=offset, limit=limit + 1)
    hits = [
        SearchHit(id=a.id, uri=a.uri, name=a.name, title=a.title, similarity=None, kind=a.kind,
                  tags=a.tags, thumbnail_url=f"/api/assets/{a.id}/thumbnail")
        for a in rows
    ]
    return SearchPage(results=hits[:limit], offset=offset, limit=limit,
                      has_more=len(hits) > limit, cap=config.max_results)


@router.get("/filters", summary="The filters, as the page's filter panel shows them")
def filters_declared() -> list[dict[str, Any]]:
    """Every filter's query parameter, help, known choices and, for those on the page's
    panel, how to show it (search/filters.py declares them; the page builds its panel
    from this list)."""
    out = []
    for spec in FILTERS:
        page = None
        if spec.page is not None:
            page = dataclasses.asdict(spec.page)
            page["choice_labels"] = dict(spec.page.choice_labels)
        out.append({"param": spec.param, "help": spec.help, "multiple": spec.multiple,
                    "flag": spec.is_flag,
                    "choices": list(spec.choices()) if spec.choices else None, "page": page})
    return out
