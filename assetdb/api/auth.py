"""The API token: where a request may carry it, the write check, and (optionally) a check
on every request, reads included (ASSETDB_API_PROTECT_READS).

The token may come as `Authorization: Bearer <token>`, as `X-API-Token: <token>`, or as
the password of HTTP Basic auth (any user name): with reads protected, the browser then
asks for it with its own login prompt and sends it with every request of the page,
thumbnails and originals included.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from assetdb.api.config import ApiConfig
from assetdb.api.errors import error_response

BASIC_CHALLENGE = 'Basic realm="assetdb", charset="UTF-8"'


def presented_token(headers: Headers) -> str | None:
    """The token the request carries, in whichever accepted form; None if none."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return headers.get("x-api-token") or None


def token_matches(given: str, expected: str) -> bool:
    # Constant time: the comparison must not tell an attacker how much of it was right.
    return hmac.compare_digest(given.encode(), expected.encode())


def require_token(request: Request) -> None:
    """Write endpoints: the token when one is set (401 without it, 403 when wrong)."""
    config: ApiConfig = request.app.state.api_config
    if not config.token:
        return
    given = presented_token(request.headers)
    if not given:
        raise HTTPException(401, "this endpoint needs the API token (Authorization: Bearer ...)")
    if not token_matches(given, config.token):
        raise HTTPException(403, "wrong API token")


class ReadProtection:
    """ASGI middleware: with reads protected, every request needs the token (401 with a
    Basic challenge otherwise, so that a browser prompts for it)."""

    def __init__(self, app: ASGIApp, config: ApiConfig) -> None:
        self.app = app
        self.token = config.token if config.protect_reads else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token and scope["type"] == "http":
            given = presented_token(Headers(scope=scope))
            if not given or not token_matches(given, self.token):
                message = ("this server needs the API token for every request "
                           "(Authorization: Bearer ..., or the password of HTTP Basic auth)")
                response = error_response(401, message if not given else "wrong API token")
                response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
                response.headers.append("WWW-Authenticate", "Bearer")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
