"""Responses for asset files: an original streamed from its verified fd, and the headers
that keep any served byte from running as a page on the API's origin."""

from __future__ import annotations

import os
from urllib.parse import quote

import anyio.to_thread
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from assetdb.kinds.registry import inline_types

# Even if a browser renders a served file as a document, it gets no script, no origin
# (sandbox) and may load nothing.
FILE_HEADERS = {"X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox; default-src 'none'"}
_CHUNK = 256 * 1024


def content_disposition(kind: str, filename: str) -> str:
    """RFC 6266 header; any byte outside a safe set is percent-encoded (no header
    injection from odd file names)."""
    quoted = quote(filename)
    if quoted != filename:
        return f"{kind}; filename*=utf-8''{quoted}"
    return f'{kind}; filename="{filename}"'


def serving_type(mime: str | None, probed: bool) -> tuple[str, str]:
    """(Content-Type, disposition kind): inline only for a probed raster image type that
    a registered kind declares (SVG, HTML and anything else go out as downloads)."""
    if probed and mime in inline_types():
        return mime, "inline"
    return "application/octet-stream", "attachment"


class OpenFileResponse(Response):
    """Streams `size` bytes of an open fd (from offset 0) and closes it, even when the
    client goes away. The fd is the one that was verified: the path is not reopened."""

    def __init__(self, fd: int, size: int, *, media_type: str,
                 headers: dict[str, str]) -> None:
        super().__init__(status_code=200, media_type=media_type,
                         headers={**headers, "content-length": str(size)})
        self.fd = fd
        self.size = size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if scope.get("method") != "HEAD":
                await self._send_body(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            os.close(self.fd)

    async def _send_body(self, send: Send) -> None:
        offset = 0
        while offset < self.size:
            n = min(_CHUNK, self.size - offset)
            chunk = await anyio.to_thread.run_sync(os.pread, self.fd, n, offset)
            if not chunk:  # the file shrank after it was checked: stop, short
                return
            offset += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
