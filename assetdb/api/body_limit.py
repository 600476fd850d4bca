"""Refuse a request body as soon as it passes the size limit, while it is still arriving.

A Content-Length over the limit is refused before anything is read. A chunked body (no
Content-Length) is counted as it streams in: the moment it passes the limit the client
gets 413 and the application sees a disconnect, so nothing past the limit is read,
parsed or spooled to disk.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assetdb.api.errors import error_response
from assetdb.api.hosts import header

# Multipart framing and form fields around an upload of the maximum size.
MULTIPART_ALLOWANCE = 2**20


class BodyLimit:
    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_body = max_upload_bytes + MULTIPART_ALLOWANCE

    def _too_large(self) -> JSONResponse:
        response = error_response(413, f"the upload is larger than {self.max_upload_bytes} bytes")
        response.headers["Connection"] = "close"  # and the server stops reading the rest
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = header(scope, b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await error_response(400, "bad Content-Length header")(scope, receive, send)
                return
            if int(length) > self.max_body:
                await self._too_large()(scope, receive, send)
                return

        received = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    refused = True
                    if not started:
                        await self._too_large()(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # the 413 has gone out; the application's own answer is dropped
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:  # after a refusal the app's "client went away" errors are moot
                raise
