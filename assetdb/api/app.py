"""The FastAPI application: JSON API under /api, the web page at /, API docs at /docs.

The model is loaded once, at start-up (lifespan), and shared by every request; requests
take turns on it through a gate with a bounded wait (assetdb.api.busy), so sync endpoints
in the thread pool are fine. Outside the routes, in this order: the Host allowlist
(hosts.py), the token for every request when reads are protected (auth.py), and the body
size limit (body_limit.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from assetdb import __version__
from assetdb.api import errors
from assetdb.api.auth import ReadProtection
from assetdb.api.body_limit import BodyLimit
from assetdb.api.busy import Gate
from assetdb.api.config import ApiConfig, api_config_from_env
from assetdb.api.deps import ConfigDep, EncoderDep
from assetdb.api.hosts import AllowedHosts
from assetdb.config import Settings
from assetdb.embedding.encoder import Encoder

__all__ = ["api_config_from_env", "create_app"]

STATIC = Path(__file__).parent / "static"
# Images decoded at once (each is bounded by the pixel cap); more wait, then 503.
DECODE_SLOTS = 2
# The page loads nothing from elsewhere; uploads are previewed from blob: URLs.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")


def create_app(
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    config: ApiConfig | None = None,
) -> FastAPI:
    """Build the app; settings and limits default to the environment, the model to the
    catalogue's (ASSETDB_MODEL when set, else the database's; loaded when the server
    starts, not per request)."""
    settings = settings or Settings.from_env()
    config = config or api_config_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.encoder is None:
            from assetdb.catalog.catalogue import Catalog

            # The same rule as the CLI: ASSETDB_MODEL when set, else the recorded model.
            app.state.encoder = Catalog(settings).load_encoder()
        yield

    app = FastAPI(
        title="assetdb",
        version=__version__,
        summary="Semantic asset search: CLIP vectors and metadata in PostgreSQL + pgvector.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load scripts from a CDN; /docs is our own page
        redoc_url=None,
        openapi_url="/openapi.json",
        # No redirects: Starlette would build the Location from the request's Host header.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.encoder = encoder
    app.state.api_config = config
    app.state.model_gate = Gate(1, config.busy_timeout_s, "the model is in use")
    app.state.decode_gate = Gate(DECODE_SLOTS, config.busy_timeout_s, "decoding other images")
    errors.install(app)

    @app.middleware("http")
    async def no_sniff(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    from assetdb.api import (
        routes_ask,
        routes_assets,
        routes_classify,
        routes_duplicates,
        routes_search,
    )

    app.include_router(routes_search.router)
    app.include_router(routes_assets.router)
    app.include_router(routes_classify.router)
    app.include_router(routes_ask.router)
    app.include_router(routes_duplicates.router)

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
            "token_required_for_reads": cfg.protect_reads,
            "ask": cfg.ask,  # POST /api/ask is on (ASSETDB_ASK): the page shows "Ask"
        }

    def page(name: str) -> Callable[[], FileResponse]:
        def serve() -> FileResponse:
            return FileResponse(STATIC / name, media_type="text/html",
                                headers={"Content-Security-Policy": PAGE_CSP,
                                         "Cache-Control": "no-cache"})
        return serve

    app.get("/", include_in_schema=False)(page("index.html"))
    app.get("/docs", include_in_schema=False)(page("docs.html"))
    app.get("/duplicates", include_in_schema=False)(page("duplicates.html"))
    # StaticFiles resolves paths inside STATIC only (no .. or absolute escapes).
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The last added runs first: Host check, then the token (reads), then the body limit.
    app.add_middleware(BodyLimit, max_upload_bytes=config.max_upload_bytes)
    app.add_middleware(ReadProtection, config=config)
    app.add_middleware(AllowedHosts, hosts=config.allowed_hosts)
    return app
