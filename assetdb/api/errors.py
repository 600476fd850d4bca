"""Every error leaves the API as JSON {"error": message, "status": code}, never a traceback."""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assetdb.catalog.assets import AssetNotFound
from assetdb.db.dsn import scrub
from assetdb.errors import (
    AssetdbError,
    ConfigError,
    DatabaseError,
    FilterError,
    ImageError,
    ModelError,
)

log = logging.getLogger("assetdb.api")

# Most specific first: the first matching class decides the status.
_STATUS: tuple[tuple[type[AssetdbError], int], ...] = (
    (AssetNotFound, 404),
    (FilterError, 400),
    (ImageError, 400),
    (DatabaseError, 503),
    (ModelError, 503),
    (ConfigError, 500),
)


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   **extra: object) -> JSONResponse:
    headers = {**({"WWW-Authenticate": "Bearer"} if status == 401 else {}), **(headers or {})}
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status,
                        headers=headers)


def _scrubbed(request: Request, text: str) -> str:
    # A database error may quote the connection string: its password never leaves.
    settings = getattr(request.app.state, "settings", None)
    return scrub(text, getattr(settings, "database_url", None),
                 getattr(settings, "read_database_url", None))


def status_of(exc: AssetdbError) -> int:
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 400)


def install(app: FastAPI) -> None:
    @app.exception_handler(AssetdbError)
    async def _assetdb(request: Request, exc: AssetdbError) -> JSONResponse:
        return error_response(status_of(exc), _scrubbed(request, str(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"where": "", "problem": "invalid request"}
        return error_response(422, f"{first['where']}: {first['problem']}", details=details)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error\n%s",
                  _scrubbed(request, "".join(traceback.format_exception(exc))))
        return error_response(500, "internal server error (see the server log)")
