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


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last, inclusive) a `Range: bytes=...` header asks for,
    or None for the whole file (no header, or one this server does not honour: several
    ranges, another unit). RangeNotSatisfiable when it starts past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_s, _, last_s = header[6:].strip().partition("-")
    try:
        if first_s == "":  # the last N bytes
            n = int(last_s)
            if n <= 0:
                raise RangeNotSatisfiable
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError:
        return None
    if first < 0 or first >= size or last < first:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


class OpenFileResponse(Response):
    """Streams `size` bytes of an open fd (from offset 0, or the one range asked for: a
    video player seeks with Range requests) and closes it, even when the client goes
    away. The fd is the one that was verified: the path is not reopened."""

    def __init__(self, fd: int, size: int, *, media_type: str,
                 headers: dict[str, str], byte_range: tuple[int, int] | None = None) -> None:
        first, last = byte_range or (0, size - 1)
        length = max(0, last - first + 1) if size else 0
        extra = {"accept-ranges": "bytes", "content-length": str(length)}
        if byte_range is not None:
            extra["content-range"] = f"bytes {first}-{last}/{size}"
        super().__init__(status_code=206 if byte_range is not None else 200,
                         media_type=media_type, headers={**headers, **extra})
        self.fd = fd
        self.start = first
        self.size = length

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
            chunk = await anyio.to_thread.run_sync(os.pread, self.fd, n, self.start + offset)
            if not chunk:  # the file shrank after it was checked: stop, short
                return
            offset += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
