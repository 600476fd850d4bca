"""The FastAPI application: JSON API under /api, the web page at /, API docs at /docs.

The model is loaded once, at start-up (lifespan), and shared by every request; the
encoder serialises its own calls with a lock, so sync endpoints in the thread pool are fine.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from assetdb import __version__
from assetdb.api import errors
from assetdb.api.deps import ApiConfig, ConfigDep, EncoderDep
from assetdb.config import Settings
from assetdb.embedding.encoder import Encoder
from assetdb.search.service import MAX_K

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_MB = 20
DEFAULT_MAX_RESULTS = 500
# The page loads nothing from elsewhere; uploads are previewed from blob: URLs.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")


def api_config_from_env() -> ApiConfig:
    from assetdb.config import env_int

    return ApiConfig(
        token=os.environ.get("ASSETDB_API_TOKEN") or None,
        max_upload_bytes=env_int("ASSETDB_API_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB, 1) * 2**20,
        max_results=min(env_int("ASSETDB_API_MAX_RESULTS", DEFAULT_MAX_RESULTS, 1), MAX_K),
    )


def create_app(
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    config: ApiConfig | None = None,
) -> FastAPI:
    """Build the app; settings and limits default to the environment, the model to
    ASSETDB_MODEL (loaded when the server starts, not per request)."""
    settings = settings or Settings.from_env()
    config = config or api_config_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.encoder is None:
            from assetdb.embedding.encoder import load_encoder

            app.state.encoder = load_encoder(settings.model, device=settings.device,
                                             batch_size=settings.batch_size)
        yield

    app = FastAPI(
        title="assetdb",
        version=__version__,
        summary="Semantic asset search: CLIP vectors and metadata in PostgreSQL + pgvector.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load scripts from a CDN; /docs is our own page
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.encoder = encoder
    app.state.api_config = config
    errors.install(app)

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Refuse an oversized upload before its body is parsed (multipart overhead allowed).
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return errors.error_response(400, "bad Content-Length header")
            if int(length) > config.max_upload_bytes + 2**20:
                return errors.error_response(
                    413, f"the upload is larger than {config.max_upload_bytes} bytes")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    from assetdb.api import routes_assets, routes_classify, routes_search

    app.include_router(routes_search.router)
    app.include_router(routes_assets.router)
    app.include_router(routes_classify.router)

    @app.get("/api/info", tags=["meta"], summary="Model and limits")
    def info(encoder: EncoderDep, cfg: ConfigDep) -> dict[str, object]:
        """The loaded model, and the limits the page should respect."""
        return {
            "version": __version__,
            "model": encoder.name,
            "dimension": encoder.dimension,
            "max_results": cfg.max_results,
            "max_upload_bytes": cfg.max_upload_bytes,
            "token_required_for_writes": bool(cfg.token),
        }

    def page(name: str) -> Callable[[], FileResponse]:
        def serve() -> FileResponse:
            return FileResponse(STATIC / name, media_type="text/html",
                                headers={"Content-Security-Policy": PAGE_CSP,
                                         "Cache-Control": "no-cache"})
        return serve

    app.get("/", include_in_schema=False)(page("index.html"))
    app.get("/docs", include_in_schema=False)(page("docs.html"))
    # StaticFiles resolves paths inside STATIC only (no .. or absolute escapes).
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
