"""Bounded waits for the model and for image decoding.

The model runs one call at a time. Without a bound, a burst of slow requests queues every
later one behind it for as long as it lasts; here a request that cannot get the model (or
a decode slot) within ASSETDB_API_BUSY_TIMEOUT seconds is answered 503 "busy" instead.
What one call may cost is bounded by the input caps: upload bytes and pixels, the length
and number of labels and templates, the query text's length.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from fastapi import HTTPException
from PIL import Image

from assetdb.embedding.encoder import Encoder
from assetdb.embedding.images import load_image_bytes

RETRY_AFTER_S = 5


class Busy(HTTPException):
    def __init__(self, what: str) -> None:
        super().__init__(503, f"the server is busy ({what}); try again in a few seconds",
                         headers={"Retry-After": str(RETRY_AFTER_S)})


class Gate:
    """At most `slots` holders at once; a caller waits at most `timeout_s`, then Busy."""

    def __init__(self, slots: int, timeout_s: float, what: str) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self.timeout_s = timeout_s
        self.what = what

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.timeout_s):
            raise Busy(self.what)
        try:
            yield
        finally:
            self._slots.release()


class GatedEncoder:
    """The app's encoder, with every model call behind the gate; the rest passes through."""

    def __init__(self, inner: Encoder, gate: Gate) -> None:
        self._inner = inner
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        with self._gate.hold():
            return self._inner.encode_texts(texts)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        with self._gate.hold():
            return self._inner.encode_images(images)


def decode_upload(data: bytes, min_size: int, max_pixels: int, gate: Gate) -> Image.Image:
    """Decode an uploaded image, refusing more than max_pixels before any pixel is decoded
    (the header's size is checked first); at most the gate's slots decode at once."""
    with gate.hold():
        return load_image_bytes(data, min_size, max_pixels=max_pixels)
