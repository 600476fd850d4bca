"""Answer only requests whose Host header names this server (DNS-rebinding defence).

A page on rebind.example can make its own name resolve to 127.0.0.1; the browser then
sends `Host: rebind.example` to our loopback port and lets the page read the answers.
Refusing every Host that is not on the allowlist, before any route runs, stops that.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from assetdb.api.errors import error_response


def normalise_host(value: str) -> str:
    """`Name:port`, `[v6]:port`, `v6` -> the bare lower-case name, IPv6 in brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    if value.count(":") > 1:  # a bare IPv6 address (only in our own settings)
        return f"[{value}]"
    return value.partition(":")[0].rstrip(".")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class AllowedHosts:
    """ASGI middleware: 400 JSON for a missing Host or one not on the list (any port)."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(normalise_host(h) for h in hosts if h.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = header(scope, b"host")
            if host is None or normalise_host(host) not in self.hosts:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                # The refused name is not echoed: it is the attacker's text.
                response = error_response(
                    400, "this server does not answer for that Host name (see "
                         "ASSETDB_API_ALLOWED_HOSTS)")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
