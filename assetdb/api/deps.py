"""What routes share: settings and the warm model from app state, the one filter model
as query parameters, the write token, and size-limited image uploads."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, UploadFile

from assetdb.config import Settings
from assetdb.embedding.encoder import Encoder
from assetdb.search.filters import Filters, build_filters


@dataclass(frozen=True)
class ApiConfig:
    token: str | None  # ASSETDB_API_TOKEN: required by write endpoints when set
    max_upload_bytes: int
    max_results: int  # the cap on a search's results, over all "load more" pages


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_encoder(request: Request) -> Encoder:
    return request.app.state.encoder


def get_config(request: Request) -> ApiConfig:
    return request.app.state.api_config


SettingsDep = Annotated[Settings, Depends(get_settings)]
EncoderDep = Annotated[Encoder, Depends(get_encoder)]
ConfigDep = Annotated[ApiConfig, Depends(get_config)]


def get_filters(
    kind: Annotated[list[str], Query(description="image or animation; repeatable")] = [],  # noqa: B006
    tag: Annotated[list[str], Query(description="must carry every one of these tags; "
                                                "repeatable or comma-separated")] = [],  # noqa: B006
    any_tag: Annotated[list[str], Query(description="must carry at least one")] = [],  # noqa: B006
    meta: Annotated[list[str], Query(description="metadata key=value (jsonb containment)"
                                     )] = [],  # noqa: B006
    captured_after: Annotated[str | None, Query(description="ISO 8601 date")] = None,
    captured_before: Annotated[str | None, Query(description="ISO 8601 date")] = None,
    created_after: Annotated[str | None, Query(description="ISO 8601 date")] = None,
    created_before: Annotated[str | None, Query(description="ISO 8601 date")] = None,
    min_similarity: Annotated[float | None, Query(ge=-1, le=1)] = None,
    include_hidden: bool = False,
) -> Filters:
    """The CLI's filter options, as query parameters, through the same build_filters."""
    return build_filters(
        kinds=kind, tags=tag, any_tags=any_tag, metadata=meta,
        captured_after=captured_after, captured_before=captured_before,
        created_after=created_after, created_before=created_before,
        min_similarity=min_similarity, include_hidden=include_hidden,
    )


FiltersDep = Annotated[Filters, Depends(get_filters)]


def require_token(request: Request, config: ConfigDep) -> None:
    """Write endpoints: `Authorization: Bearer <token>` (or X-API-Token) when a token is set."""
    if not config.token:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    given = given or request.headers.get("x-api-token", "")
    if not given:
        raise HTTPException(401, "this endpoint needs the API token (Authorization: Bearer ...)")
    if not hmac.compare_digest(given.encode(), config.token.encode()):
        raise HTTPException(403, "wrong API token")


def read_upload(file: UploadFile, config: ApiConfig) -> bytes:
    """Read at most the size limit (the body may be chunked, with no Content-Length)."""
    data = file.file.read(config.max_upload_bytes + 1)
    if len(data) > config.max_upload_bytes:
        raise HTTPException(413, f"the upload is larger than {config.max_upload_bytes} bytes")
    return data
