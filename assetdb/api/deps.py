"""What routes share: settings and the warm model (behind its busy gate) from app state,
the one filter model as query parameters, the write token, and size-limited uploads."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, UploadFile
from PIL import Image

from assetdb.api.auth import require_token
from assetdb.api.busy import GatedEncoder, decode_upload
from assetdb.api.config import ApiConfig
from assetdb.config import Settings
from assetdb.embedding.encoder import Encoder
from assetdb.search.filters import Filters, build_filters

__all__ = ["ApiConfig", "require_token"]  # re-exported for routes and tests


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_encoder(request: Request) -> Encoder:
    return GatedEncoder(request.app.state.encoder, request.app.state.model_gate)


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


def read_upload(file: UploadFile, config: ApiConfig) -> bytes:
    """Read at most the size limit (the body may be chunked, with no Content-Length)."""
    data = file.file.read(config.max_upload_bytes + 1)
    if len(data) > config.max_upload_bytes:
        raise HTTPException(413, f"the upload is larger than {config.max_upload_bytes} bytes")
    return data


def read_image_upload(request: Request, file: UploadFile, min_size: int) -> Image.Image:
    """The upload, size-limited, decoded under the pixel cap and the decode gate."""
    config: ApiConfig = request.app.state.api_config
    return decode_upload(read_upload(file, config), min_size, config.max_upload_pixels,
                         request.app.state.decode_gate)
