"""What routes share: settings and the warm model (behind its busy gate) from app state,
the one filter model as query parameters, the write token, and size-limited uploads."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

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


class _FiltersFromQuery:
    """The declared filters (search/filters.py) as query parameters, through the same
    build_filters as the CLI. FastAPI reads a dependency's parameters from its signature,
    so the signature is built from the list whenever an app reads its routes (each
    parameter then shows in /openapi.json), and values arrive as keyword arguments."""

    @property
    def __signature__(self) -> inspect.Signature:
        from assetdb.search.filters import FILTERS

        params = []
        for spec in FILTERS:
            if spec.is_flag:
                annotation: Any = Annotated[bool, Query(description=spec.help)]
                default: Any = False
            elif spec.multiple:
                annotation, default = Annotated[list[str], Query(description=spec.help)], []
            else:
                annotation = Annotated[str | None, Query(description=spec.help)]
                default = None
            params.append(inspect.Parameter(spec.param, inspect.Parameter.KEYWORD_ONLY,
                                            default=default, annotation=annotation))
        return inspect.Signature(params, return_annotation=Filters)

    def __call__(self, **params: Any) -> Filters:  # noqa: ANN401
        return build_filters(**params)


get_filters = _FiltersFromQuery()


def get_min_similarity(
    min_similarity: Annotated[float | None, Query(
        ge=-1, le=1, description="leave out results below this similarity (a search "
                                 "option: not on browsing)")] = None,
) -> float | None:
    return min_similarity


FiltersDep = Annotated[Filters, Depends(get_filters)]
MinSimilarityDep = Annotated[float | None, Depends(get_min_similarity)]


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
